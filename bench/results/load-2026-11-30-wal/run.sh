#!/usr/bin/env bash
# Interleaved A/B in one build: the durable store with its write-ahead log
# (the default, "wal") and without it (storage.write_ahead=false, "commit":
# every group of writes a redb commit, as before the log). Same nudge-bench
# binary, same load; rounds interleave the two so the host's noise falls on both.
set -u
bin=${BIN:-/tmp/ab/lz4}
out_root=${OUT:-/tmp/ab/wal}
mkdir -p "$out_root"
for round in 1 2 3; do
  for rate in 1000 3000 5000; do
    for store in wal commit; do
      extra=()
      [ "$store" = commit ] && extra=(--set storage.write_ahead=false)
      out=$out_root/$store-$rate-r$round
      rm -rf "$out"
      timeout 180 "$bin/nudge-bench" load --rate $rate --events-rate 1000 --pin --warmup 2 --duration 8 \
        --nudge-bin "$bin/nudge" "${extra[@]}" --out "$out" > "$out.log" 2>&1
      echo "== $store $rate round $round"; grep -m3 "^| decide" "$out.log"
    done
  done
done
