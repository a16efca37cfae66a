#!/bin/sh
# Fixed-rate ladder, interleaved: the Python peer, nudge in memory, nudge durable.
set -u
cd /work/main
out=bench/results/load-2026-11-30-peer-ladder
mkdir -p $out
for rate in 100 300 1000 3000; do
  for server in peer memory durable; do
    case $server in
      peer) extra="--target 127.0.0.1:50151 --server-pid $(cat peer.pid)";;
      memory) extra="--memory";;
      durable) extra="";;
    esac
    ./target/release/nudge-bench load --rate $rate --pin --repeat 3 --warmup 2 --duration 5 $extra \
      --out $out/$server-$rate > $out/$server-$rate.log 2>&1
    echo "== $server $rate"; grep -E "^\| (check|decide) \| [0-9]+ \| (check|decide) " $out/$server-$rate/results.md | head -4
  done
done
# Then nudge alone at 6,000/s (past its saturation), in memory and durable:
#   nudge-bench load --rate 6000 --pin --repeat 3 --warmup 2 --duration 5 [--memory] --out $out/{memory,durable}-6000
# The peer was started first, on core 0, with its pid in peer.pid:
#   taskset -c 0 bench/python/.venv/bin/python bench/python/peer_server.py --listen 127.0.0.1:50151 & echo $! > peer.pid
