#!/bin/bash
# Checkpoints under sustained events: the build before (checkpoints journal
# each customer's change, then settle the journal's oldest customers into
# their snapshots; 1 s interval) against this commit (checkpoints write the
# snapshots directly; 5 s interval), interleaved, same machine, same bench.
#
#   BEFORE=/path/to/old/release/dir AFTER=/path/to/new/release/dir ./run.sh OUT
#
# Each directory holds `nudge` and `nudge-bench` (release builds). The
# server's Prometheus metrics are turned on through a wrapper (the bench
# starts it with `--metrics-listen off`) so that `watch` can sample the
# checkpoint histogram, the journal gauge, RSS and /proc write_bytes every
# 5 s into OUT/<step>.watch.
set -euo pipefail
out=${1:?output directory}
mkdir -p "$out"
wrapper="$out/nudge-with-metrics"
cat > "$wrapper" <<'WRAP'
#!/bin/bash
args=()
for a in "$@"; do if [ "$a" = "off" ]; then args+=("127.0.0.1:9464"); else args+=("$a"); fi; done
exec "$REAL_NUDGE_BIN" "${args[@]}"
WRAP
chmod +x "$wrapper"

watch() { # watch FILE SECONDS
  : > "$1"
  for _ in $(seq 1 $(( $2 / 5 ))); do
    sleep 5
    pid=$(pgrep -x nudge | head -1 || true)
    [ -z "$pid" ] && continue
    rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status 2>/dev/null || true)
    wb=$(awk '/^write_bytes/{print $2}' /proc/$pid/io 2>/dev/null || true)
    m=$(curl -s 127.0.0.1:9464/metrics | grep -E "^nudge_storage_checkpoint_duration_seconds_(sum|count) |^nudge_storage_journal_records |^nudge_actors_live " | tr '\n' ' ' || true)
    echo "$(date +%T) rss_kib=$rss write_bytes=$wb $m" >> "$1"
  done
}

step() { # step NAME BUILD ARGS...
  local name=$1 build=$2; shift 2
  watch "$out/$name.watch" 70 &
  REAL_NUDGE_BIN="$build/nudge" "$AFTER/nudge-bench" load --pin --warmup 2 --duration 60 \
    --nudge-bin "$wrapper" --out "$out/$name" "$@" | grep '^| decide' | sed "s/^/$name /" | awk '!seen[$0]++' | tee -a "$out/summary.txt"
  wait
  sleep 5
}

for round in 1 2; do
  for build in before after; do
    dir=$BEFORE; [ "$build" = after ] && dir=$AFTER
    step "events-$build-$round" "$dir" --rate 250 --events-rate 5000
    step "mixed-$build-$round" "$dir" --rate 1000 --events-rate 1000
  done
done
