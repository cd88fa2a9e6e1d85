#!/usr/bin/env bash
# Compares two server builds in one run on this machine (127.0.0.1 only):
# both run side by side, each on its own store, and the scenario runs
# against A, B, B, A, so that drift on a shared machine hits both alike.
# Each run carries its own /health yardstick; compare the ratios.
#
#   loadtest/compare.sh SERVER_BIN_A SERVER_BIN_B [SCENARIO] [BACKEND]
#
# SCENARIO: pos-mix (default) | read-only | write-heavy | lifecycle
# BACKEND:  memory (default) | redis (a redis-server each, AOF, FSYNC)
# Knobs as for run.sh: DURATION (30s), USERS (32), YARDSTICK_SECS (10),
# CARDS (100000), ACTIVE (10000), BONUSES (2), FSYNC (everysec), OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[ "$#" -ge 2 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
BIN_A=$(realpath "$1") BIN_B=$(realpath "$2")
SCENARIO=${3:-pos-mix}
BACKEND=${4:-memory}
DURATION=${DURATION:-30s} USERS=${USERS:-32} YARDSTICK_SECS=${YARDSTICK_SECS:-10}
CARDS=${CARDS:-100000} ACTIVE=${ACTIVE:-10000} BONUSES=${BONUSES:-2} FSYNC=${FSYNC:-everysec}
OUT=${OUT:-$ROOT/loadtest-runs}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --release --quiet -p loyalty-loadtest
LOADTEST=$TARGET/release/loyalty-loadtest

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

declare -A PORT REDIS
start() { # NAME BIN
  local env=(LOYALTY__DEMO__DATA_FILE= LOYALTY__LOG__LEVEL=warn)
  if [ "$BACKEND" = redis ]; then
    REDIS[$1]=$(free_port); mkdir -p "$WORK/redis-$1"
    redis-server --port "${REDIS[$1]}" --bind 127.0.0.1 --dir "$WORK/redis-$1" --save "" \
      --appendonly yes --appendfsync "$FSYNC" --daemonize no --logfile "$WORK/redis-$1/redis.log" &
    PIDS+=($!)
    until redis-cli -p "${REDIS[$1]}" ping >/dev/null 2>&1; do sleep 0.1; done
    env+=(LOYALTY__STORE__BACKEND=redis LOYALTY__STORE__URL=redis://127.0.0.1:${REDIS[$1]}/0)
  fi
  PORT[$1]=$(free_port)
  env "${env[@]}" LOYALTY__HTTP__BIND=127.0.0.1:${PORT[$1]} "$2" serve >>"$WORK/server-$1.log" 2>&1 &
  PIDS+=($!)
  until curl -sf "http://127.0.0.1:${PORT[$1]}/ready" >/dev/null 2>&1; do sleep 0.2; done
  "$LOADTEST" prepare --host "http://127.0.0.1:${PORT[$1]}" --cards "$CARDS" --active "$ACTIVE" --bonuses-per-card "$BONUSES"
}

STAMP=$(date -u +%Y%m%d-%H%M%S)
run() { # NAME ROUND [goose options]
  local name=$1 round=$2; shift 2
  local redis_args=()
  [ "$BACKEND" = redis ] && redis_args=(--redis "redis://127.0.0.1:${REDIS[$name]}")
  "$LOADTEST" run "$SCENARIO" --host "http://127.0.0.1:${PORT[$name]}" \
    --cards "$CARDS" --active "$ACTIVE" --bonuses-per-card "$BONUSES" \
    --users "$USERS" --run-time "$DURATION" --yardstick-secs "$YARDSTICK_SECS" \
    --backend "$BACKEND" "${redis_args[@]}" --notes "$name: $(basename "$(dirname "${!name}")")/$(basename "${!name}")" \
    --output-dir "$OUT/compare-$STAMP/$name-$round" "$@" >/dev/null || true
  echo "$OUT/compare-$STAMP/$name-$round"
}

A=$BIN_A B=$BIN_B
start A "$BIN_A"
start B "$BIN_B"
A1=$(run A 1)
B1=$(run B 1 --baseline-file "$A1/report.json")
B2=$(run B 2 --baseline-file "$A1/report.json")
A2=$(run A 2)
for pair in "$A1 $B1" "$A2 $B2"; do
  set -- $pair
  echo "== $(basename "$1") vs $(basename "$2")"
  "$LOADTEST" compare "$1" "$2"
done
echo "== reports under $OUT/compare-$STAMP"
