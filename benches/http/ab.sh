#!/usr/bin/env bash
# Two (or more) jichu servers in turn, measured with wrk: single-key GETs, 100-key batch
# lookups and /healthz, plus the server's peak RSS, and the store's size. Give each twice
# (A B A B) to see the machine's noise beside the difference.
#
#   benches/http/ab.sh DATA_DIR IDS_FILE BIN_A BIN_B [BIN …]
#
# DATA_DIR holds a loaded store (e.g. the one `vs_postgres.sh` makes); IDS_FILE one identity
# number per line (present and absent). A server given as `BIN=DIR` serves DIR instead: to
# compare store options that only new files carry, load the same extract into two
# directories and give one binary with each. `GET=get_pool` takes single-key requests
# formatted once at the start (`get_pool.lua`) rather than built per request (`get.lua`);
# `BATCH=lookup_pool` the same for batches.
# Beside each single-key rate, the server's CPU time per request (user and system µs, from
# /proc/PID/stat): steadier than the rate on a shared machine, where wrk's share of the
# cores moves the rate. Needs wrk.
set -euo pipefail
DATA=$1
export JICHU_IDS=$2
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=18091
for server in "$@"; do
  bin=${server%%=*}
  data=$DATA
  [ "$bin" = "$server" ] || data=${server#*=}
  "$bin" --data-dir "$data" --log warn serve --insecure-no-auth --addr 127.0.0.1:$PORT >/dev/null 2>&1 &
  S=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
  wrk -t2 -c16 -d4s -s "$HERE/${GET:-get}.lua" "http://127.0.0.1:$PORT" >/dev/null
  t0=$(awk '{ print $14, $15 }' "/proc/$S/stat")
  out=$(wrk -t2 -c16 -d10s -s "$HERE/${GET:-get}.lua" "http://127.0.0.1:$PORT")
  t1=$(awk '{ print $14, $15 }' "/proc/$S/stat")
  g=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  n=$(awk '/requests in/ { print $1 }' <<<"$out")
  cpu=$(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    printf "%.1f user + %.1f sys µs", (y[1] - x[1]) * 1e6 / hz / n, (y[2] - x[2]) * 1e6 / hz / n }')
  b=$(wrk -t2 -c16 -d10s -s "$HERE/${BATCH:-lookup}.lua" "http://127.0.0.1:$PORT" | awk '/Requests\/sec/ { print $2 }')
  z=$(wrk -t2 -c16 -d5s "http://127.0.0.1:$PORT/healthz" | awk '/Requests\/sec/ { print $2 }')
  rss=$(awk '/VmHWM/ { print $2 }' "/proc/$S/status")
  kill "$S"
  wait "$S" 2>/dev/null || true
  echo "$server: single key $g req/s ($cpu a request), 100-key batch $b req/s, /healthz $z req/s, peak RSS $rss KiB, store $(du -sm "$data/store" | cut -f1) MB"
done
