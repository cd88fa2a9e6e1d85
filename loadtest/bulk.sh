#!/usr/bin/env bash
# Bulk data measurements (issue 10): N cards loaded as NDJSON through the
# API, contacts bound and activated in bulk, and the export — time, rate and
# the server's peak RSS (sampled from /proc every 0.2 s).
#
#   loadtest/bulk.sh [memory|redis] [CARDS] [CONTACTS]
#   loadtest/bulk.sh redis 1000000 100000
#
# Starts its own redis-server (free loopback port, temp dir, AOF everysec;
# never the machine's 6379) and the release server on a free port. Prints a
# Markdown table; SKIP_BUILD=1 uses the binary as built.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=${1:-memory}
CARDS=${2:-1000000}
CONTACTS=${3:-100000}
SERVER_BIN=${SERVER_BIN:-target/release/loyalty}
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --quiet --bin loyalty

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
SERVER_PID="" REDIS_PID="" SAMPLER_PID=""
cleanup() {
  for p in "$SAMPLER_PID" "$SERVER_PID" "$REDIS_PID"; do
    if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

env=(LOYALTY__DEMO__DATA_FILE= LOYALTY__LOG__LEVEL=info)
if [ "$BACKEND" = redis ]; then
  REDIS_PORT=$(free_port)
  mkdir -p "$WORK/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save "" \
    --appendonly yes --appendfsync everysec --daemonize no --logfile "$WORK/redis/redis.log" &
  REDIS_PID=$!
  until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done
  env+=(LOYALTY__STORE__BACKEND=redis LOYALTY__STORE__URL=redis://127.0.0.1:$REDIS_PORT/0)
else
  env+=(LOYALTY__STORE__BACKEND=memory)
fi
HTTP_PORT=$(free_port)
env "${env[@]}" LOYALTY__HTTP__BIND=127.0.0.1:$HTTP_PORT "$SERVER_BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
until curl -sf "http://127.0.0.1:$HTTP_PORT/ready" >/dev/null 2>&1; do
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$WORK/server.log" >&2; exit 2; }
  sleep 0.1
done

echo "== generating $CARDS cards and $CONTACTS contacts" >&2
awk -v n="$CARDS" 'BEGIN { for (i = 0; i < n; i++) printf "{\"Number\":\"%d\",\"CategoryCode\":\"%d\",\"TypeCode\":\"%d\"}\n", 7000000000000 + i, i % 2, i % 3 }' >"$WORK/cards.ndjson"
awk -v n="$CONTACTS" 'BEGIN { for (i = 0; i < n; i++) printf "{\"Code\":\"L%d\",\"MobileNumber\":\"7%010d\",\"Name\":\"Load %d\",\"BirthDate\":\"1980-01-01\",\"City\":\"Riga\",\"CardNumber\":\"%d\",\"Activate\":true}\n", i, i, i, 7000000000000 + i }' >"$WORK/contacts.ndjson"

# Peak RSS of the server, in kB, while a step runs.
sample() {
  local peak=0 rss
  while :; do
    rss=$(awk '/VmRSS/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
    [ "$rss" -gt "$peak" ] && peak=$rss && echo "$peak" >"$WORK/peak"
    sleep 0.2
  done
}
# step NAME CURL-ARGS...: runs curl, prints "name seconds peak_rss_mb answer".
step() {
  local name=$1; shift
  echo 0 >"$WORK/peak"
  sample & SAMPLER_PID=$!
  local t0 t1
  t0=$(date +%s.%N)
  curl -sS -u admin:admin-demo -H 'Expect:' "$@" >"$WORK/$name.out"
  t1=$(date +%s.%N)
  kill "$SAMPLER_PID"; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""
  echo "$name $(echo "$t1 - $t0" | bc) $(( $(cat "$WORK/peak") / 1024 ))"
}
base="http://127.0.0.1:$HTTP_PORT"
nd=(-H 'Content-Type: application/x-ndjson' -X POST)
echo "== loading" >&2
redis_used() { [ "$BACKEND" = redis ] && redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory:/ { print $2 + 0 }' || echo 0; }
used0=$(redis_used)
r_cards=$(step cards "${nd[@]}" -T "$WORK/cards.ndjson" "$base/api/admin/cards")
used1=$(redis_used)
r_contacts=$(step contacts "${nd[@]}" -T "$WORK/contacts.ndjson" "$base/api/admin/contacts")
r_export=$(step export "$base/api/admin/export")
lines=$(wc -l <"$WORK/export.out")
idle=$(( $(awk '/VmRSS/ { print $2 }' "/proc/$SERVER_PID/status") / 1024 ))

row() { # name seconds rss count
  local rate; rate=$(echo "$4 / $2" | bc)
  echo "| $1 | $4 | $(printf %.1f "$2") s | $rate/s | $3 MB |"
}
echo
echo "backend: $BACKEND, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| step | lines | time | rate | server peak RSS |"
echo "|---|---|---|---|---|"
read -r _ s m <<<"$r_cards"; row "cards (NDJSON)" "$s" "$m" "$CARDS"
read -r _ s m <<<"$r_contacts"; row "contacts + bind + activate" "$s" "$m" "$CONTACTS"
read -r _ s m <<<"$r_export"; row "export (all records)" "$s" "$m" "$lines"
echo
[ "$BACKEND" = redis ] && echo "Redis used_memory after the cards: +$(( (used1 - used0) / 1048576 )) MiB, $(( (used1 - used0) / CARDS )) B per card (change streams included)"
echo "server RSS after the run: $idle MB"
echo "answers:"; cut -c1-300 "$WORK/cards.out"; echo; cut -c1-300 "$WORK/contacts.out"; echo
tail -1 "$WORK/export.out"
