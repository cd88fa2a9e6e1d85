#!/usr/bin/env bash
# One-command load tests against a local server that this script starts
# (and stops) itself, on 127.0.0.1 only. See loadtest/README.md.
#
#   loadtest/run.sh [SCENARIO] [BACKEND]     one scenario (default: pos-mix memory)
#   loadtest/run.sh capacity [BACKEND] [SCENARIO]
#                                            the highest arrival rate whose p99 stays under
#                                            MAX_P99_MS (10) with no error answer
#   loadtest/run.sh all [BACKEND]            read-only, pos-mix, write-heavy, lifecycle
#   loadtest/run.sh restart-storm [BACKEND]  TILLS distinct till logins after a restart
#   loadtest/run.sh tables                   the capacity of every scenario on memory, Redis
#                                            everysec and always, and restart-storm: the
#                                            tables of docs/performance.md
#   loadtest/run.sh calls                    one call per scenario (balance by number, phone,
#                                            code; confirm) on memory, Redis everysec and
#                                            always, and Redis everysec with the record cache
#                                            off (CACHE_CAPACITY=0)
#   loadtest/run.sh ci                       5 s of pos-mix on the memory store, debug build
#
# SCENARIO: pos-mix | read-only | write-heavy | lifecycle | restart-storm |
#           balance-number | balance-phone | balance-code | confirm
# BACKEND:  memory (default) | redis (its own redis-server on a free port in
#           a temp dir, AOF on, appendfsync FSYNC=everysec|always)
# Knobs (environment): MODEL (open|closed), RATE (200 arrivals/s, open
# model), USERS (32, closed model), DURATION (30s measured), WARMUP_SECS (5),
# YARDSTICK_SECS (10), MAX_P99_MS (10: capacity), STEP_SECS (10: capacity),
# CARDS (100000), ACTIVE (10000), BONUSES (2), TILLS (2000),
# TILL_INTERVAL_MS (1000), STORM_DURATION (90s), SLO_P99_MS (100), FSYNC
# (everysec), OUT (loadtest-runs), PROFILE (release|debug), SKIP_BUILD=1,
# SERVER_BIN (a prebuilt server binary), PERF_DOC (docs/performance.md).
# Anything after `--` goes to loyalty-loadtest run (or capacity).
#
# Nothing is installed here: Redis modes need redis-server and redis-cli
# (scripts/test.sh installs what the tests need; apt-get install
# redis-server redis-tools by hand otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MODE=${1:-pos-mix}
BACKEND=${2:-memory}
CAPACITY_SCENARIO=pos-mix
EXTRA=()
args=("$@")
for i in "${!args[@]}"; do
  if [ "${args[$i]}" = "--" ]; then EXTRA=("${args[@]:$((i + 1))}"); break; fi
  if [ "$MODE" = capacity ] && [ "$i" = 2 ]; then CAPACITY_SCENARIO=${args[$i]}; fi
done

if [ "$MODE" = ci ]; then
  # CI: no timing, only "every answer a success" (the schedule gate is off:
  # a debug client on a loaded machine may fall behind); the binaries come from
  # the test build (cargo test --workspace --no-run, debug profile).
  PROFILE=debug SKIP_BUILD=${SKIP_BUILD:-1} DURATION=5s RATE=50 WARMUP_SECS=1 YARDSTICK_SECS=2 \
    CARDS=2000 ACTIVE=400 OUT=${OUT:-$(mktemp -d)} exec "$0" pos-mix memory -- --min-schedule-ratio 0
fi

MODEL=${MODEL:-open}
RATE=${RATE:-200}
WARMUP_SECS=${WARMUP_SECS:-5}
MAX_P99_MS=${MAX_P99_MS:-10}
STEP_SECS=${STEP_SECS:-10}
PERF_DOC=${PERF_DOC:-$ROOT/docs/performance.md}
DURATION=${DURATION:-30s}
USERS=${USERS:-32}
YARDSTICK_SECS=${YARDSTICK_SECS:-10}
CARDS=${CARDS:-100000}
ACTIVE=${ACTIVE:-10000}
BONUSES=${BONUSES:-2}
TILLS=${TILLS:-2000}
TILL_INTERVAL_MS=${TILL_INTERVAL_MS:-1000}
STORM_DURATION=${STORM_DURATION:-90s}
SLO_P99_MS=${SLO_P99_MS:-100}
FSYNC=${FSYNC:-everysec}
OUT=${OUT:-$ROOT/loadtest-runs}
PROFILE=${PROFILE:-release}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN_DIR=$TARGET/$PROFILE
SERVER_BIN=${SERVER_BIN:-$BIN_DIR/loyalty}
LOADTEST=$BIN_DIR/loyalty-loadtest

if [ "$BACKEND" = redis ] || [ "$MODE" = tables ] || [ "$MODE" = calls ] || [ "$MODE" = restart-storm ]; then
  for tool in redis-server redis-cli; do
    command -v "$tool" >/dev/null || {
      echo "$tool is missing: apt-get install redis-server redis-tools (this script installs nothing)" >&2
      exit 2
    }
  done
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  if [ "$PROFILE" = release ]; then
    cargo build --release --quiet -p loyalty -p loyalty-loadtest
  else
    cargo build --quiet -p loyalty -p loyalty-loadtest
  fi
fi
for b in "$SERVER_BIN" "$LOADTEST"; do
  [ -x "$b" ] || { echo "missing $b (build it, or unset SKIP_BUILD)" >&2; exit 2; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
SERVER_PID="" REDIS_PID=""
stop_server() { if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; fi; }
stop_redis() { if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; REDIS_PID=""; fi; }
cleanup() { stop_server; stop_redis; rm -rf "$WORK"; }
trap cleanup EXIT

# start_redis FSYNC: a redis-server of our own (never the machine's 6379).
start_redis() {
  stop_redis
  REDIS_PORT=$(free_port)
  rm -rf "$WORK/redis"; mkdir -p "$WORK/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save "" \
    --appendonly yes --appendfsync "$1" --daemonize no --logfile "$WORK/redis/redis.log" &
  REDIS_PID=$!
  until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done
}

# start_server BACKEND [USERS_FILE]
start_server() {
  stop_server
  HTTP_PORT=$(free_port)
  local env=(LOYALTY__HTTP__BIND=127.0.0.1:$HTTP_PORT LOYALTY__DEMO__DATA_FILE= LOYALTY__LOG__LEVEL=warn)
  if [ "$1" = redis ]; then
    env+=(LOYALTY__STORE__BACKEND=redis LOYALTY__STORE__URL=redis://127.0.0.1:$REDIS_PORT/0)
  else
    env+=(LOYALTY__STORE__BACKEND=memory)
  fi
  if [ -n "${2:-}" ]; then env+=(LOYALTY__AUTH__USERS_FILE=$2); fi
  env "${env[@]}" "$SERVER_BIN" serve >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$HTTP_PORT/ready" >/dev/null 2>&1 && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "the server did not start:" >&2; tail -20 "$WORK/server.log" >&2; exit 2
}

dataset() { echo --cards "$CARDS" --active "$ACTIVE" --bonuses-per-card "$BONUSES"; }

# scenario NAME BACKEND LABEL [BACKEND_SHOWN]: one run against the running
# server; the report's backend column says BACKEND_SHOWN (default BACKEND).
# Returns the tool's exit code (a broken gate is 1).
scenario() {
  local redis_args=() fsync=n/a code=0
  if [ "$2" = redis ]; then redis_args=(--redis "redis://127.0.0.1:$REDIS_PORT"); fsync=""; fi
  local dir="$OUT/$1-$3-$(date -u +%Y%m%d-%H%M%S)"
  local load=(--rate "$RATE") duration=$DURATION
  if [ "$MODEL" = closed ]; then load=(--model closed --users "$USERS"); fi
  if [ "$1" = restart-storm ]; then load=(--model closed --users "$TILLS"); duration=$STORM_DURATION; fi
  "$LOADTEST" run "$1" --host "http://127.0.0.1:$HTTP_PORT" $(dataset) --manifest-dir "$WORK/datasets" \
    "${load[@]}" --run-time "$duration" --warmup-secs "$WARMUP_SECS" --yardstick-secs "$YARDSTICK_SECS" \
    --tills "$TILLS" --till-interval-ms "$TILL_INTERVAL_MS" --slo-p99-ms "$SLO_P99_MS" \
    --server-pid "$SERVER_PID" --backend "${4:-$2}" ${fsync:+--fsync "$fsync"} "${redis_args[@]}" \
    --output-dir "$dir" "${EXTRA[@]}" || code=$?
  RUNS+=("$dir")
  return "$code"
}

# capacity NAME BACKEND LABEL: the capacity search against the running server.
capacity() {
  local redis_args=() fsync=n/a code=0
  if [ "$2" = redis ]; then redis_args=(--redis "redis://127.0.0.1:$REDIS_PORT"); fsync=""; fi
  local dir="$OUT/capacity-$1-$3-$(date -u +%Y%m%d-%H%M%S)"
  "$LOADTEST" capacity "$1" --host "http://127.0.0.1:$HTTP_PORT" $(dataset) --manifest-dir "$WORK/datasets" \
    --max-p99-ms "$MAX_P99_MS" --step-secs "$STEP_SECS" --warmup-secs "$WARMUP_SECS" \
    --server-pid "$SERVER_PID" --backend "$2" ${fsync:+--fsync "$fsync"} "${redis_args[@]}" \
    --output-dir "$dir" "${EXTRA[@]}" || code=$?
  RUNS+=("$dir")
  return "$code"
}

# serve BACKEND FSYNC: a fresh store and server, data set loaded.
serve() {
  if [ "$1" = redis ]; then start_redis "$2"; fi
  start_server "$1" "${3:-}"
  "$LOADTEST" prepare --host "http://127.0.0.1:$HTTP_PORT" $(dataset) --manifest-dir "$WORK/datasets"
}

# storm BACKEND FSYNC: users file, load, restart, storm.
storm() {
  local users_file="$WORK/users-storm.toml"
  [ -f "$users_file" ] || "$LOADTEST" users-file --out "$users_file" --tills "$TILLS"
  serve "$1" "$2" "$users_file"
  if [ "$1" = redis ]; then
    # A real restart: the data stays in Redis, the server's caches go.
    start_server "$1" "$users_file"
  fi
  scenario restart-storm "$1" "$([ "$1" = redis ] && echo "$2" || echo memory)"
}

RUNS=()
STATUS=0
case "$MODE" in
  pos-mix|read-only|write-heavy|lifecycle|balance-number|balance-phone|balance-code|confirm)
    echo "== $MODE on $BACKEND"
    serve "$BACKEND" "$FSYNC"
    scenario "$MODE" "$BACKEND" "$([ "$BACKEND" = redis ] && echo "$FSYNC" || echo memory)" || STATUS=$?
    ;;
  all)
    serve "$BACKEND" "$FSYNC"
    for s in pos-mix read-only write-heavy lifecycle; do scenario "$s" "$BACKEND" "$BACKEND" || STATUS=$?; done
    ;;
  capacity)
    echo "== capacity of $CAPACITY_SCENARIO on $BACKEND (p99 <= $MAX_P99_MS ms)"
    serve "$BACKEND" "$FSYNC"
    capacity "$CAPACITY_SCENARIO" "$BACKEND" "$([ "$BACKEND" = redis ] && echo "$FSYNC" || echo memory)" || STATUS=$?
    ;;
  restart-storm)
    storm "$BACKEND" "$FSYNC" || STATUS=$?
    ;;
  tables)
    for setup in "memory memory" "redis everysec" "redis always"; do
      set -- $setup
      serve "$1" "$2"
      for s in pos-mix read-only write-heavy lifecycle; do capacity "$s" "$1" "$2" || STATUS=$?; done
      stop_server; stop_redis
    done
    storm redis everysec || STATUS=$?
    TABLES=$("$LOADTEST" table "${RUNS[@]}")
    SETTINGS="MAX_P99_MS=$MAX_P99_MS STEP_SECS=$STEP_SECS WARMUP_SECS=$WARMUP_SECS CARDS=$CARDS ACTIVE=$ACTIVE BONUSES=$BONUSES TILLS=$TILLS STORM_DURATION=$STORM_DURATION"
    python3 - "$PERF_DOC" "$TABLES" "$ROOT/" "$SETTINGS" <<'PY' || STATUS=1
import sys, datetime
path, tables, root, settings = sys.argv[1:5]
tables = tables.replace(root, "")
begin, end = "<!-- perf:begin -->", "<!-- perf:end -->"
try:
    text = open(path).read()
except FileNotFoundError:
    text = ""
if begin not in text or end not in text:
    print(tables)
    sys.exit(f"{path} has no perf:begin/perf:end markers: the tables are above")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
intro = (f"Regenerated on {when} by `{settings} loadtest/run.sh tables`. Below each table, the "
         f"command that `run.sh` ran for each row (ports are its own free ones; "
         f"`target/release/loyalty-loadtest` is the tool).\n\n")
open(path, "w").write(head + begin + "\n" + intro + tables.rstrip() + "\n" + end + tail)
print(f"{path}: tables regenerated")
PY
    ;;
  calls)
    for setup in "memory memory on" "redis everysec on" "redis everysec off" "redis always on"; do
      set -- $setup
      if [ "$3" = off ]; then export LOYALTY__ENGINE__CACHE_CAPACITY=0; else unset LOYALTY__ENGINE__CACHE_CAPACITY; fi
      serve "$1" "$2"
      label="$2"; [ "$3" = off ] && label="$2-nocache"
      shown="$1"; [ "$3" = off ] && shown="$1, cache off"
      for s in balance-number balance-phone balance-code confirm; do scenario "$s" "$1" "$label" "$shown" || STATUS=$?; done
      stop_server; stop_redis
    done
    unset LOYALTY__ENGINE__CACHE_CAPACITY
    "$LOADTEST" table "${RUNS[@]}"
    ;;
  *) echo "unknown mode $MODE (see the head of $0)" >&2; exit 2 ;;
esac
if [ "${#RUNS[@]}" -gt 0 ]; then
  echo "== reports:"; for r in "${RUNS[@]}"; do echo "   $(ls "$r"/*.html 2>/dev/null | head -1 || echo "$r (no report)")"; done
fi
exit "$STATUS"
