#!/usr/bin/env bash
# Measures /health, balance-by-number and purchase/confirm on one server, in
# one run, and prints requests/s, p99 and the ratios to /health.
#
#   loadtest/run.sh [memory|redis]      (default: redis)
#
# redis: starts its own redis-server (AOF on, appendfsync everysec unless
# FSYNC=always) on a free port in a temp dir. Needs wrk (apt-get install wrk).
# Knobs: CARDS (100000), ACTIVE (1000), DURATION (20s), CONNECTIONS (64),
# THREADS (2). Everything targets 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=${1:-redis}
CARDS=${CARDS:-100000}
ACTIVE=${ACTIVE:-1000}
DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
FSYNC=${FSYNC:-everysec}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

cargo build --release --quiet
HTTP_PORT=$(free_port)
export LOYALTY__HTTP__BIND=127.0.0.1:$HTTP_PORT LOYALTY__DEMO__DATA_FILE="" LOYALTY__LOG__LEVEL=warn
if [ "$BACKEND" = redis ]; then
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK" --save "" \
    --appendonly yes --appendfsync "$FSYNC" --daemonize no --logfile "$WORK/redis.log" &
  PIDS+=($!)
  until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done
  export LOYALTY__STORE__BACKEND=redis LOYALTY__STORE__URL=redis://127.0.0.1:$REDIS_PORT/0
fi
target/release/loyalty serve >"$WORK/server.log" 2>&1 &
PIDS+=($!)
until curl -sf "http://127.0.0.1:$HTTP_PORT/ready" >/dev/null; do sleep 0.2; done

python3 loadtest/prepare.py --port "$HTTP_PORT" --cards "$CARDS" --active "$ACTIVE"
export CARDS ACTIVE AUTH=$(printf 'pos:pos-demo' | base64) RUN_ID=$(date +%s)
URL=http://127.0.0.1:$HTTP_PORT

stat() { redis-cli -p "$REDIS_PORT" info stats | tr -d '\r' | awk -F: -v k="$1" '$1 == k { print $2 }'; }

measure() { # name script
  local c0 r0
  if [ "$BACKEND" = redis ]; then c0=$(stat total_commands_processed); r0=$(stat total_reads_processed); fi
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "loadtest/wrk/$2.lua" "$URL")
  local rps p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  local pipelined=""
  if [ "$BACKEND" = redis ]; then
    # Commands per socket read on the Redis side: above 1 means requests of
    # different cards reached Redis pipelined, several per round trip.
    local c1 r1
    c1=$(stat total_commands_processed); r1=$(stat total_reads_processed)
    pipelined=$(python3 -c "print(f'  redis cmds/read {($c1-$c0)/max(1,$r1-$r0):.2f}')")
  fi
  printf '%-20s %12s req/s   p99 %-9s non-2xx %s%s\n' "$1" "$rps" "$p99" "${errors:-0}" "$pipelined"
  echo "$rps" >"$WORK/$1.rps"
}

echo "backend=$BACKEND cards=$CARDS active=$ACTIVE duration=$DURATION connections=$CONNECTIONS threads=$THREADS fsync=$FSYNC"
measure health health
measure balance-by-number balance
measure purchase-confirm confirm
H=$(cat "$WORK/health.rps"); B=$(cat "$WORK/balance-by-number.rps"); C=$(cat "$WORK/purchase-confirm.rps")
python3 -c "print(f'balance/health = {$B/$H:.2f}   confirm/health = {$C/$H:.2f}   confirm/balance = {$C/$B:.2f}')"
