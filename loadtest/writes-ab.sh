#!/usr/bin/env bash
# The write path's table (issue 20): two server builds side by side, each
# on its own store, every scenario run against A, B, B, A in one session
# (closed model, USERS connections), each run with its own /health
# yardstick. Prints, per scenario and build, the ratio to /health, the
# client p99, req/s, the server's and redis-server's CPU per request, Redis
# script calls and commands per request (INFO commandstats), the server's
# own loyalty_store_round_trips_total per request (builds that export it),
# the load average at each run, and B over A.
#
#   loadtest/writes-ab.sh SERVER_BIN_A SERVER_BIN_B
#
# Setups, one after another: Redis AOF everysec (confirm, balance-number,
# pos-mix), Redis AOF always (confirm), a 3-master cluster, AOF everysec
# (pos-mix, confirm; one cluster, a key prefix per build). Knobs: USERS (64),
# DURATION (10s), WARMUP_SECS (3), YARDSTICK_SECS (5), CARDS (20000),
# ACTIVE (10000), BONUSES (2), OUT (loadtest-runs), SKIP_BUILD=1,
# SETUPS ("everysec always cluster"). Loopback only; every redis-server is
# its own (free port, temp dir), never the machine's 6379; every run is
# cut off after RUN_TIMEOUT seconds (120).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[ "$#" -eq 2 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
BIN_A=$(realpath "$1") BIN_B=$(realpath "$2")
USERS=${USERS:-64} DURATION=${DURATION:-10s} WARMUP_SECS=${WARMUP_SECS:-3} YARDSTICK_SECS=${YARDSTICK_SECS:-5}
CARDS=${CARDS:-20000} ACTIVE=${ACTIVE:-10000} BONUSES=${BONUSES:-2}
SETUPS=${SETUPS:-everysec always cluster}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
OUT=${OUT:-$ROOT/loadtest-runs}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --quiet -p loyalty-loadtest
LOADTEST=$TARGET/release/loyalty-loadtest
for tool in redis-server redis-cli curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install redis-server redis-tools curl python3)" >&2; exit 2; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
PIDS=()
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT
STAMP=$(date -u +%Y%m%d-%H%M%S)
DIR=$OUT/writes-ab-$STAMP
mkdir -p "$DIR"

# redis NAME FSYNC [args...]: a redis-server of our own, its port in
# REDIS_PORT (not printed: a $(...) subshell would lose its pid and leave
# it running after the script).
redis() {
  local name=$1 fsync=$2; shift 2
  REDIS_PORT=$(free_port); mkdir -p "$WORK/$name"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/$name" --save "" \
    --appendonly yes --appendfsync "$fsync" --daemonize no --logfile "$WORK/$name/redis.log" "$@" &
  PIDS+=($!)
  REDIS_PID[$REDIS_PORT]=$!
  until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done
}

declare -A PORT SERVER_PID NODES REDIS_PID
serve() { # NAME BIN URL PREFIX NODE_PORTS...
  local name=$1 bin=$2 url=$3 prefix=$4; shift 4
  NODES[$name]="$*"
  PORT[$name]=$(free_port)
  LOYALTY__DEMO__DATA_FILE= LOYALTY__LOG__LEVEL=warn LOYALTY__STORE__BACKEND=redis \
    LOYALTY__STORE__URL="$url" LOYALTY__STORE__KEY_PREFIX="$prefix" \
    LOYALTY__HTTP__BIND=127.0.0.1:${PORT[$name]} "$bin" serve >>"$WORK/server-$name.log" 2>&1 &
  SERVER_PID[$name]=$!
  PIDS+=($!)
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:${PORT[$name]}/ready" >/dev/null 2>&1 && break
    kill -0 "${SERVER_PID[$name]}" 2>/dev/null || { echo "server $name did not start:" >&2; tail -20 "$WORK/server-$name.log" >&2; exit 2; }
    sleep 0.2
  done
  "$LOADTEST" prepare --host "http://127.0.0.1:${PORT[$name]}" --cards "$CARDS" --active "$ACTIVE" \
    --bonuses-per-card "$BONUSES" --manifest-dir "$WORK/datasets-$name" >/dev/null
}

# snapshot NAME FILE: what the run's deltas are taken from — the
# redis-servers' CPU ticks and INFO commandstats (summed over the build's
# nodes), the server's CPU ticks and its /metrics.
snapshot() {
  local name=$1 file=$2
  {
    echo "loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
    for port in ${NODES[$name]}; do
      echo "redis_ticks $(awk '{print $14 + $15}' "/proc/${REDIS_PID[$port]}/stat")"
      redis-cli -p "$port" info commandstats | tr -d '\r' | grep '^cmdstat_' || true
    done
    echo "server_ticks $(awk '{print $14 + $15}' "/proc/${SERVER_PID[$name]}/stat")"
    curl -sf "http://127.0.0.1:${PORT[$name]}/metrics" | grep '^loyalty_store_round_trips_total' || true
  } >"$file"
}

run() { # SETUP SCENARIO NAME ROUND
  local dir="$DIR/$1-$2-$3-$4" redis_args=()
  # Redis commands per request in the tool's own report: one node only
  # (the tool reads one INFO).
  [ "$1" = cluster ] || redis_args=(--redis "redis://127.0.0.1:${NODES[$3]}")
  mkdir -p "$dir"
  snapshot "$3" "$dir/before.txt"
  # No --notes: in the closed model it is goose's own option, which goose
  # refuses without a --report-file ("invalid option or value specified").
  # The load average is in before.txt.
  timeout "$RUN_TIMEOUT" "$LOADTEST" run "$2" --host "http://127.0.0.1:${PORT[$3]}" --cards "$CARDS" --active "$ACTIVE" \
    --bonuses-per-card "$BONUSES" --manifest-dir "$WORK/datasets-$3" \
    --model closed --users "$USERS" --run-time "$DURATION" --warmup-secs "$WARMUP_SECS" \
    --yardstick-secs "$YARDSTICK_SECS" --server-pid "${SERVER_PID[$3]}" --backend redis "${redis_args[@]}" \
    --output-dir "$dir" >"$dir.log" 2>&1 \
    || echo "== $1 $2 $3 round $4 FAILED: $dir.log" >&2
  snapshot "$3" "$dir/after.txt"
  echo "== $1 $2 $3 round $4 done (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
}

abba() { # SETUP SCENARIO...
  local setup=$1; shift
  for s in "$@"; do
    for r in "A 1" "B 1" "B 2" "A 2"; do set -- $r; run "$setup" "$s" "$1" "$2"; done
  done
}

for setup in $SETUPS; do
  echo "== $setup ($(uptime | sed 's/.*load average/load average/'))" >&2
  case $setup in
    everysec|always)
      redis "a-$setup" "$setup"; a=$REDIS_PORT
      redis "b-$setup" "$setup"; b=$REDIS_PORT
      serve A "$BIN_A" "redis://127.0.0.1:$a/0" A "$a"
      serve B "$BIN_B" "redis://127.0.0.1:$b/0" B "$b"
      if [ "$setup" = everysec ]; then abba "$setup" confirm balance-number pos-mix; else abba "$setup" confirm; fi
      ;;
    cluster)
      ports=()
      for i in 0 1 2; do
        redis "node$i" everysec --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000
        ports+=("$REDIS_PORT")
      done
      redis-cli --cluster create $(printf '127.0.0.1:%s ' "${ports[@]}") --cluster-replicas 0 --cluster-yes >/dev/null
      for p in "${ports[@]}"; do
        until redis-cli -p "$p" cluster info | grep -q cluster_state:ok; do sleep 0.2; done
      done
      urls=$(printf 'redis://127.0.0.1:%s,' "${ports[@]}"); urls=${urls%,}
      serve A "$BIN_A" "$urls" A "${ports[@]}"
      serve B "$BIN_B" "$urls" B "${ports[@]}"
      abba "$setup" pos-mix confirm
      ;;
    *) echo "unknown setup $setup" >&2; exit 2 ;;
  esac
  stop_all
done

python3 "$ROOT/loadtest/writes_ab_table.py" "$DIR" | tee "$DIR/table.md"
echo "== runs under $DIR"
