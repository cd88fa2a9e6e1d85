#!/usr/bin/env bash
# Holds against plain confirms (issue 24): one server build, on the memory
# store and then on its own redis-server (AOF everysec), runs confirm,
# hold-confirm, hold-confirm, confirm (A B B A: drift on a shared machine
# hits both sides alike), closed model, USERS connections each, and prints
# per run the purchases/s (confirm: confirm answers/s; hold-confirm: confirm
# + release answers/s, one purchase per hold), the client p99 over every
# request and of hold and confirm, the server's CPU and Redis's commands per
# purchase, and B/A of the purchases/s (goal >= 0.8).
#
#   loadtest/hold-ab.sh [SERVER_BIN] [LOADTEST_BIN]
#
# Defaults: target/release/loyalty and target/release/loyalty-loadtest.
# Knobs: USERS (32), DURATION (10s), WARMUP_SECS (3), CARDS (4000), ACTIVE
# (2000), BACKENDS ("memory redis"), OUT (loadtest-runs). Loopback only; the
# redis-server is its own (free port, temp dir), never the machine's 6379.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SERVER_BIN=$(realpath "${1:-target/release/loyalty}")
LOADTEST=$(realpath "${2:-target/release/loyalty-loadtest}")
USERS=${USERS:-32} DURATION=${DURATION:-10s} WARMUP_SECS=${WARMUP_SECS:-3}
CARDS=${CARDS:-4000} ACTIVE=${ACTIVE:-2000} BACKENDS=${BACKENDS:-memory redis}
OUT=${OUT:-$ROOT/loadtest-runs}
for tool in redis-server redis-cli curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install redis-server redis-tools curl python3)" >&2; exit 2; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
PIDS=()
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT
DIR=$OUT/hold-ab-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$DIR"

for backend in $BACKENDS; do
  env=(LOYALTY__DEMO__DATA_FILE= LOYALTY__LOG__LEVEL=warn)
  redis_args=() fsync=()
  if [ "$backend" = redis ]; then
    rport=$(free_port); mkdir -p "$WORK/redis"
    redis-server --port "$rport" --bind 127.0.0.1 --dir "$WORK/redis" --save "" \
      --appendonly yes --appendfsync everysec --daemonize no --logfile "$WORK/redis/redis.log" &
    PIDS+=($!)
    until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.1; done
    env+=(LOYALTY__STORE__BACKEND=redis LOYALTY__STORE__URL=redis://127.0.0.1:$rport/0)
    redis_args=(--redis "redis://127.0.0.1:$rport") fsync=(--fsync "aof everysec")
  else
    env+=(LOYALTY__STORE__BACKEND=memory)
  fi
  port=$(free_port)
  env "${env[@]}" LOYALTY__HTTP__BIND=127.0.0.1:$port "$SERVER_BIN" serve >>"$WORK/server-$backend.log" 2>&1 &
  server=$!
  PIDS+=($server)
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { tail -20 "$WORK/server-$backend.log" >&2; exit 2; }
    sleep 0.2
  done
  data=(--cards "$CARDS" --active "$ACTIVE" --manifest-dir "$WORK/datasets-$backend")
  "$LOADTEST" prepare --host "http://127.0.0.1:$port" "${data[@]}" >/dev/null
  round=0
  for scenario in confirm hold-confirm hold-confirm confirm; do
    round=$((round + 1))
    run=$DIR/$backend-$round-$scenario
    "$LOADTEST" run "$scenario" --host "http://127.0.0.1:$port" "${data[@]}" \
      --model closed --users "$USERS" --run-time "$DURATION" --warmup-secs "$WARMUP_SECS" \
      --yardstick-secs 0 --server-pid "$server" --backend "$backend" "${fsync[@]}" "${redis_args[@]}" \
      --output-dir "$run" >"$run.log" 2>&1 || echo "== $backend $scenario FAILED: $run.log" >&2
    echo "== $backend $round $scenario done (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  done
  stop_all
done

python3 - "$DIR" <<'EOF'
import json, pathlib, sys
runs = sorted(pathlib.Path(sys.argv[1]).glob("*/summary.json"))
by = {}
print("| backend | run | scenario | purchases/s | p99 ms (all requests) | p99 hold | p99 confirm | server CPU ms / purchase | Redis commands / purchase | errors |")
print("|---|---|---|---|---|---|---|---|---|---|")
for path in runs:
    s = json.loads(path.read_text())
    backend, rnd, scenario = path.parent.name.split("-", 2)
    req = {r["name"]: r for r in s["requests"]}
    purchases = req.get("confirm", {}).get("rps", 0) + req.get("release", {}).get("rps", 0)
    by.setdefault(backend, {}).setdefault(scenario, []).append(purchases)
    p99 = lambda n: f'{req[n]["p99_ms"]:.1f}' if n in req else "—"
    # The server's CPU over the window per purchase made in it: what the
    # machine's other tenants move least.
    cpu = s["cpu"]["server_secs"]
    n = purchases * s["client"]["seconds"]
    per = f"{cpu / n * 1000:.2f}" if cpu is not None and n else "n/a"
    # Redis's own count (total_commands_processed) per request, times the
    # requests a purchase takes (hold-confirm: hold, then confirm or release).
    rpr = s["server"].get("redis_commands_per_request")
    requests = sum(r["rps"] for r in s["requests"])
    rcmd = f"{rpr * requests / purchases:.2f}" if rpr is not None and purchases else "n/a"
    print(f'| {backend} | {rnd} | {scenario} | {purchases:.1f} | {s["client"]["p99_ms"]:.1f} | {p99("hold")} | {p99("confirm")} | {per} | {rcmd} | {s["client"]["error_answers"]} |')
print()
for backend, sc in by.items():
    a, b = sc.get("confirm", []), sc.get("hold-confirm", [])
    if a and b:
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        print(f"{backend}: hold-confirm / confirm purchases/s = {mb:.1f} / {ma:.1f} = {mb / ma:.2f} (goal >= 0.8)")
EOF
echo "runs: $DIR" >&2
