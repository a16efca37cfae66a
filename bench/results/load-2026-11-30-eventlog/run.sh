#!/usr/bin/env bash
# Interleaved A/B of two nudge builds under the same load bench binary.
set -u
for round in 1 2 3 4; do
  for rate in 1000 3000; do
    for build in base head; do
      out=/tmp/ab/out-$build-$rate-r$round
      rm -rf "$out"
      timeout 180 /tmp/ab/head/nudge-bench load --rate $rate --events-rate 1000 --pin --warmup 2 --duration 8 \
        --nudge-bin /tmp/ab/$build/nudge --out "$out" > "$out.log" 2>&1
      echo "== $build $rate round $round"; grep -m3 "^| decide" "$out.log"
    done
  done
done
