#!/usr/bin/env bash
# What `store.min_replicas_acked = 1` costs a confirm (docs/redis.md,
# "Replicas and acknowledged writes"): one redis-server master (AOF
# everysec, as loadtest/run.sh) with one replica, both on loopback in a
# temp dir; two servers of the same build on it, A with
# min_replicas_acked = 0 and B with 1 (each its own key prefix and data
# set); the confirm scenario at RATE against A, B, B, A in one session.
# DEPLOYMENT=sentinel puts three sentinels (quorum 2) in front: the servers
# find the master through them (`store.sentinel`).
#
#   loadtest/replica-ack.sh            # RATE=300 DURATION=20s CARDS=20000 ACTIVE=2000
#   DEPLOYMENT=sentinel loadtest/replica-ack.sh
#
# Reports land in loadtest-runs/replica-ack-DEPLOYMENT-*/ (summary.md per run); the
# last lines print confirm p50/p99 and the /health yardstick of each run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RATE=${RATE:-300}
DURATION=${DURATION:-20s}
CARDS=${CARDS:-20000}
ACTIVE=${ACTIVE:-2000}
OUT=${OUT:-$ROOT/loadtest-runs}
BIN=${BIN_DIR:-$ROOT/target/release}
DEPLOYMENT=${DEPLOYMENT:-single}
case "$DEPLOYMENT" in single|sentinel) ;; *) echo "DEPLOYMENT=single|sentinel" >&2; exit 2;; esac
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --quiet -p loyalty -p loyalty-loadtest

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

MASTER=$(free_port) REPLICA=$(free_port)
for role in master replica; do
  mkdir -p "$WORK/$role"
  port=$MASTER; extra=()
  if [ "$role" = replica ]; then port=$REPLICA; extra=(--replicaof 127.0.0.1 "$MASTER"); fi
  redis-server --port "$port" --bind 127.0.0.1 --dir "$WORK/$role" --save "" --appendonly yes \
    --appendfsync everysec --daemonize no --logfile "$WORK/$role/redis.log" "${extra[@]}" &
  PIDS+=($!)
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
done
until redis-cli -p "$REPLICA" info replication | grep -q 'master_link_status:up'; do sleep 0.1; done

# Where the servers find the master.
STORE_ENV=(LOYALTY__STORE__URL=redis://127.0.0.1:$MASTER/0)
if [ "$DEPLOYMENT" = sentinel ]; then
  URLS=()
  for i in 0 1 2; do
    port=$(free_port)
    mkdir -p "$WORK/sentinel$i"
    printf 'sentinel monitor loyalty 127.0.0.1 %s 2\nsentinel down-after-milliseconds loyalty 5000\n' "$MASTER" \
      >"$WORK/sentinel$i/sentinel.conf"
    redis-server "$WORK/sentinel$i/sentinel.conf" --sentinel --port "$port" --bind 127.0.0.1 \
      --dir "$WORK/sentinel$i" --daemonize no --logfile "$WORK/sentinel$i/redis.log" &
    PIDS+=($!)
    until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
    URLS+=("redis://127.0.0.1:$port")
  done
  # Each knows the replica (else the server's view of the set is partial).
  for u in "${URLS[@]}"; do
    until redis-cli -p "${u##*:}" sentinel replicas loyalty | grep -q "$REPLICA"; do sleep 0.2; done
  done
  STORE_ENV=(LOYALTY__STORE__SENTINEL__MASTER_NAME=loyalty
    "LOYALTY__STORE__SENTINEL__URLS=$(IFS=,; echo "${URLS[*]}")")
fi

declare -A PORT PID
for acked in 0 1; do
  port=$(free_port)
  env LOYALTY__HTTP__BIND=127.0.0.1:$port LOYALTY__DEMO__DATA_FILE= LOYALTY__LOG__LEVEL=warn \
    LOYALTY__STORE__BACKEND=redis "${STORE_ENV[@]}" \
    LOYALTY__STORE__KEY_PREFIX=acked$acked LOYALTY__STORE__MIN_REPLICAS_ACKED=$acked \
    "$BIN/loyalty" serve >>"$WORK/server-$acked.log" 2>&1 &
  PID[$acked]=$! PORT[$acked]=$port
  PIDS+=($!)
  until curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1; do sleep 0.1; done
  "$BIN/loyalty-loadtest" prepare --host "http://127.0.0.1:$port" --cards "$CARDS" --active "$ACTIVE" \
    --manifest-dir "$WORK/datasets-$acked"
done

STAMP=$(date -u +%Y%m%d-%H%M%S)
RUNS=()
for step in 0:A 1:B 1:B2 0:A2; do
  acked=${step%%:*} label=${step#*:}
  dir="$OUT/replica-ack-$DEPLOYMENT-$STAMP/$label-acked$acked"
  "$BIN/loyalty-loadtest" run confirm --host "http://127.0.0.1:${PORT[$acked]}" --cards "$CARDS" \
    --active "$ACTIVE" --manifest-dir "$WORK/datasets-$acked" --rate "$RATE" --run-time "$DURATION" \
    --warmup-secs 3 --yardstick-secs 5 --server-pid "${PID[$acked]}" --backend redis \
    --fsync "everysec + 1 replica ($DEPLOYMENT), min_replicas_acked=$acked" --redis "redis://127.0.0.1:$MASTER" \
    --output-dir "$dir" || true
  RUNS+=("$dir")
done
echo "== $DEPLOYMENT: confirm at $RATE/s, $DURATION each, A=min_replicas_acked 0, B=1 (order A B B A)"
for dir in "${RUNS[@]}"; do
  echo "-- $dir"
  grep -E '^\| (request \||confirm \| [0-9]|/health|\*\*ratio)' "$dir/summary.md" || sed -n 1,80p "$dir/summary.md"
done
