#!/usr/bin/env bash
# Two (or more) jichu binaries serving the same data directory in turn, measured with wrk:
# single-key GETs, 100-key batch lookups and /healthz, plus the server's peak RSS. Give each
# binary twice (A B A B) to see the machine's noise beside the difference.
#
#   benches/http/ab.sh DATA_DIR IDS_FILE BIN_A BIN_B [BIN …]
#
# DATA_DIR holds a loaded store (e.g. the one `vs_postgres.sh` makes); IDS_FILE one identity
# number per line (present and absent). Needs wrk. `GET=get_pool` takes single-key requests
# formatted once at the start (`get_pool.lua`) rather than built per request (`get.lua`).
set -euo pipefail
DATA=$1
export JICHU_IDS=$2
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=18091
for bin in "$@"; do
  "$bin" --data-dir "$DATA" --log warn serve --insecure-no-auth --addr 127.0.0.1:$PORT >/dev/null 2>&1 &
  S=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
  wrk -t2 -c16 -d4s -s "$HERE/${GET:-get}.lua" "http://127.0.0.1:$PORT" >/dev/null
  g=$(wrk -t2 -c16 -d10s -s "$HERE/${GET:-get}.lua" "http://127.0.0.1:$PORT" | awk '/Requests\/sec/ { print $2 }')
  b=$(wrk -t2 -c16 -d10s -s "$HERE/lookup.lua" "http://127.0.0.1:$PORT" | awk '/Requests\/sec/ { print $2 }')
  z=$(wrk -t2 -c16 -d5s "http://127.0.0.1:$PORT/healthz" | awk '/Requests\/sec/ { print $2 }')
  rss=$(awk '/VmHWM/ { print $2 }' "/proc/$S/status")
  kill "$S"
  wait "$S" 2>/dev/null || true
  echo "$bin: single key $g req/s, 100-key batch $b req/s, /healthz $z req/s, peak RSS $rss KiB"
done
