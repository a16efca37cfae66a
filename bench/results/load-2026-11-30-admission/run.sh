#!/bin/bash
# Admission past capacity: the build before (`shed`: every calm interval
# raised the limit by a quarter, and refusals were timed like answers)
# against this commit (`gate`), interleaved, 5,000 Decide/s + 1,000 Track/s
# offered for 15 s, server pinned to one core, the admission controller's
# every change logged at debug (each step's server.log).
#
#   SHED=/path/to/old/release/dir GATE=/path/to/new/release/dir ./run.sh OUT ROUNDS
#
# Each directory holds `nudge` and `nudge-bench` (release builds).
set -euo pipefail
out=${1:?output directory}; rounds=${2:-2}
mkdir -p "$out"
for round in $(seq 1 "$rounds"); do
  for build in shed gate; do
    dir=$SHED; [ "$build" = gate ] && dir=$GATE
    "$GATE/nudge-bench" load --rate 5000 --events-rate 1000 --pin --warmup 2 --duration 15 \
      --nudge-bin "$dir/nudge" --set 'log=info,nudge_service::grpc::admission=debug' \
      --out "$out/$build-$round" | grep '^| decide' | awk '!seen[$0]++' | sed "s/^/$build-$round /" >> "$out/summary.txt"
    sleep 3
  done
done
