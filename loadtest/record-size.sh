#!/usr/bin/env bash
# Redis memory of a card (issue 10, "compact records"): what a New card
# costs, what an active card with its contact, mobile index and 10 lots
# costs, and how big one card's record is after PURCHASES purchases. Sizes
# do not depend on the build profile: the debug server serves.
#
#   loadtest/record-size.sh [CARDS] [PURCHASES]     (defaults 100000, 10000)
#
# Starts its own redis-server (free loopback port, temp dir, no
# persistence: memory only) with the shipped deploy/redis/redis.conf's
# hash-max-listpack-value (LISTPACK_VALUE=64 is Redis' default, to compare)
# and the server on a free port. Prints a Markdown table. SERVER_BIN picks
# another binary (e.g. an old build, to compare); SKIP_BUILD=1 uses the
# binary as built.
set -euo pipefail
cd "$(dirname "$0")/.."
CARDS=${1:-100000}
PURCHASES=${2:-10000}
SERVER_BIN=${SERVER_BIN:-target/debug/loyalty}
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --quiet --bin loyalty

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
SERVER_PID="" REDIS_PID=""
cleanup() {
  for p in "$SERVER_PID" "$REDIS_PID"; do
    if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
LISTPACK_VALUE=${LISTPACK_VALUE:-$(awk '$1 == "hash-max-listpack-value" { print $2 }' deploy/redis/redis.conf)}
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save "" \
  --appendonly no --daemonize no --logfile "$WORK/redis/redis.log" \
  --hash-max-listpack-value "${LISTPACK_VALUE:-64}" &
REDIS_PID=$!
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done
rc() { redis-cli -p "$REDIS_PORT" "$@"; }
used() { rc info memory | awk -F: '/^used_memory:/ { print $2 + 0 }'; }
usage() { rc memory usage "$1" samples 0 | awk '{ print ($1 == "" ? 0 : $1) }'; }

HTTP_PORT=$(free_port)
# Purchases are dated up to 25 days back (the default accepts 30), so that
# one card's lots span 25 dates.
env LOYALTY__DEMO__DATA_FILE= LOYALTY__LOG__LEVEL=warn \
  LOYALTY__STORE__BACKEND=redis LOYALTY__STORE__URL="redis://127.0.0.1:$REDIS_PORT/0" \
  LOYALTY__STORE__KEY_PREFIX=m \
  LOYALTY__HTTP__BIND="127.0.0.1:$HTTP_PORT" "$SERVER_BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
until curl -sf "http://127.0.0.1:$HTTP_PORT/ready" >/dev/null 2>&1; do
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$WORK/server.log" >&2; exit 2; }
  sleep 0.1
done
base="http://127.0.0.1:$HTTP_PORT"
admin=(-sS -u admin:admin-demo -H 'Content-Type: application/json')
post() { curl "${admin[@]}" -X POST "$base$1" -d "$2"; }

# 1. New cards: the used_memory delta per card, with and without the change
# stream (bounded: events.stream_max_len per slot), and one card's key.
events() { local s=0 k; for k in $(rc --scan --pattern 'm:events:*'); do s=$((s + $(usage "$k"))); done; echo $s; }
before=$(used)
awk -v n="$CARDS" 'BEGIN { for (i = 0; i < n; i++) printf "{\"Number\":\"%d\",\"CategoryCode\":\"0\",\"TypeCode\":\"0\"}\n", 7000000000000 + i }' >"$WORK/cards.ndjson"
curl -sS -u admin:admin-demo -H 'Content-Type: application/x-ndjson' -H 'Expect:' \
  -X POST -T "$WORK/cards.ndjson" "$base/api/admin/cards" >"$WORK/load.out"
after=$(used)
stream=$(events)
new_key=$(usage "m:card:{7000000000000}")
new_d=$(rc hstrlen "m:card:{7000000000000}" d)

# 2. An active card: issued, bound to a contact with a mobile number (bulk
# contact line with CardNumber and Activate), 10 lots of distinct dates.
n=7000000000001
post /api/card/issue "{\"Number\":\"$n\"}" >/dev/null
curl -sS -u admin:admin-demo -H 'Content-Type: application/x-ndjson' -X POST "$base/api/admin/contacts" \
  --data-binary "{\"Code\":\"A1\",\"MobileNumber\":\"79001234567\",\"Name\":\"Anna Example\",\"Email\":\"anna@example.com\",\"BirthDate\":\"1980-01-01\",\"City\":\"Riga\",\"CardNumber\":\"$n\",\"Activate\":true}" >/dev/null
for i in $(seq 1 10); do
  from=$(date -u -d "-$i days" +%Y-%m-%d)
  post /api/card/bonus "{\"Number\":\"$n\",\"OperationId\":\"op-$i\",\"Amount\":10,\"TypeCode\":\"0\",\"ActiveFrom\":\"$from\"}" >/dev/null
done
lots=$(curl -sS -u admin:admin-demo "$base/api/card/balance/by/$n" | head -c 400)
a_card=$(usage "m:card:{$n}")
a_contact=$(usage "m:contact:{A1}")
a_mobile=$(usage "m:mobile:{79001234567}")
a_cc=$(usage "m:contact-card:{A1}")
a_hist=$(usage "m:card:{$n}:history")
a_hist_n=$(rc llen "m:card:{$n}:history")
a_ops=$(usage "m:card:{$n}:recs")

# 3. One card after PURCHASES purchases over 25 dates, one in five paying
# part with bonuses; its record must not grow with them.
p=7000000000002
post /api/card/issue "{\"Number\":\"$p\"}" >/dev/null
curl -sS -u admin:admin-demo -H 'Content-Type: application/x-ndjson' -X POST "$base/api/admin/contacts" \
  --data-binary "{\"Code\":\"A2\",\"Name\":\"Bob\",\"MobileNumber\":\"79001234568\",\"Email\":\"bob@example.com\",\"BirthDate\":\"1985-05-05\",\"CardNumber\":\"$p\",\"Activate\":true}" >/dev/null
post /api/card/bonus "{\"Number\":\"$p\",\"OperationId\":\"seed\",\"Amount\":100000,\"TypeCode\":\"0\",\"ActiveFrom\":\"$(date -u -d '-30 days' +%Y-%m-%d)\"}" >/dev/null
seq 1 "$PURCHASES" | awk -v n="$p" '{
  cmd = "date -u -d \"-" ($1 % 25) " days\" +%Y-%m-%d"
  if (!(($1 % 25) in d)) { cmd | getline d[$1 % 25]; close(cmd) }
  printf "{\"Number\":\"%s\",\"PurchaseId\":\"s-%d\",\"Amount\":100,\"BonusToPay\":%d,\"Date\":\"%s\"}\n", n, $1, ($1 % 5 == 0 ? 10 : 0), d[$1 % 25]
}' >"$WORK/purchases.ndjson"
t0=$(date +%s)
tr '\n' '\0' <"$WORK/purchases.ndjson" | xargs -0 -P 16 -n 50 sh -c '
  for body; do curl -s -o /dev/null -w "%{http_code}\n" -u pos:pos-demo -H "Content-Type: application/json" \
    -X POST "$0/api/purchase/confirm" -d "$body"; done' "$base" | sort | uniq -c >"$WORK/codes"
t1=$(date +%s)
probe=$(curl -sS -u pos:pos-demo -H 'Content-Type: application/json' -X POST "$base/api/purchase/confirm" \
  -d "{\"Number\":\"$p\",\"PurchaseId\":\"probe\",\"Amount\":100,\"BonusToPay\":10}")
p_d=$(rc hstrlen "m:card:{$p}" d)
p_key=$(usage "m:card:{$p}")
p_rec=$(rc hstrlen "m:card:{$p}:recs" purchase:s-5)
p_rec_plain=$(rc hstrlen "m:card:{$p}:recs" purchase:s-1)

echo
echo "record sizes, $SERVER_BIN, hash-max-listpack-value $LISTPACK_VALUE, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| measure | bytes |"
echo "|---|---:|"
echo "| New card: used_memory per card, $CARDS loaded, change stream excluded | $(( (after - before - stream) / CARDS )) |"
echo "| New card: used_memory per card, change stream included ($stream B, bounded) | $(( (after - before) / CARDS )) |"
echo "| New card: MEMORY USAGE of its key (record $new_d B) | $new_key |"
echo "| active card + contact + mobile index + contact→card index, 10 lots | $((a_card + a_contact + a_mobile + a_cc)) |"
echo "| … card $a_card, contact $a_contact, mobile $a_mobile, contact→card $a_cc | |"
echo "| … its history list ($a_hist_n entries; trimmed to history.hot_entries by the archive) | $a_hist |"
echo "| … its 10 manual accruals' outcomes: MEMORY USAGE of its record set (expire after the retention) | $a_ops |"
echo "| card record after $PURCHASES purchases over 25 dates (HSTRLEN d) | $p_d |"
echo "| … MEMORY USAGE of that card's key | $p_key |"
echo "| one purchase's stored outcome, no write-off / with one (HSTRLEN of its field in the record set; expires after the retention) | $p_rec_plain / $p_rec |"
echo
echo "confirms (count, HTTP status): $(tr -s ' \n' ' ' <"$WORK/codes") in $((t1 - t0)) s; one more with a write-off: $probe"
echo "load: $(head -c 200 "$WORK/load.out")"
echo "active card balance: $lots"
echo "active card: record $(rc hstrlen "m:card:{$n}" d) B, hash encoding $(rc object encoding "m:card:{$n}"); contact record $(rc hstrlen "m:contact:{A1}" d) B, $(rc object encoding "m:contact:{A1}")"
echo "a stored outcome with a write-off: $(rc hget "m:card:{$p}:recs" purchase:s-5)"
