#!/usr/bin/env bash
# One-command load tests against a local server that this script starts
# (and stops) itself, on 127.0.0.1 only. See loadtest/README.md.
#
#   loadtest/run.sh [SCENARIO] [BACKEND]     one scenario (default: pos-mix redis)
#   loadtest/run.sh all [BACKEND]            read-only, pos-mix, write-heavy, lifecycle
#   loadtest/run.sh restart-storm [BACKEND]  TILLS distinct till logins after a restart
#   loadtest/run.sh readme                   every table of the README's performance section
#   loadtest/run.sh calls                    one call per scenario (balance by number, phone,
#                                            code; confirm) on memory, Redis everysec and
#                                            always, and Redis everysec with the record cache
#                                            off (CACHE_CAPACITY=0): the table of issue 7
#   loadtest/run.sh ci                       5 s of pos-mix on the memory store, debug build
#
# SCENARIO: pos-mix | read-only | write-heavy | lifecycle | restart-storm |
#           balance-number | balance-phone | balance-code | confirm
# BACKEND:  memory | redis (its own redis-server on a free port in a temp
#           dir, AOF on, appendfsync FSYNC=everysec|always)
# Knobs (environment): DURATION (30s), USERS (32), YARDSTICK_SECS (10),
# CARDS (100000), ACTIVE (10000), BONUSES (2), TILLS (2000),
# TILL_INTERVAL_MS (1000), STORM_DURATION (90s), SLO_P99_MS (100), FSYNC (everysec), OUT
# (loadtest-runs), PROFILE (release|debug), SKIP_BUILD=1, SERVER_BIN (a
# prebuilt server binary). Anything after `--` goes to loyalty-loadtest run
# (goose options such as --throttle-requests 2000 or --co-mitigation average).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MODE=${1:-pos-mix}
BACKEND=${2:-redis}
EXTRA=()
if [ "$#" -gt 2 ] && [ "$3" = "--" ]; then EXTRA=("${@:4}"); fi

if [ "$MODE" = ci ]; then
  # CI: no timing, only "every answer a success"; the binaries come from
  # the test build (cargo test --workspace --no-run, debug profile).
  PROFILE=debug SKIP_BUILD=${SKIP_BUILD:-1} DURATION=5s USERS=8 YARDSTICK_SECS=2 \
    CARDS=2000 ACTIVE=400 OUT=${OUT:-$(mktemp -d)} exec "$0" pos-mix memory
fi

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

if [ "$MODE" != ci ] && [ "$BACKEND" = redis -o "$MODE" = readme -o "$MODE" = restart-storm ] \
  && ! command -v redis-server >/dev/null; then
  echo "== installing redis-server and redis-tools (apt-get)"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools
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
scenario() {
  local redis_args=() fsync=n/a
  if [ "$2" = redis ]; then redis_args=(--redis "redis://127.0.0.1:$REDIS_PORT"); fsync=""; fi
  local dir="$OUT/$1-$3-$(date -u +%Y%m%d-%H%M%S)"
  local users=$USERS duration=$DURATION
  if [ "$1" = restart-storm ]; then users=$TILLS duration=$STORM_DURATION; fi
  "$LOADTEST" run "$1" --host "http://127.0.0.1:$HTTP_PORT" $(dataset) \
    --users "$users" --run-time "$duration" --yardstick-secs "$YARDSTICK_SECS" \
    --tills "$TILLS" --till-interval-ms "$TILL_INTERVAL_MS" --slo-p99-ms "$SLO_P99_MS" \
    --backend "${4:-$2}" ${fsync:+--fsync "$fsync"} "${redis_args[@]}" \
    --output-dir "$dir" "${EXTRA[@]}"
  RUNS+=("$dir")
}

# serve BACKEND FSYNC: a fresh store and server, data set loaded.
serve() {
  if [ "$1" = redis ]; then start_redis "$2"; fi
  start_server "$1" "${3:-}"
  "$LOADTEST" prepare --host "http://127.0.0.1:$HTTP_PORT" $(dataset)
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
  restart-storm)
    storm "$BACKEND" "$FSYNC" || STATUS=$?
    ;;
  readme)
    for setup in "memory memory" "redis everysec" "redis always"; do
      set -- $setup
      serve "$1" "$2"
      for s in pos-mix read-only write-heavy lifecycle; do scenario "$s" "$1" "$2" || STATUS=$?; done
      stop_server; stop_redis
    done
    storm redis everysec || STATUS=$?
    TABLES=$("$LOADTEST" table "${RUNS[@]}")
    SETTINGS="DURATION=$DURATION USERS=$USERS CARDS=$CARDS ACTIVE=$ACTIVE BONUSES=$BONUSES TILLS=$TILLS STORM_DURATION=$STORM_DURATION"
    python3 - "$ROOT/README.md" "$TABLES" "$ROOT/" "$SETTINGS" <<'PY'
import sys, datetime
path, tables, root, settings = sys.argv[1:5]
text = open(path).read()
begin, end = "<!-- perf:begin -->", "<!-- perf:end -->"
if begin not in text or end not in text:
    sys.exit("README.md has no perf:begin/perf:end markers")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
intro = (f"Regenerated on {when} by `{settings} loadtest/run.sh readme` (these are its defaults but "
         f"DURATION). Below each table, the command that `run.sh` ran for each row (ports are "
         f"its own free ones; `target/release/loyalty-loadtest` is the tool).\n\n")
tables = tables.replace(root, "")
open(path, "w").write(head + begin + "\n" + intro + tables.rstrip() + "\n" + end + tail)
PY
    echo "README.md performance tables regenerated from: ${RUNS[*]}"
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
  echo "== reports:"; for r in "${RUNS[@]}"; do echo "   $r/summary.html  $r/summary.json  $r/report.html"; done
fi
exit "$STATUS"
