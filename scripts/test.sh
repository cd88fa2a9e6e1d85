#!/usr/bin/env bash
# The full test run: unit tests and the API suite on the memory store, then
# the API suite again on a real single redis-server and on a real 3-master
# Redis Cluster, plus the process-level Redis tests (kill -9 durability,
# Redis down mid-traffic), then schemathesis against a live server with the
# OpenAPI document (scripts/api-fuzz.sh; installs schemathesis from PyPI
# into target/ on first use). The tests start their own redis-server processes
# on free ports in temp dirs and stop them afterwards; the machine's own
# Redis (6379) is never touched.
#
# Usage: scripts/test.sh            (from anywhere inside the project)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "== installing redis-server and redis-tools (apt-get)"
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update -qq
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools
fi

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    echo "== installing python3-venv (apt-get) for schemathesis"
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update -qq
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
fi

# One build of every test target first, so the runs below only run.
cargo test --no-run --quiet

echo "== unit tests, API suite on memory, Redis process tests"
cargo test
echo "== API suite on a single redis-server"
LOYALTY_TEST_BACKEND=redis cargo test --test api
echo "== API suite on a 3-master Redis Cluster"
LOYALTY_TEST_BACKEND=cluster cargo test --test api
echo "== all backends passed"
echo "== schemathesis against a live server (memory store)"
scripts/api-fuzz.sh
