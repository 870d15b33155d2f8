#!/usr/bin/env bash
# What loads into a running server leave in its memory: `jichu serve` on a store of N citizens,
# then ROUNDS update loads of 300,000 citizens each (`jichu load --server`, extracts generated
# with seeds 7 and 8 in turn, so every round changes every row it sends), printing after each
# the server's `jichu_memory_bytes` gauges (MiB) and what none of them accounts for ("other":
# resident heap less block cache, memtables and spatial index), then the server's peak RSS and
# how long each publication's full-text part took.
#
#   benches/http/publish_memory.sh [N=2000000] [WORKDIR=/tmp/jichu-publish] [ROUNDS=4]
#
# The block cache grows towards its budget as loads read the store (by design); "other"
# should not grow from round to round.
set -euo pipefail
N=${1:-2000000}
WORK=${2:-/tmp/jichu-publish}
ROUNDS=${3:-4}
PORT=18097
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/jichu-target}"
# The test build makes the binary too (a binary-only build would compile RocksDB again).
(cd "$ROOT" && cargo test --release --workspace --no-run -q)
BIN="$CARGO_TARGET_DIR/release/jichu"
D="$WORK/data"
mkdir -p "$WORK"
if [ ! -f "$WORK/loaded-$N" ]; then
  rm -rf "$D" "$WORK/x"
  "$BIN" gen --citizens "$N" --out "$WORK/x" --log warn
  for r in citizens entities parcels credit licences; do
    "$BIN" load --data-dir "$D" --spec "$WORK/x/$r.toml" "$WORK/x/$r.csv" --log warn | tail -1
  done
  rm -rf "$WORK/x"
  touch "$WORK/loaded-$N"
fi
for s in 7 8; do
  [ -f "$WORK/u$s/citizens.csv" ] || "$BIN" gen --citizens 300000 --seed $s --out "$WORK/u$s" --log warn >/dev/null
done
KEY=$("$BIN" keys --data-dir "$D" add --department bench-ops --role admin --log warn 2>/dev/null | tail -1)
"$BIN" serve --data-dir "$D" --addr 127.0.0.1:$PORT --log info > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
# Until the spatial index is read (the first view's, in the background).
for _ in $(seq 1 240); do
  curl -sf http://127.0.0.1:$PORT/healthz 2>/dev/null | grep -q '"spatial_index":"ready"' && break
  sleep 0.5
done
memory() {
  curl -s -H "Authorization: Bearer $KEY" http://127.0.0.1:$PORT/metrics \
    | sed -n 's/^jichu_memory_bytes{part="\(.*\)"} \(.*\)$/\1 \2/p' | sort \
    | awk -v at="$1" '{v[$1]=$2/1048576} END {printf "| %s | %.0f | %.0f | %.0f | %.0f | %.0f |\n", at,
        v["resident_anonymous"], v["block_cache"], v["memtables"], v["spatial_index"],
        v["resident_anonymous"]-v["block_cache"]-v["memtables"]-v["spatial_index"]}'
}
echo "| after | heap MiB | block cache | memtables | spatial index | other |"
echo "|---|---:|---:|---:|---:|---:|"
memory "start"
for i in $(seq 1 "$ROUNDS"); do
  s=$(( i % 2 == 1 ? 7 : 8 ))
  "$BIN" load --server http://127.0.0.1:$PORT --key "$KEY" --spec "$WORK/u$s/citizens.toml" \
    "$WORK/u$s/citizens.csv" --log warn > /dev/null 2>&1
  sleep 8
  memory "load $i (seed $s)"
done
echo
echo "peak RSS: $(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' /proc/$SERVER/status)"
echo "full-text part of each publication (s): $(sed 's/\x1b\[[0-9;]*m//g' "$WORK/serve.log" \
  | sed -n 's/.*published.*text_seconds=\([0-9.]*\).*/\1/p' | awk '{printf "%.2f ", $1}')"
