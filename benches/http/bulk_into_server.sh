#!/usr/bin/env bash
# What the first load of a registry into a running server costs and leaves in its memory: for
# each binary in turn, `jichu serve` on an empty data dir, the citizens' extract of EXTRACTS
# (`jichu gen --citizens N --out EXTRACTS`) submitted by path (JSON to `POST /v1/loads`, the
# file hard-linked into the import folder), polled until published; then the publication's
# spatial step, the server's `jichu_memory_bytes` gauges and resident set 2 s later, and its
# peak RSS (`/usr/bin/time -v`). The page cache is dropped before each (needs root).
#
#   benches/http/bulk_into_server.sh EXTRACTS BIN [BIN…]     e.g. OLD NEW OLD NEW
set -euo pipefail
X=$1; shift
PORT=18431
for B in "$@"; do
  D=$(mktemp -d /tmp/jichu-bulk-XXXX)
  mkdir -p "$D/import" && ln "$X/citizens.csv" "$D/import/citizens.csv"
  sync; echo 3 > /proc/sys/vm/drop_caches || true
  /usr/bin/time -v "$B" serve --insecure-no-auth --data-dir "$D" --addr 127.0.0.1:$PORT --log info > "$D.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.2; done
  start=$(date +%s.%N)
  id=$(python3 -c "import json,sys; print(json.dumps({'spec': open(sys.argv[1]).read(), 'files': ['citizens.csv']}))" "$X/citizens.toml" |
    curl -s -X POST -H 'content-type: application/json' --data-binary @- http://127.0.0.1:$PORT/v1/loads |
    python3 -c "import json,sys; print(json.load(sys.stdin)['load_id'])")
  while :; do
    st=$(curl -s http://127.0.0.1:$PORT/v1/loads/$id | python3 -c "import json,sys; print(json.load(sys.stdin)['status'])")
    case $st in published|failed|cancelled) break ;; esac
    sleep 0.5
  done
  end=$(date +%s.%N)
  sleep 2
  PID=$(pgrep -P $SERVER | head -1)
  gauges=$(curl -s http://127.0.0.1:$PORT/metrics | sed -n 's/^jichu_memory_bytes{part="\(spatial_index[a-z_]*\|resident_[a-z]*\)"} \(.*\)/\1 \2/p' |
    awk '{printf "%s=%.1fMiB ", $1, $2/1048576}')
  rss=$(awk '/VmRSS|RssAnon/ {printf "%s%.1fMiB ", $1, $2/1024}' /proc/$PID/status)
  step=$(sed 's/\x1b\[[0-9;]*m//g' "$D.log" | grep "spatial index in step" | tail -1 | grep -o 'seconds="[0-9.]*"' || true)
  kill -TERM $PID; wait $SERVER || true
  peak=$(awk '/Maximum resident/ {print $NF}' "$D.log")
  echo "$B: $st, submission to publication $(echo "$end - $start" | bc) s, spatial step $step; after: $rss$gauges; peak RSS $peak KB"
  rm -rf "$D" "$D.log"
done
