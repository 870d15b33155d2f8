#!/usr/bin/env python3
# Latency of reference-filtered searches against a running `jichu serve` (no access control):
# a holder_id or legal_rep_id filter beside q, and subject_name; one keep-alive connection,
# sequential; values sampled from the first 20,000 exported licences and entities.
#
#   benches/http/reference_filters.py PORT [QUERIES_EACH]
import http.client, json, sys, time, random
port = int(sys.argv[1]); n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
c = http.client.HTTPConnection("127.0.0.1", port)
def get_lines(path, k):
    c2 = http.client.HTTPConnection("127.0.0.1", port); c2.request("GET", path); r = c2.getresponse()
    out = []
    while len(out) < k:
        line = r.readline()
        if not line: break
        out.append(json.loads(line))
    c2.close(); return out
def post(path, body):
    c.request("POST", path, json.dumps(body), {"content-type": "application/json"})
    r = c.getresponse(); data = r.read()
    assert r.status == 200, (r.status, data[:300]); return json.loads(data)
random.seed(1)
lic = get_lines("/v1/licences/export?format=ndjson", 20000)
ent = get_lines("/v1/entities/export?format=ndjson", 20000)
cases = {
  "licences q+holder_id": [("/v1/licences/search", {"q": "厦门", "filters": {"holder_id": r["holder_id"]}}) for r in random.sample(lic, n)],
  "entities q+legal_rep_id": [("/v1/entities/search", {"q": "厦门", "filters": {"legal_rep_id": r["legal_rep_id"]}}) for r in random.sample([e for e in ent if e.get("legal_rep_id")], n)],
  "licences subject_name": [("/v1/licences/search", {"subject_name": r["holder_name"]}) for r in random.sample(lic, n)],
}
for name, reqs in cases.items():
    post(*reqs[0])
    lat = []; totals = 0
    for path, body in reqs:
        t = time.perf_counter(); r = post(path, body); lat.append(time.perf_counter() - t); totals += r["total"]
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))] * 1000
    print(f"{name}: {n} queries, mean total {totals / n:.1f}, p50 {q(0.5):.2f} ms, p99 {q(0.99):.2f} ms, max {lat[-1]*1000:.2f} ms")
