#!/usr/bin/env bash
# Generated clients against live servers (issue 22; docs/openapi.md). For
# each mode — normal, and legacy (http.business_errors_as_200) — it starts a
# server (memory store, demo users, a free port), reads its own
# GET /api/openapi.json, lints it with Redocly (0 errors allowed), generates
# a Python client (openapi-python-client) and a TypeScript one
# (@hey-api/openapi-ts with zod, compiled with tsc --strict), and runs each
# client's flow (clients/python/flow.py, clients/typescript/flow.ts): a
# card's whole life, the purchase flow, and every error case, each answer
# parsed into its generated type.
#
#   scripts/clients.sh
#
# The tools are pinned (clients/python/requirements.txt,
# clients/package-lock.json) and installed under target/ on first use or
# when a pin changes; everything generated goes to target/clients/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p "${CARGO_TARGET_DIR:-target}/clients"
# Absolute: the Python generator runs its formatter from the output folder.
T=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
OUT=$T/clients
VENV=$T/clients-venv
NODE=$T/clients-node

if ! command -v npm >/dev/null || ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=19)?0:1)'; then
    echo "clients: node >= 20.19 and npm are needed (@hey-api/openapi-ts, @redocly/cli)"; exit 1
fi
if ! cmp -s clients/python/requirements.txt "$VENV/requirements.txt"; then
    echo "== installing the Python client generator into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r clients/python/requirements.txt
    cp clients/python/requirements.txt "$VENV/requirements.txt"
fi
if ! cmp -s clients/package-lock.json "$NODE/package-lock.json" || [ ! -d "$NODE/node_modules" ]; then
    echo "== installing the TypeScript generator, tsc, zod and Redocly into $NODE (npm ci)"
    mkdir -p "$NODE"
    cp clients/package.json clients/package-lock.json "$NODE/"
    (cd "$NODE" && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo build --quiet --bin loyalty
BIN=$T/debug/loyalty
SERVERS=()
cleanup() {
    for pid in "${SERVERS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

summary=()
for mode in normal legacy; do
    dir=$OUT/$mode
    rm -rf "$dir"
    mkdir -p "$dir"
    port=$(free_port)
    legacy=false
    if [ "$mode" = legacy ]; then legacy=true; fi
    LOYALTY__HTTP__BIND=127.0.0.1:$port LOYALTY__LOG__LEVEL=warn LOYALTY__STORE__BACKEND=memory \
        LOYALTY__HTTP__BUSINESS_ERRORS_AS_200=$legacy "$BIN" serve >"$dir/server.log" 2>&1 &
    SERVERS+=($!)
    url=http://127.0.0.1:$port
    for _ in $(seq 100); do curl -sf "$url/ready" >/dev/null && break; sleep 0.1; done
    curl -sf "$url/api/openapi.json" -o "$dir/openapi.json" || { echo "clients: the $mode server did not start"; cat "$dir/server.log"; exit 1; }

    echo "== $mode mode: Redocly lint (recommended rules) of the served document"
    lint_status=0
    "$NODE/node_modules/.bin/redocly" lint "$dir/openapi.json" --format=summary >"$dir/lint.txt" 2>&1 || lint_status=$?
    grep -E "^(error|warning) " "$dir/lint.txt" || true
    if [ $lint_status -ne 0 ] || grep -q "^error " "$dir/lint.txt"; then
        cat "$dir/lint.txt"; echo "clients: Redocly found errors in the $mode document"; exit 1
    fi
    lint_warnings=$(grep -E "^warning " "$dir/lint.txt" | awk '{s+=$3} END {print s+0}')

    echo "== $mode mode: openapi-python-client"
    PATH="$VENV/bin:$PATH" "$VENV/bin/openapi-python-client" generate --path "$dir/openapi.json" \
        --output-path "$dir/py/loyalty_client" --meta none >"$dir/python-generator.txt" 2>&1 \
        || { cat "$dir/python-generator.txt"; exit 1; }
    py_warnings=$(grep -c "^WARNING" "$dir/python-generator.txt" || true)
    grep -A1 "^WARNING" "$dir/python-generator.txt" | grep -v "^--" || true
    "$VENV/bin/python" clients/python/flow.py "$dir/py" "$url" 11

    echo "== $mode mode: @hey-api/openapi-ts, tsc --strict"
    mkdir -p "$dir/ts"
    cp clients/typescript/flow.ts clients/typescript/tsconfig.json "$dir/ts/"
    LOYALTY_OPENAPI="$dir/openapi.json" LOYALTY_TS_OUT="$dir/ts/gen" \
        "$NODE/node_modules/.bin/openapi-ts" -f clients/typescript/openapi-ts.config.mjs >"$dir/ts-generator.txt" 2>&1 \
        || { cat "$dir/ts-generator.txt"; exit 1; }
    ts_warnings=$(grep -ci "warn" "$dir/ts-generator.txt" || true)
    ln -sfn "$(cd "$NODE" && pwd)/node_modules" "$dir/ts/node_modules"
    (cd "$dir/ts" && node_modules/.bin/tsc -p tsconfig.json)
    node "$dir/ts/out/flow.js" "$url" 12
    summary+=("$mode: Redocly 0 errors, $lint_warnings warnings; openapi-python-client $py_warnings warnings; openapi-ts $ts_warnings warnings")
done
printf '== %s\n' "${summary[@]}"
