#!/usr/bin/env bash
# A local nudge cluster on one machine: three Redis primaries (every write
# fsynced to the append-only file) joined into a Redis Cluster, and three
# `nudge serve --cluster` nodes on it, serving the embedded demo.
#
#   tests/cluster/local.sh                          # builds nudge (release), starts all
#   NUDGE=target/debug/nudge tests/cluster/local.sh  # with a binary already built
#
# Redis listens on 127.0.0.1:7001-7003, the nodes' gRPC on 127.0.0.1:50051-50053
# and their metrics on 127.0.0.1:9464-9466. CLUSTER_REDIS_PORT,
# CLUSTER_NUDGE_PORT and CLUSTER_METRICS_PORT move the first of each three;
# CLUSTER_DIR (default ./nudge-cluster) holds Redis's files and the nodes'
# data and logs, kept for the next start. CLUSTER_NUDGE_ARGS adds arguments to every
# node's `nudge serve` (e.g. "--catalog FILE --model FILE"). CLUSTER_REPLICAS=1
# gives each primary a replica (three more Redis processes, on the next three
# ports) and the nodes `storage.redis_durability = "replicas"`: every write
# waits for a replica, so a primary's failover loses nothing acknowledged.
# Ctrl-C (or SIGTERM) stops the nodes, then Redis.
set -euo pipefail
cd "$(dirname "$0")/../.."

redis_port=${CLUSTER_REDIS_PORT:-7001}
replicas=${CLUSTER_REPLICAS:-0}
case "$replicas" in
0 | 1) ;;
*)
    echo "CLUSTER_REPLICAS must be 0 or 1, not '$replicas'" >&2
    exit 1
    ;;
esac
redis_count=$((3 * (1 + replicas)))
nudge_port=${CLUSTER_NUDGE_PORT:-50051}
metrics_port=${CLUSTER_METRICS_PORT:-9464}
dir=${CLUSTER_DIR:-nudge-cluster}

for program in redis-server redis-cli; do
    if ! command -v "$program" >/dev/null 2>&1; then
        echo "$program is missing: install Redis 7 or later (Debian: apt-get install redis-server)" >&2
        exit 1
    fi
done
if [ -z "${NUDGE:-}" ]; then
    cargo build --release --locked -p nudge-service
    NUDGE=target/release/nudge
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

redis_pids=()
nudge_pids=()
stop() {
    trap - EXIT INT TERM
    echo "stopping"
    # The nodes first, so they give their partitions back while Redis runs.
    if [ "${#nudge_pids[@]}" -gt 0 ]; then
        kill -TERM "${nudge_pids[@]}" 2>/dev/null || true
        wait "${nudge_pids[@]}" 2>/dev/null || true
    fi
    if [ "${#redis_pids[@]}" -gt 0 ]; then
        kill -TERM "${redis_pids[@]}" 2>/dev/null || true
        wait "${redis_pids[@]}" 2>/dev/null || true
    fi
}
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

# Waits up to 20 s until `redis-cli -p PORT COMMAND…` prints EXPECTED.
await_redis() {
    local port=$1 expected=$2
    shift 2
    for _ in $(seq 200); do
        if redis-cli -p "$port" "$@" 2>/dev/null | grep -q "$expected"; then
            return 0
        fi
        sleep 0.1
    done
    echo "Redis on port $port did not answer '$expected' to '$*'; see $dir/redis-$port/redis.log" >&2
    exit 1
}

addresses=()
urls=()
for ((i = 0; i < redis_count; i++)); do
    port=$((redis_port + i))
    mkdir -p "$dir/redis-$port"
    redis-server --port "$port" --bind 127.0.0.1 \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
        --appendonly yes --appendfsync always --save "" \
        --dir "$dir/redis-$port" --logfile redis.log &
    redis_pids+=($!)
    addresses+=("127.0.0.1:$port")
    urls+=("redis://127.0.0.1:$port")
done
for ((i = 0; i < redis_count; i++)); do
    await_redis $((redis_port + i)) PONG PING
done
# The first start joins them into a cluster (the first three primaries, the
# others their replicas); later starts find it in their nodes.conf.
if ! redis-cli -p "$redis_port" CLUSTER INFO | grep -q "cluster_slots_assigned:16384"; then
    redis-cli --cluster create "${addresses[@]}" --cluster-replicas "$replicas" --cluster-yes >"$dir/cluster-create.log"
fi
for ((i = 0; i < redis_count; i++)); do
    await_redis $((redis_port + i)) cluster_state:ok CLUSTER INFO
done
durability=()
if [ "$replicas" -gt 0 ]; then
    # Every primary has its replica before a node writes (WAIT needs one),
    # whichever process is the primary after earlier failovers.
    for ((i = 0; i < redis_count; i++)); do
        await_redis $((redis_port + i)) "connected_slaves:1\|master_link_status:up" INFO replication
    done
    durability=(--set storage.redis_durability=replicas)
    echo "Redis Cluster up: ${addresses[*]} (three primaries with a replica each, appendfsync always)"
else
    echo "Redis Cluster up: ${addresses[*]} (appendfsync always)"
fi

redis_urls=$(
    IFS=,
    echo "${urls[*]}"
)
read -r -a extra_args <<<"${CLUSTER_NUDGE_ARGS:-}"
for i in 0 1 2; do
    "$NUDGE" serve --cluster --redis "$redis_urls" \
        --listen "127.0.0.1:$((nudge_port + i))" \
        --metrics-listen "127.0.0.1:$((metrics_port + i))" \
        --web-listen off \
        --data-dir "$dir/node-$i" \
        --set "cluster.node_id=node-$i" \
        "${durability[@]}" \
        "${extra_args[@]}" \
        >"$dir/node-$i.log" 2>&1 &
    nudge_pids+=($!)
done

# Ready when the first node sees all three holding every partition.
ready=false
for _ in $(seq 300); do
    for pid in "${nudge_pids[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "a node stopped; its log is in $dir:" >&2
            tail -n 20 "$dir"/node-*.log >&2
            exit 1
        fi
    done
    status=$("$NUDGE" cluster status --server "127.0.0.1:$nudge_port" 2>/dev/null || true)
    if echo "$status" | grep -q ": 3 nodes, " &&
        echo "$status" | grep -q "every partition is held by the node placement gives it"; then
        ready=true
        break
    fi
    sleep 0.2
done
if [ "$ready" != true ]; then
    echo "the nodes did not settle within 60 s; their logs are in $dir" >&2
    exit 1
fi
echo "$status"
cat <<EOF

nudge cluster ready: any node answers for any customer.
  gRPC     127.0.0.1:$nudge_port, 127.0.0.1:$((nudge_port + 1)), 127.0.0.1:$((nudge_port + 2))
  metrics  http://127.0.0.1:$metrics_port/metrics (and the next two ports)
  logs     $dir/node-0.log …

Try:
  $NUDGE cluster status --server 127.0.0.1:$((nudge_port + 1))
  $NUDGE decide --server 127.0.0.1:$((nudge_port + 2)) --customer demo-1 --placement home_banner
Ctrl-C stops the cluster.
EOF
wait "${nudge_pids[@]}"
