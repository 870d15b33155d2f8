#!/usr/bin/env bash
# One jichu binary serving two (or more) data directories in turn, for store options that
# only new files carry (load the same extract into each with the binaries that differ):
# single-key GETs (requests formatted in advance) and 100-key batch lookups, with wrk. Give
# each directory twice (A B A B) to see the machine's noise beside the difference.
#
#   benches/http/stores_ab.sh BIN IDS_FILE DATA_A DATA_B [DATA …]
set -euo pipefail
BIN=$1
export JICHU_IDS=$2
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=18093
for data in "$@"; do
  "$BIN" --data-dir "$data" --log warn serve --insecure-no-auth --addr 127.0.0.1:$PORT >/dev/null 2>&1 &
  S=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
  wrk -t2 -c16 -d5s -s "$HERE/get_pool.lua" "http://127.0.0.1:$PORT" >/dev/null
  g=$(wrk -t2 -c16 -d15s -s "$HERE/get_pool.lua" "http://127.0.0.1:$PORT" | awk '/Requests\/sec/ { print $2 }')
  b=$(wrk -t2 -c16 -d10s -s "$HERE/lookup.lua" "http://127.0.0.1:$PORT" | awk '/Requests\/sec/ { print $2 }')
  kill "$S"
  wait "$S" 2>/dev/null || true
  echo "$data: single key $g req/s, 100-key batch $b req/s, store $(du -sm "$data/store" | cut -f1) MB"
done
