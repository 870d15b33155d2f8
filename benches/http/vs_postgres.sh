#!/usr/bin/env bash
# jichu over HTTP against PostgreSQL 15, side by side in one run, on the same citizens:
# single-key reads (jichu `GET /v1/citizens/{id}` with wrk; PostgreSQL one indexed select per
# transaction with `pgbench -M prepared`, over TCP like wrk) and 100-key batches (`POST …/lookup`; one
# `WHERE n IN (100 values)` select), 16 connections and 2 client threads each, 10% absent keys.
#
#   [BIN=path/to/jichu] benches/http/vs_postgres.sh [N=1000000] [WORKDIR=/tmp/jichu-vs-pg] [SECONDS=20]
#
# PostgreSQL gets the citizens exactly as jichu holds them (`jichu export --format csv`, all
# columns text), keyed by an integer row number with a btree index: one integer index probe
# and a heap fetch per key, which favours it slightly over jichu's 18-character keys. Needs
# wrk and PostgreSQL 15 (apt-get install wrk postgresql). Runs as root: PostgreSQL as user
# postgres. Prints a Markdown table.
set -euo pipefail
N=${1:-1000000}
WORK=${2:-/tmp/jichu-vs-pg}
SECS=${3:-20}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/jichu-target}"
PGBIN=/usr/lib/postgresql/15/bin
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 2; }
[ -x "$PGBIN/postgres" ] || { echo "PostgreSQL 15 is needed: apt-get install postgresql" >&2; exit 2; }
# The test build makes the binary too (a binary-only build would compile RocksDB again);
# BIN=… measures another build (e.g. `cargo build --profile dist`'s) instead.
if [ -z "${BIN:-}" ]; then
  (cd "$ROOT" && cargo test --release --workspace --no-run -q)
  BIN="$CARGO_TARGET_DIR/release/jichu"
fi
mkdir -p "$WORK"
if [ ! -f "$WORK/loaded-$N" ]; then
  rm -rf "$WORK/data" "$WORK/x" "$WORK/pg"
  "$BIN" gen --citizens "$N" --out "$WORK/x"
  "$BIN" --data-dir "$WORK/data" --log warn load --spec "$WORK/x/citizens.toml" "$WORK/x/citizens.csv"
  "$BIN" --data-dir "$WORK/data" --log warn export --registry citizens --format csv --out "$WORK/citizens.csv"
  awk -F, -v n="$N" 'NR > 1 && (NR % int(n / 90000 + 1)) == 0 && k < 90000 { print $1; k++ }' "$WORK/x/citizens.csv" > "$WORK/ids.txt"
  "$BIN" gen --ids-from "$N" --citizens 10000 >> "$WORK/ids.txt"
  rm -rf "$WORK/x"
  install -d -o postgres "$WORK/pg"
  su postgres -c "$PGBIN/initdb -D $WORK/pg/data -A trust -E UTF8 --locale=C.UTF-8" >/dev/null
  touch "$WORK/loaded-$N"
fi
PORT=15432
PGSOCK="$WORK/pg"
su postgres -c "$PGBIN/pg_ctl -D $WORK/pg/data -o '-p $PORT -k $PGSOCK -c shared_buffers=2GB -c max_connections=64' -l $WORK/pg/log -w start" >/dev/null
JPORT=18090
"$BIN" --data-dir "$WORK/data" --log warn serve --insecure-no-auth --addr 127.0.0.1:$JPORT &
SERVER=$!
CPU_LOG=$(mktemp) # the client's CPU times of the last run (rate_wrk, rate_pg)
trap 'rm -f "$CPU_LOG"; kill $SERVER 2>/dev/null || true; su postgres -c "$PGBIN/pg_ctl -D $WORK/pg/data -m fast stop" >/dev/null || true' EXIT
PSQL="psql -h $PGSOCK -p $PORT -U postgres -q -v ON_ERROR_STOP=1"
if [ "$($PSQL -tAc "select to_regclass('citizens') is not null")" != t ]; then
  COLS=$(head -1 "$WORK/citizens.csv" | tr -d '\r' | awk -F, '{ for (i = 1; i <= NF; i++) printf "%s\"%s\" text", (i > 1 ? ", " : ""), $i }')
  $PSQL -c "create table citizens (n serial, $COLS)"
  COPYCOLS=$(head -1 "$WORK/citizens.csv" | tr -d '\r' | awk -F, '{ for (i = 1; i <= NF; i++) printf "%s\"%s\"", (i > 1 ? ", " : ""), $i }')
  $PSQL -c "\\copy citizens ($COPYCOLS) from '$WORK/citizens.csv' csv header"
  $PSQL -c "create unique index on citizens (n)" -c "vacuum analyze citizens"
fi
# Keys 1..N present; up to N*10/9: 10% absent, as for jichu.
MAXN=$((N * 10 / 9))
printf '\\set k random(1, %d)\nselect * from citizens where n = :k;\n' "$MAXN" > "$WORK/one.sql"
{
  for i in $(seq 1 100); do printf '\\set k%d random(1, %d)\n' "$i" "$MAXN"; done
  printf 'select * from citizens where n in ('
  for i in $(seq 1 100); do printf '%s:k%d' "$([ "$i" -gt 1 ] && echo ', ')" "$i"; done
  printf ');\n'
} > "$WORK/batch.sql"
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$JPORT/healthz" >/dev/null && break; sleep 0.2; done
export JICHU_IDS="$WORK/ids.txt"
# Where the two cores went: the client's CPU (user + system, from time(1)) and the machine's
# busy time (/proc/stat) over the run; the server's share is the difference. Per request, in
# µs: "client server". The rate alone hides that wrk and pgbench do not cost the same.
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat; }
per_request() { # RATE N BUSY0 BUSY1: "rate client-µs server-µs", the client's times from $CPU_LOG
  awk -v r="$1" -v n="$2" -v b0="$3" -v b1="$4" -v hz="$(getconf CLK_TCK)" '/^CLIENT/ { c = $2 + $3 }
    END { m = (b1 - b0) / hz; printf "%s %.1f %.1f\n", r, c * 1e6 / n, (m - c) * 1e6 / n }' "$CPU_LOG"
}
rate_wrk() { # prints "rate client-µs server-µs"
  local b0 out b1
  b0=$(busy)
  out=$(/usr/bin/time -o "$CPU_LOG" -f "CLIENT %U %S" wrk -t2 -c16 -d"${SECS}s" -s "$1" "http://127.0.0.1:$JPORT")
  b1=$(busy)
  per_request "$(awk '/Requests\/sec/ { print $2 }' <<<"$out")" "$(awk '/requests in/ { print $1 }' <<<"$out")" "$b0" "$b1"
}
# Over TCP on 127.0.0.1, as wrk reaches jichu (a Unix socket would spare PostgreSQL the TCP
# stack that jichu's clients pay: 55k against 38–42k tps in one trial on this machine).
rate_pg() {
  local b0 out b1
  b0=$(busy)
  out=$(/usr/bin/time -o "$CPU_LOG" -f "CLIENT %U %S" su postgres -c "pgbench -h 127.0.0.1 -p $PORT -n -M prepared -c 16 -j 2 -T $SECS -f $1 postgres" 2>/dev/null)
  b1=$(busy)
  per_request "$(awk '/^tps/ { print $3; exit }' <<<"$out")" "$(awk '/actually processed/ { print $NF }' <<<"$out")" "$b0" "$b1"
}
# Warm both: every key read once or so.
wrk -t2 -c16 -d10s -s "$HERE/get.lua" "http://127.0.0.1:$JPORT" >/dev/null
su postgres -c "pgbench -h 127.0.0.1 -p $PORT -n -M prepared -c 16 -j 2 -T 10 -f $WORK/one.sql postgres" >/dev/null 2>&1
read -r J1 J1C J1S < <(rate_wrk "$HERE/get.lua"); read -r P1 P1C P1S < <(rate_pg "$WORK/one.sql")
# The same keys with wrk's requests formatted once at the start: pgbench draws its keys in C,
# while get.lua builds each request in Lua on the cores the server runs on.
read -r J2 J2C J2S < <(rate_wrk "$HERE/get_pool.lua")
read -r JB _ _ < <(rate_wrk "$HERE/lookup.lua"); read -r PB _ _ < <(rate_pg "$WORK/batch.sql")
read -r JB2 _ _ < <(rate_wrk "$HERE/lookup_pool.lua")
echo
echo "| $N citizens, 16 connections, ${SECS} s each | jichu (HTTP) | PostgreSQL 15 | jichu / PostgreSQL |"
echo "|---|---|---|---|"
awk -v j="$J1" -v p="$P1" 'BEGIN { printf "| single key, requests/s | %.0f | %.0f | %.2f× |\n", j, p, j / p }'
awk -v j="$J2" -v p="$P1" 'BEGIN { printf "| single key, requests formatted in advance, requests/s | %.0f | %.0f | %.2f× |\n", j, p, j / p }'
awk -v j="$JB" -v p="$PB" 'BEGIN { printf "| 100-key batch, requests/s | %.0f | %.0f | %.2f× |\n", j, p, j / p }'
awk -v j="$JB" -v p="$P1" 'BEGIN { printf "| keys/s with 100-key batches, against PostgreSQL single keys | %.0f | %.0f | %.2f× |\n", j * 100, p, j * 100 / p }'
awk -v j="$JB2" -v p="$P1" 'BEGIN { printf "| the same, batches formatted in advance | %.0f | %.0f | %.2f× |\n", j * 100, p, j * 100 / p }'
awk -v j="$J1C" -v p="$P1C" 'BEGIN { printf "| single key: the client'"'"'s CPU a request (wrk get.lua / pgbench), µs | %.1f | %.1f | %.2f× |\n", j, p, j / p }'
awk -v j="$J1S" -v p="$P1S" 'BEGIN { printf "| single key: the server'"'"'s CPU a request (the machine'"'"'s busy time less the client'"'"'s), µs | %.1f | %.1f | %.2f× |\n", j, p, j / p }'
awk -v j="$J2C" -v s="$J2S" 'BEGIN { printf "| formatted in advance: client / server CPU a request, µs | %.1f / %.1f | | |\n", j, s }'
