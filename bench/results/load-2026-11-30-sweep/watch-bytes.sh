#!/bin/bash
# bwatch.sh OUT SECS: write_bytes and the log's group count every second
out=$1; : > $out
for i in $(seq 1 $2); do
  sleep 1
  pid=$(pgrep -x nudge | head -1); [ -z "$pid" ] && continue
  wb=$(awk '/^write_bytes/{print $2}' /proc/$pid/io 2>/dev/null)
  m=$(curl -s 127.0.0.1:9464/metrics | grep -E '^nudge_storage_commit_duration_seconds_count|^nudge_storage_checkpoint_duration_seconds_count|^nudge_storage_writes_total' | awk '{printf "%s=%s ", $1, $2}')
  echo "$(date +%s) wb=$wb $m" >> $out
done
