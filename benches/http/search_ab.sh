#!/usr/bin/env bash
# Address search over HTTP, binaries in turn on the same data directory: one connection (the
# latency of one client, like `jichu bench`'s in-process figures), then 16, with wrk's
# latency distribution and how many answers were not 2xx (a 429 when the query pool is full
# counts as an answer). Give each binary twice (A B A B) to see the machine's noise.
#
#   benches/http/search_ab.sh DATA_DIR BIN_A BIN_B [BIN …]
#
# DATA_DIR holds a store filled from the generator's extracts (its roads): `jichu gen` +
# `jichu load`, or the `data` folder inside a `jichu bench --data-dir` folder. Needs wrk.
# EXACT_TOTAL=1 in the environment makes every search ask for its exact count (address.lua).
set -euo pipefail
DATA=$1
shift
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=18092
for bin in "$@"; do
  "$bin" --data-dir "$DATA" --log warn serve --insecure-no-auth --addr 127.0.0.1:$PORT >/dev/null 2>&1 &
  S=$!
  ready=
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && ready=1 && break; sleep 0.2; done
  [ -n "$ready" ] || { kill "$S"; echo "$bin: no answer in 60 s" >&2; exit 1; }
  wrk -t1 -c1 -d5s -s "$HERE/address.lua" "http://127.0.0.1:$PORT" >/dev/null
  for c in 1 16; do
    t=$((c < 2 ? 1 : 2))
    wrk -t$t -c$c -d20s --latency -s "$HERE/address.lua" "http://127.0.0.1:$PORT" |
      awk -v bin="$bin${EXACT_TOTAL:+ (EXACT_TOTAL=$EXACT_TOTAL)}" -v c="$c" '/Requests\/sec/ { r = $2 } / 50%/ { p50 = $2 } / 99%/ { p99 = $2 }
        /requests in/ { n = $1 } /Non-2xx/ { bad = $NF }
        END { printf "%s, %d connection(s): %s req/s, p50 %s, p99 %s, %d of %d answers not 2xx\n", bin, c, r, p50, p99, bad, n }'
  done
  kill "$S"
  wait "$S" 2>/dev/null || true
done
