#!/usr/bin/env bash
# The full test run (docs/testing.md): first what plain `cargo test` runs
# with no service at all (unit tests, the API suite on the memory store),
# then the tests that need services, which are `#[ignore = "needs …"]` and
# run here with --include-ignored: the API suite on a real single
# redis-server and on a real 3-master Redis Cluster, the process-level Redis tests
# (kill -9 durability, Redis down mid-traffic, the PostgreSQL archive),
# then schemathesis against a live server with the
# OpenAPI document (scripts/api-fuzz.sh; installs schemathesis from PyPI
# into target/ on first use), then clients generated from the served
# document by pinned generators (Python, TypeScript) run against live
# servers in normal and legacy mode (scripts/clients.sh; installs them from
# PyPI and npm into target/). The tests start their own redis-server processes
# on free ports in temp dirs and stop them afterwards; the machine's own
# Redis (6379) is never touched. deploy/ is checked statically
# (scripts/check-deploy.sh) and live: tests/observability starts Redis, two
# servers, redis_exporter and a Prometheus with the shipped config, and
# evaluates every dashboard query and alert rule through it.
# Also: the benches once each in test mode, the load-test tool against a
# real server (loadtest/tests/runs.rs: its reports must render offline in
# headless Chromium with data in every chart, failing gates must exit 1),
# and 5 seconds of the pos-mix load test on the memory store, which must end
# with zero error answers (nothing is timed).
#
# Usage: scripts/test.sh            (from anywhere inside the project)
set -euo pipefail
cd "$(dirname "$0")/.."

# Tools the tests need, from Debian's packages when missing: Redis for the
# store tests; PostgreSQL for the archive; Prometheus (promtool comes with
# it), redis_exporter, yamllint,
# docker-compose, systemd-analyze and python3-venv for the observability and
# deploy checks. Nothing is skipped for want of a tool.
need=()
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || need+=(redis-server redis-tools)
command -v prometheus >/dev/null && command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-redis-exporter >/dev/null || need+=(prometheus-redis-exporter)
command -v yamllint >/dev/null || need+=(yamllint)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v systemd-analyze >/dev/null || need+=(systemd)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# tests/failover cuts a replication link with iptables inside a network
# namespace of its own (unshare -n, ip link set lo up): never the machine's.
command -v iptables >/dev/null || need+=(iptables)
command -v ip >/dev/null || need+=(iproute2)
command -v unshare >/dev/null || need+=(util-linux)
# PostgreSQL for the archive's tests (tests/redis/archive.rs starts its own
# from Debian's binaries under /usr/lib/postgresql, never the machine's).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
# Headless Chromium opens the load-test reports (loadtest/tests/runs.rs).
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]} (apt-get)"
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update -qq
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# One build of every test target first, so the runs below only run: the
# server's tests and benches (test profile), the load-test tool and its
# binary (which the pos-mix check below runs). Every cargo command here
# names --workspace: the same package selection keeps the same features,
# so nothing is built twice.
cargo test --workspace --all-targets --no-run --quiet

echo "== deploy/: promtool (config, rules, alert unit tests), yamllint, docker-compose config, systemd-analyze, dashboard schema, Kubernetes schemas"
deploy_started=$SECONDS
scripts/check-deploy.sh "${CARGO_TARGET_DIR:-target}/debug/loyalty"
echo "== deploy/ checks took $((SECONDS - deploy_started))s"

echo "== tier 1, no service: unit tests, API suite on memory, load-test tool (its reports checked in headless Chromium)"
LOYALTY_REQUIRE_CHROMIUM=1 cargo test --workspace

# One after another: run at once on a loaded 2-core machine (load average
# ~37), the timing-bound tests (fencing's 200 ms lease, the archive's
# XAUTOCLAIM) failed (docs/testing.md).
echo "== tier 2, with services (--include-ignored): API suite on one redis-server"
LOYALTY_TEST_BACKEND=redis cargo test --workspace --test api -- --include-ignored
echo "== API suite on a 3-master Redis Cluster"
LOYALTY_TEST_BACKEND=cluster cargo test --workspace --test api -- --include-ignored
echo "== Redis process tests (kill -9 durability, Redis down, the PostgreSQL archive)"
cargo test --workspace --test redis -- --include-ignored
echo "== failover: masters killed (-9) under two instances' traffic, replicas promoted, a cut replica (tests/failover; needs root for its network namespace)"
cargo test --workspace --test failover -- --include-ignored --test-threads 1
echo "== the dashboard and alerts against a real Prometheus (tests/observability)"
cargo test --workspace --test observability -- --include-ignored
echo "== benches, each run once as a test (no timing)"
cargo test --workspace --benches
echo "== 5 s of pos-mix on the memory store: every answer must be a success (no timing)"
loadtest/run.sh ci
echo "== all backends passed"
echo "== schemathesis against a live server (memory store)"
scripts/api-fuzz.sh
echo "== generated clients (Python, TypeScript) against live servers, normal and legacy mode; Redocly lint"
scripts/clients.sh
