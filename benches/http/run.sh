#!/usr/bin/env bash
# HTTP benchmark: GET /v1/citizens/{id}, POST /v1/citizens/near (k = 10) and
# POST /v1/citizens/lookup (100 keys) with wrk,
# keep-alive, against `jichu serve` over a store of N generated citizens.
#
#   benches/http/run.sh [N=10000000] [WORKDIR=/tmp/jichu-http-bench]
#
# Re-uses WORKDIR's store when it already holds N citizens. Needs wrk (apt-get install wrk).
set -euo pipefail
N=${1:-10000000}
WORK=${2:-/tmp/jichu-http-bench}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/jichu-target}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 2; }
# The test build makes the binary too: a binary-only build resolves some features differently
# and would compile RocksDB a second time.
(cd "$ROOT" && cargo test --release --workspace --no-run -q)
BIN="$CARGO_TARGET_DIR/release/jichu"
mkdir -p "$WORK"
if [ ! -f "$WORK/loaded-$N" ]; then
  rm -rf "$WORK/data" "$WORK/x"
  "$BIN" gen --citizens "$N" --out "$WORK/x"
  "$BIN" --data-dir "$WORK/data" --log warn load --spec "$WORK/x/citizens.toml" "$WORK/x/citizens.csv"
  touch "$WORK/loaded-$N"
fi
# 100k ids: 90% loaded (sampled from the extract), 10% valid but absent (same generator, beyond N).
if [ ! -f "$WORK/ids-$N.txt" ]; then
  awk -F, -v n="$N" 'NR > 1 && (NR % int(n / 90000 + 1)) == 0 && k < 90000 { print $1; k++ }' "$WORK/x/citizens.csv" > "$WORK/ids-$N.txt"
  "$BIN" gen --ids-from "$N" --citizens 10000 >> "$WORK/ids-$N.txt"
fi
PORT=18080
"$BIN" --data-dir "$WORK/data" --log warn serve --addr 127.0.0.1:$PORT &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
export JICHU_IDS="$WORK/ids-$N.txt"
echo "== warm-up"; wrk -t2 -c32 -d10s -s "$HERE/get.lua" "http://127.0.0.1:$PORT" >/dev/null
echo "== GET /v1/citizens/{id}: 2 threads, 32 connections, 30 s"
wrk -t2 -c32 -d30s --latency -s "$HERE/get.lua" "http://127.0.0.1:$PORT"
echo "== POST /v1/citizens/near (k = 10, names): 2 threads, 8 connections, 30 s"
wrk -t2 -c8 -d30s --latency -s "$HERE/near.lua" "http://127.0.0.1:$PORT"
for c in 2 8; do
  echo "== POST /v1/citizens/lookup (100 keys): 2 threads, $c connections, 30 s"
  wrk -t2 -c$c -d30s --latency -s "$HERE/lookup.lua" "http://127.0.0.1:$PORT"
done
