#!/usr/bin/env bash
# The scale benchmark with each of several binaries in turn, on the same machine, so that a
# change is measured against its baseline in one run (the machine is shared and noisy: list
# each binary twice, alternated).
#
#   N=2000000 QS=0.5 benches/ab_scale.sh before=/tmp/jichu-old after=target/release/jichu …
#
# Each run is `jichu bench --citizens N --no-http --query-scale QS` in a fresh folder
# /tmp/ab-TAG; its Markdown table goes to /tmp/ab-TAG-HHMM.md and its JSON beside it. Prints
# each run's wall time and peak RSS. BENCH_ARGS adds flags to every run (e.g.
# BENCH_ARGS=--index-after-load, which times the store alone).
set -euo pipefail
for pair in "$@"; do
  tag=${pair%%=*}
  bin=${pair#*=}
  stamp=$(date +%H%M%S)
  rm -rf "/tmp/ab-$tag"
  /usr/bin/time -f "%e s, peak RSS %M KB" "$bin" bench --citizens "${N:-2000000}" --no-http \
    --query-scale "${QS:-0.5}" ${BENCH_ARGS:-} --data-dir "/tmp/ab-$tag" --out "/tmp/ab-$tag-$stamp.json" \
    > "/tmp/ab-$tag-$stamp.md" 2> "/tmp/ab-$tag.log"
  echo "$tag ($stamp): $(tail -1 "/tmp/ab-$tag.log")"
done
