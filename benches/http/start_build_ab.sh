#!/usr/bin/env bash
# What a start that must build every spatial layer costs: for two rounds, each binary in turn
# serves DATA with `spatial/*.idx` removed and the page cache dropped, under `/usr/bin/time -v`,
# and is stopped once its log says "spatial index open"; prints the build's seconds and the
# process's peak RSS. Needs root (drop_caches) and a store no server holds.
#
#   benches/http/start_build_ab.sh DATA BIN [BIN…]
set -euo pipefail
D=$1; shift
for round in 1 2; do
  for B in "$@"; do
    rm -f "$D"/spatial/*.idx
    sync; echo 3 > /proc/sys/vm/drop_caches || true
    log=$(mktemp /tmp/jichu-start-XXXX.log)
    /usr/bin/time -v "$B" serve --data-dir "$D" --addr 127.0.0.1:0 --log info > "$log" 2>&1 &
    SERVER=$!
    for _ in $(seq 1 1200); do grep -q "spatial index open" "$log" && break; sleep 0.5; done
    sleep 1
    kill -TERM "$(pgrep -P $SERVER | head -1)"; wait $SERVER || true
    seconds=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep "spatial index open" | grep -o 'seconds="[0-9.]*"')
    echo "$B round $round: $seconds, peak RSS $(awk '/Maximum resident/ {print $NF}' "$log") KB"
    rm -f "$log"
  done
done
