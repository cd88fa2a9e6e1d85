#!/usr/bin/env bash
# Starts a local 3-master Redis Cluster (no replicas) for development, with
# the production durability settings, in ./redis-cluster-dev (or $DIR).
#
#   deploy/redis/start-cluster.sh            # ports 7001-7003
#   BASE_PORT=7101 deploy/redis/start-cluster.sh
#   deploy/redis/start-cluster.sh stop       # stop it (data kept)
#
# Then run the server with:
#   LOYALTY__STORE__BACKEND=redis \
#   LOYALTY__STORE__URL=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003 \
#   cargo run -- serve
set -euo pipefail
BASE_PORT=${BASE_PORT:-7001}
DIR=${DIR:-$PWD/redis-cluster-dev}
PORTS=("$BASE_PORT" "$((BASE_PORT + 1))" "$((BASE_PORT + 2))")

if [ "${1:-}" = "stop" ]; then
    for p in "${PORTS[@]}"; do redis-cli -p "$p" shutdown nosave 2>/dev/null || true; done
    exit 0
fi

for p in "${PORTS[@]}"; do
    mkdir -p "$DIR/$p"
    redis-server --port "$p" --bind 127.0.0.1 --dir "$DIR/$p" --daemonize yes \
        --logfile "$DIR/$p/redis.log" --pidfile "$DIR/$p/redis.pid" \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
        --appendonly yes --appendfsync always
done
for p in "${PORTS[@]}"; do
    until redis-cli -p "$p" ping >/dev/null 2>&1; do sleep 0.1; done
done

# Create the cluster only once; a restart reuses nodes.conf.
if ! redis-cli -p "${PORTS[0]}" cluster info | grep -q 'cluster_known_nodes:3'; then
    redis-cli --cluster create "${PORTS[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes
fi
for p in "${PORTS[@]}"; do
    until redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok'; do sleep 0.1; done
done
echo "cluster ok on ports ${PORTS[*]} (data in $DIR)"
