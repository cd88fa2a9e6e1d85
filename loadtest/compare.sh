#!/usr/bin/env bash
# Compares two server builds in one session on this machine (127.0.0.1
# only): both run side by side, each on its own store, and the scenario runs
# against A, B, B, A at the same arrival rate (open model), so that drift on
# a shared machine hits both alike. Prints every round, each side's mean and
# spread, B/A, and the CPU of each server and of the client. Exits non-zero
# when any run failed (its gates, or the tool itself) or the settings of the
# runs differ.
#
#   loadtest/compare.sh SERVER_BIN_A SERVER_BIN_B [SCENARIO] [BACKEND]
#
# SCENARIO: pos-mix (default) | read-only | write-heavy | lifecycle
# BACKEND:  memory (default) | redis (a redis-server each, AOF, FSYNC)
# Knobs as for run.sh: RATE (200), DURATION (30s), WARMUP_SECS (5),
# YARDSTICK_SECS (10), CARDS (100000), ACTIVE (10000), BONUSES (2), FSYNC
# (everysec), OUT, SKIP_BUILD=1. Anything after `--` goes to every run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[ "$#" -ge 2 ] || { sed -n '2,17p' "$0" >&2; exit 2; }
BIN_A=$(realpath "$1") BIN_B=$(realpath "$2")
SCENARIO=${3:-pos-mix}
BACKEND=${4:-memory}
EXTRA=()
args=("$@")
for i in "${!args[@]}"; do
  if [ "${args[$i]}" = "--" ]; then EXTRA=("${args[@]:$((i + 1))}"); break; fi
done
RATE=${RATE:-200} DURATION=${DURATION:-30s} WARMUP_SECS=${WARMUP_SECS:-5} YARDSTICK_SECS=${YARDSTICK_SECS:-10}
CARDS=${CARDS:-100000} ACTIVE=${ACTIVE:-10000} BONUSES=${BONUSES:-2} FSYNC=${FSYNC:-everysec}
OUT=${OUT:-$ROOT/loadtest-runs}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --quiet -p loyalty-loadtest
LOADTEST=$TARGET/release/loyalty-loadtest
if [ "$BACKEND" = redis ]; then
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
    echo "redis-server and redis-cli are missing: apt-get install redis-server redis-tools" >&2
    exit 2
  }
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

declare -A PORT REDIS SERVER_PID
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
  SERVER_PID[$1]=$!
  PIDS+=($!)
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:${PORT[$1]}/ready" >/dev/null 2>&1 && break
    kill -0 "${SERVER_PID[$1]}" 2>/dev/null || { echo "server $1 did not start:" >&2; tail -20 "$WORK/server-$1.log" >&2; exit 2; }
    sleep 0.2
  done
  "$LOADTEST" prepare --host "http://127.0.0.1:${PORT[$1]}" --cards "$CARDS" --active "$ACTIVE" \
    --bonuses-per-card "$BONUSES" --manifest-dir "$WORK/datasets"
}

STAMP=$(date -u +%Y%m%d-%H%M%S)
FAILED=()
run() { # NAME ROUND
  local name=$1 round=$2 dir="$OUT/compare-$STAMP/$1-$2"
  local redis_args=() bin=BIN_$1
  [ "$BACKEND" = redis ] && redis_args=(--redis "redis://127.0.0.1:${REDIS[$name]}")
  local code=0
  "$LOADTEST" run "$SCENARIO" --host "http://127.0.0.1:${PORT[$name]}" \
    --cards "$CARDS" --active "$ACTIVE" --bonuses-per-card "$BONUSES" --manifest-dir "$WORK/datasets" \
    --rate "$RATE" --run-time "$DURATION" --warmup-secs "$WARMUP_SECS" --yardstick-secs "$YARDSTICK_SECS" \
    --server-pid "${SERVER_PID[$name]}" --backend "$BACKEND" "${redis_args[@]}" \
    --notes "$name round $round: ${!bin}" --output-dir "$dir" "${EXTRA[@]}" \
    >"$dir.log" 2>&1 || code=$?
  if [ "$code" -ne 0 ]; then
    FAILED+=("$name round $round (exit $code, $dir.log)")
    echo "== $name round $round FAILED (exit $code): tail of $dir.log" >&2
    tail -15 "$dir.log" >&2
  else
    echo "== $name round $round: $dir" >&2
  fi
  RUN_DIR=$dir
}

mkdir -p "$OUT/compare-$STAMP"
start A "$BIN_A"
start B "$BIN_B"
run A 1; A1=$RUN_DIR
run B 1; B1=$RUN_DIR
run B 2; B2=$RUN_DIR
run A 2; A2=$RUN_DIR
STATUS=0
"$LOADTEST" compare --a "$A1" --a "$A2" --b "$B1" --b "$B2" | tee "$OUT/compare-$STAMP/compare.md" || STATUS=$?
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "== FAILED runs: ${FAILED[*]}" >&2
  STATUS=1
fi
echo "== reports under $OUT/compare-$STAMP"
exit "$STATUS"
