#!/usr/bin/env bash
# Measures balance-by-number on the Redis backend with 100k cards loaded,
# next to /health of the same server in the same run.
#
#   scripts/bench-redis.sh            # needs target/release/loyalty, wrk, redis-server
#
# Starts its own redis-server (free port, temp dir, no persistence: a read
# benchmark) and the release server, loads the cards through the admin API,
# runs wrk against /health and then against balance-by-number, and stops
# both. DURATION, CONNECTIONS, THREADS override the wrk settings.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
CARDS=100000
FIRST=6000000000000
BIN=target/release/loyalty
[ -x "$BIN" ] || { echo "build it first: cargo build --release --bin loyalty"; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TMP=$(mktemp -d)
RPORT=$(free_port)
HPORT=$(free_port)
cleanup() {
    [ -n "${SPID:-}" ] && kill "$SPID" 2>/dev/null || true
    redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT

redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$TMP" --save '' --appendonly no \
    --daemonize no --logfile "$TMP/redis.log" &
until redis-cli -p "$RPORT" ping >/dev/null 2>&1; do sleep 0.1; done

cat >"$TMP/bench.toml" <<TOML
[http]
bind = "127.0.0.1:$HPORT"
[store]
backend = "redis"
url = "redis://127.0.0.1:$RPORT/"
key_prefix = "bench"
[log]
level = "warn"
[demo]
data_file = ""
TOML
"$BIN" serve --config "$TMP/bench.toml" >"$TMP/server.log" 2>&1 &
SPID=$!
until curl -sf "http://127.0.0.1:$HPORT/ready" >/dev/null; do sleep 0.1; done

echo "== loading $CARDS cards"
python3 - "$HPORT" "$FIRST" "$CARDS" <<'PY'
import base64, json, sys, urllib.request
port, first, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
auth = "Basic " + base64.b64encode(b"admin:admin-demo").decode()
for start in range(0, count, 10000):
    cards = [{"Number": "%013d" % (first + i), "CategoryCode": "0", "TypeCode": "0"}
             for i in range(start, min(start + 10000, count))]
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/admin/cards",
        data=json.dumps(cards).encode(), method="POST",
        headers={"Authorization": auth, "Content-Type": "application/json"})
    body = json.load(urllib.request.urlopen(req))
    assert body.get("Key") == "OK", body
PY
echo "cards in redis: $(redis-cli -p "$RPORT" dbsize)"
# Warm the password cache and the connections.
curl -sf -u pos:pos-demo "http://127.0.0.1:$HPORT/api/card/balance/by/$FIRST" >/dev/null

echo "== /health"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$HPORT/health"
stat() { redis-cli -p "$RPORT" info stats | tr -d '\r' | awk -F: -v k="$1" '$1 == k { print $2 }'; }
echo "== balance by number (random over $CARDS cards)"
C0=$(stat total_commands_processed); R0=$(stat total_reads_processed)
BENCH_FIRST=$FIRST BENCH_CARDS=$CARDS wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
    -s scripts/bench-balance.lua "http://127.0.0.1:$HPORT"
C1=$(stat total_commands_processed); R1=$(stat total_reads_processed)
# Commands per socket read on the Redis side: above 1 means the requests
# of different cards reached Redis pipelined, several per round trip.
echo "== redis: $((C1 - C0)) commands in $((R1 - R0)) socket reads" \
     "($(python3 -c "print(round(($C1-$C0)/max(1,$R1-$R0), 2))") commands per read)"
echo "== server errors logged: $(grep -ci error "$TMP/server.log" || true)"
