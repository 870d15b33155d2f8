#!/usr/bin/env python3
"""A soak test of crash consistency: `kill -9` a running `jichu serve` at random moments while it
loads the five registries' extracts and then a delta of every citizen; sometimes again while it
starts, sometimes again while it resumes the interrupted load. After each load is published, the
store, the full-text index and the spatial index must agree with what has been published:
  - the catalogue counts every record loaded, once;
  - a search for 厦门 (in every generated record's text) counts the same, exactly;
  - a box around the whole city holds the same number of citizens and entities;
  - the change feed's positions run from 1 without a gap, and it inserts each record once.

It is not part of CI (a run takes minutes); `tests/it/crash.rs` kills loads at fixed points.

  tests/soak/kill_serve.py JICHU_BINARY WORKDIR [--citizens 300000] [--rounds 16] [--seed 1]

Prints each kill (and the stage the load was in), each check, and ALL OK or SOME FAILED (exit 1).
"""
import argparse
import atexit
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

EXTENT = [117.85, 24.40, 118.45, 24.80]  # the generator's (Xiamen)
PER_CITIZEN = {"citizens": 1.0, "entities": 0.3, "parcels": 0.1, "credit": 0.3, "licences": 0.5}

a = argparse.ArgumentParser()
a.add_argument("binary")
a.add_argument("workdir")
a.add_argument("--citizens", type=int, default=300_000)
a.add_argument("--rounds", type=int, default=16)
a.add_argument("--seed", type=int, default=1)
a.add_argument("--port", type=int, default=18555)
args = a.parse_args()
random.seed(args.seed)
W = os.path.abspath(args.workdir)
D = os.path.join(W, "data")
BASE = f"http://127.0.0.1:{args.port}"
shutil.rmtree(W, ignore_errors=True)
os.makedirs(os.path.join(D, "import"))


def jichu(*argv):
    subprocess.run([args.binary, "--log", "warn", *argv], check=True, stdout=subprocess.DEVNULL)


# The extracts, and a second set for the same citizens with other values (seed 43).
jichu("gen", "--citizens", str(args.citizens), "--out", os.path.join(W, "x"))
jichu("gen", "--citizens", str(args.citizens), "--seed", "43", "--out", os.path.join(W, "xd"))
for r in PER_CITIZEN:
    os.link(os.path.join(W, "x", f"{r}.csv"), os.path.join(D, "import", f"{r}.csv"))
os.link(os.path.join(W, "xd", "citizens.csv"), os.path.join(D, "import", "citizens-delta.csv"))
LOADS = [(r, f"{r}.csv", os.path.join(W, "x", f"{r}.toml")) for r in PER_CITIZEN]
LOADS.append(("citizens", "citizens-delta.csv", os.path.join(W, "xd", "citizens.toml")))


def call(method, path, body=None, timeout=600):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


server = None


@atexit.register
def stop():
    if server is not None and server.poll() is None:
        kill()


def spawn():
    global server
    log = open(os.path.join(W, "server.log"), "a")
    server = subprocess.Popen(
        [args.binary, "serve", "--insecure-no-auth", "--data-dir", D, "--addr", f"127.0.0.1:{args.port}", "--log", "info"],
        stdout=log,
        stderr=log,
    )


def start():
    """Starts the server and waits for its first answer: the seconds it took."""
    spawn()
    t = time.time()
    while True:
        try:
            if call("GET", "/healthz", timeout=2)[0] == 200:
                return time.time() - t
        except OSError:
            pass
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode}; see {W}/server.log")
        time.sleep(0.05)


def kill():
    server.send_signal(signal.SIGKILL)
    server.wait()


def feed_problems(expected):
    """The change feed read from its start: gap-free positions, each record inserted once."""
    after, due, inserted, twice = "0", 1, {}, 0
    while True:
        s, page = call("GET", f"/v1/changes?after={after}&limit=10000")
        if s != 200:
            return [f"the feed: {s} {page}"]
        for c in page["changes"]:
            if c["position"] != due:
                return [f"the feed: position {c['position']} where {due} was due"]
            due += 1
            if c["change"] == "insert":
                ids = inserted.setdefault(c["registry"], set())
                twice += c["id"] in ids
                ids.add(c["id"])
        if not page["changes"]:
            break
        after = page["next"]
    bad = [f"the feed inserts {twice} records twice"] if twice else []
    for registry, n in expected.items():
        if len(inserted.get(registry, ())) != n:
            bad.append(f"{registry}: the feed inserts {len(inserted.get(registry, ()))}, expected {n}")
    return bad


def check(expected, label):
    _, catalog = call("GET", "/v1/catalog")
    counts = {r["name"]: r["count"] for r in catalog["registries"]}
    bad = []
    for registry, n in expected.items():
        if counts.get(registry) != n:
            bad.append(f"{registry}: the catalogue counts {counts.get(registry)}, expected {n}")
        s, found = call("POST", f"/v1/{registry}/search", {"q": "厦门", "exact_total": True, "limit": 1})
        if s != 200 or found["total"] != n:
            bad.append(f"{registry}: the full-text index counts {found.get('total') if s == 200 else (s, found)}")
        if registry in ("citizens", "entities"):
            s, found = call("POST", f"/v1/{registry}/within", {"bbox": EXTENT, "limit": 1})
            if s != 200 or found["count"] != n:
                bad.append(f"{registry}: the spatial index counts {found.get('count') if s == 200 else (s, found)}")
    bad += feed_problems(expected)
    print(f"  check {label}: {'ok' if not bad else 'FAILED'} {counts}", flush=True)
    for b in bad:
        print("   ", b, flush=True)
    return not bad


def settle(pending, expected):
    """Waits for the load to end; it must be published."""
    while True:
        _, status = call("GET", f"/v1/loads/{pending[0]}")
        if status["status"] in ("published", "failed", "cancelled"):
            break
        time.sleep(0.2)
    print(f"  load {pending[0]} {status['status']}", flush=True)
    if status["status"] != "published":
        print("   ", json.dumps(status)[:800], flush=True)
        return False
    expected[pending[1]] = pending[2]
    return True


ok = True
expected = {}
following = 0  # the next load to submit
pending = None  # (load id, registry, records it leaves)
start()
for n in range(args.rounds):
    if pending is None:
        if following == len(LOADS):
            break
        registry, file, spec = LOADS[following]
        s, queued = call("POST", "/v1/loads", {"spec": open(spec).read(), "files": [file]})
        assert s == 202, (s, queued)
        pending = (queued["load_id"], registry, round(args.citizens * PER_CITIZEN[registry]))
        following += 1
    delay = random.uniform(0.05, 4.0)
    time.sleep(delay)
    _, status = call("GET", f"/v1/loads/{pending[0]}")
    stage = f"{status.get('status')}, {(status.get('progress') or {}).get('stage')}"
    kill()
    print(f"round {n}: killed {delay:.2f} s in, load {pending[0]} ({LOADS[following - 1][1]}) {stage}", flush=True)
    if random.random() < 0.2:
        spawn()
        d = random.uniform(0.01, 1.0)
        time.sleep(d)
        kill()
        print(f"  killed again {d:.2f} s into its start", flush=True)
    took = start()
    if random.random() < 0.4 and n + 1 < args.rounds:
        print(f"  answered {took:.2f} s after its start; the resumed load is killed next", flush=True)
        continue
    print(f"  answered {took:.2f} s after its start", flush=True)
    ok &= settle(pending, expected)
    pending = None
    ok &= check(expected, f"after round {n}")
if pending is not None:
    ok &= settle(pending, expected)
ok &= check(expected, "at the end")
kill()
print("ALL OK" if ok else "SOME FAILED", flush=True)
sys.exit(0 if ok else 1)
