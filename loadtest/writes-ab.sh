#!/usr/bin/env bash
# The write path's table (issue 20): two server builds side by side, each
# on its own store, every scenario run against A, B, B, A in one session
# (closed model, USERS connections), each run with its own /health
# yardstick. Prints, per scenario and build, the ratio to /health, the
# client p99, req/s and the server's CPU per request, and B's throughput
# over A's.
#
#   loadtest/writes-ab.sh SERVER_BIN_A SERVER_BIN_B
#
# Setups, one after another: Redis AOF everysec (confirm, balance-number,
# pos-mix), Redis AOF always (confirm), a 3-master cluster, AOF everysec
# (pos-mix; one cluster, a key prefix per build). Knobs: USERS (64),
# DURATION (10s), WARMUP_SECS (3), YARDSTICK_SECS (5), CARDS (20000),
# ACTIVE (10000), BONUSES (2), OUT (loadtest-runs), SKIP_BUILD=1,
# SETUPS ("everysec always cluster").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[ "$#" -eq 2 ] || { sed -n '2,16p' "$0" >&2; exit 2; }
BIN_A=$(realpath "$1") BIN_B=$(realpath "$2")
USERS=${USERS:-64} DURATION=${DURATION:-10s} WARMUP_SECS=${WARMUP_SECS:-3} YARDSTICK_SECS=${YARDSTICK_SECS:-5}
CARDS=${CARDS:-20000} ACTIVE=${ACTIVE:-10000} BONUSES=${BONUSES:-2}
SETUPS=${SETUPS:-everysec always cluster}
OUT=${OUT:-$ROOT/loadtest-runs}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --quiet -p loyalty-loadtest
LOADTEST=$TARGET/release/loyalty-loadtest
for tool in redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install redis-server redis-tools" >&2; exit 2; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }
trap 'stop_all; rm -rf "$WORK"' EXIT
STAMP=$(date -u +%Y%m%d-%H%M%S)
DIR=$OUT/writes-ab-$STAMP
mkdir -p "$DIR"

redis() { # NAME FSYNC [cluster args...]: a redis-server of our own; prints its port
  local name=$1 fsync=$2; shift 2
  local port; port=$(free_port); mkdir -p "$WORK/$name"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$WORK/$name" --save "" \
    --appendonly yes --appendfsync "$fsync" --daemonize no --logfile "$WORK/$name/redis.log" "$@" &
  PIDS+=($!)
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
  echo "$port"
}

declare -A PORT SERVER_PID URL
serve() { # NAME BIN URL PREFIX
  PORT[$1]=$(free_port)
  URL[$1]=$3
  LOYALTY__DEMO__DATA_FILE= LOYALTY__LOG__LEVEL=warn LOYALTY__STORE__BACKEND=redis \
    LOYALTY__STORE__URL="$3" LOYALTY__STORE__KEY_PREFIX="$4" \
    LOYALTY__HTTP__BIND=127.0.0.1:${PORT[$1]} "$2" serve >>"$WORK/server-$1.log" 2>&1 &
  SERVER_PID[$1]=$!
  PIDS+=($!)
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:${PORT[$1]}/ready" >/dev/null 2>&1 && break
    kill -0 "${SERVER_PID[$1]}" 2>/dev/null || { echo "server $1 did not start:" >&2; tail -20 "$WORK/server-$1.log" >&2; exit 2; }
    sleep 0.2
  done
  "$LOADTEST" prepare --host "http://127.0.0.1:${PORT[$1]}" --cards "$CARDS" --active "$ACTIVE" \
    --bonuses-per-card "$BONUSES" --manifest-dir "$WORK/datasets-$1" >/dev/null
}

run() { # SETUP SCENARIO NAME ROUND
  local dir="$DIR/$1-$2-$3-$4"
  "$LOADTEST" run "$2" --host "http://127.0.0.1:${PORT[$3]}" --cards "$CARDS" --active "$ACTIVE" \
    --bonuses-per-card "$BONUSES" --manifest-dir "$WORK/datasets-$3" \
    --model closed --users "$USERS" --run-time "$DURATION" --warmup-secs "$WARMUP_SECS" \
    --yardstick-secs "$YARDSTICK_SECS" --server-pid "${SERVER_PID[$3]}" --backend redis \
    --notes "$1 $3 round $4" --output-dir "$dir" >"$dir.log" 2>&1 \
    || echo "== $1 $2 $3 round $4 FAILED: $dir.log" >&2
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
      serve A "$BIN_A" "redis://127.0.0.1:$(redis "a-$setup" "$setup")/0" A
      serve B "$BIN_B" "redis://127.0.0.1:$(redis "b-$setup" "$setup")/0" B
      if [ "$setup" = everysec ]; then abba "$setup" confirm balance-number pos-mix; else abba "$setup" confirm; fi
      ;;
    cluster)
      ports=()
      for i in 0 1 2; do
        ports+=("$(redis "node$i" everysec --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000)")
      done
      redis-cli --cluster create $(printf '127.0.0.1:%s ' "${ports[@]}") --cluster-replicas 0 --cluster-yes >/dev/null
      until [ "$(for p in "${ports[@]}"; do redis-cli -p "$p" cluster info | grep -c cluster_state:ok; done | paste -sd+ | bc)" = 3 ]; do sleep 0.2; done
      urls=$(printf 'redis://127.0.0.1:%s,' "${ports[@]}"); urls=${urls%,}
      serve A "$BIN_A" "$urls" A
      serve B "$BIN_B" "$urls" B
      abba "$setup" pos-mix
      ;;
    *) echo "unknown setup $setup" >&2; exit 2 ;;
  esac
  stop_all
done

python3 - "$DIR" <<'PY'
import json, os, sys, statistics as st
d = sys.argv[1]
rows = {}
for name in sorted(os.listdir(d)):
    p = os.path.join(d, name, "summary.json")
    if not os.path.exists(p):
        continue
    parts = name.split("-")
    setup, build, rnd = parts[0], parts[-2], parts[-1]
    scenario = "-".join(parts[1:-2])
    s = json.load(open(p))
    rows.setdefault((setup, scenario, build), []).append(s)
print(f"| setup | scenario | build | ratio to /health (each run) | client p99 ms | req/s | server CPU µs/request |")
print("|---|---|---|---|---:|---:|---:|")
means = {}
for (setup, scenario, build), runs in sorted(rows.items()):
    ratios = [r["ratio_to_health"] or 0 for r in runs]
    p99 = st.mean(r["client"]["p99_ms"] for r in runs)
    rps = st.mean(r["client"]["rps"] for r in runs)
    cpu = [r["cpu"]["server_us_per_request"] for r in runs if r["cpu"]["server_us_per_request"]]
    means[(setup, scenario, build)] = (st.mean(ratios), rps, st.mean(cpu) if cpu else None)
    print(f"| {setup} | {scenario} | {build} | {st.mean(ratios):.3f} ({', '.join(f'{x:.3f}' for x in ratios)}) | {p99:.1f} | {rps:.0f} | {st.mean(cpu) if cpu else float('nan'):.0f} |")
print()
for (setup, scenario, build), (ratio, rps, cpu) in sorted(means.items()):
    if build == "B" and (setup, scenario, "A") in means:
        a = means[(setup, scenario, "A")]
        cpu_ratio = f"{cpu / a[2]:.2f}" if cpu and a[2] else "n/a"
        print(f"{setup} {scenario}: B/A throughput {rps / a[1]:.2f}, ratio to /health B/A {ratio / a[0]:.2f}, server CPU per request B/A {cpu_ratio}")
PY
echo "== runs under $DIR"
