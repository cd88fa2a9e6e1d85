#!/usr/bin/env bash
# What the record cache costs in server memory (issue 7): a release server on
# its own redis-server (127.0.0.1, free port, temp dir); CARDS cards loaded
# and each one's balance read once (examples/cache_fill.rs), so that all of
# them are cached. Prints the server's RSS before the reads and after, the
# cache's entries and estimated bytes (/metrics), and RSS per cached card.
#
#   loadtest/cache-rss.sh            CARDS=1000000 by default
#
# Knobs: CARDS, SKIP_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CARDS=${CARDS:-1000000}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --quiet -p loyalty --bin loyalty --example cache_fill
SERVER_BIN=$TARGET/release/loyalty
FILL_BIN=$TARGET/release/examples/cache_fill

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
trap 'kill $SERVER_PID $REDIS_PID 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
REDIS_PORT=$(free_port) HTTP_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK" --save "" --appendonly no \
  --daemonize no --logfile "$WORK/redis.log" &
REDIS_PID=$!
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done
LOYALTY__HTTP__BIND=127.0.0.1:$HTTP_PORT LOYALTY__DEMO__DATA_FILE= LOYALTY__LOG__LEVEL=warn \
  LOYALTY__STORE__BACKEND=redis LOYALTY__STORE__URL=redis://127.0.0.1:$REDIS_PORT/0 \
  LOYALTY__ENGINE__CACHE_CAPACITY=$((CARDS * 2)) \
  "$SERVER_BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
until curl -sf "http://127.0.0.1:$HTTP_PORT/ready" >/dev/null 2>&1; do sleep 0.1; done

rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$SERVER_PID/status"; }
metric() { curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

rss_idle=$(rss)
# Load the cards with the cache off for them: the reads afterwards fill it.
# (Loading drops each card's key; nothing is cached before the reads.)
"$FILL_BIN" --port "$HTTP_PORT" --cards "$CARDS" --connections 64 | tee "$WORK/fill.log"
sleep 2
entries=$(metric loyalty_cache_entries); bytes=$(metric loyalty_cache_bytes); rss1=$(rss)
# FLUSHALL empties the cache through its invalidation: the entries gauge
# shows it (RSS stays: the allocator keeps the freed pages for reuse).
redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null
sleep 2
after=$(metric loyalty_cache_entries)
python3 - "$CARDS" "$rss_idle" "$rss1" "${entries:-0}" "${bytes:-0}" "${after:-0}" <<'PY'
import sys
cards, idle, full, entries, est, after = (float(x) for x in sys.argv[1:])
mib = lambda b: b / 2**20
print(f"cards {cards:.0f}; cache entries {entries:.0f}; estimated cache bytes {est:.0f} ({est / max(entries, 1):.0f} B/entry)")
print(f"server RSS: idle {mib(idle):.1f} MiB, all cards cached {mib(full):.1f} MiB")
print(f"RSS per cached card (loading and reading included): {(full - idle) / max(entries, 1):.0f} B")
print(f"cache entries after FLUSHALL: {after:.0f}")
PY
