#!/bin/bash
# How the commit-interval table of bench/RESULTS.md (2026-11-30) was measured:
# `nudge serve` by hand with its metrics endpoint on (the load bench turns it
# off), loaded by `nudge-bench load --target`, commits read from
# nudge_storage_commit_duration_seconds_count afterwards. catalog.toml and
# model.json are the load bench's generated synthetic catalog and model,
# copied from a running bench's server directory.
# usage: run.sh RATE COMMIT_INTERVAL_US
rm -rf /tmp/manual/data
taskset -c 0 /work/main/target/release/nudge serve --listen 127.0.0.1:47001 --metrics-listen 127.0.0.1:47002 --catalog /tmp/manual/catalog.toml --model /tmp/manual/model.json --data-dir /tmp/manual/data --set log=warn --set storage.commit_interval_us=$2 > /tmp/manual/server.log 2>&1 &
SP=$!
sleep 2
SPID=$(pgrep -f "listen 127.0.0.1:47001" | grep -v taskset | tail -1)
m() { curl -s 127.0.0.1:47002/metrics | grep -E "^nudge_storage_commit(s_total|_duration_seconds_count|_writes_sum|_writes_count)|^nudge_storage_writes" ; }
/work/main/target/release/nudge-bench load --target 127.0.0.1:47001 --server-pid $SPID --rate $1 --pin --warmup 3 --duration 10 --out /tmp/manual/out-$1-$2 2>&1 | grep -E "^\| decide \| $1 \| decide" | head -1
m
kill $SP; sleep 1
