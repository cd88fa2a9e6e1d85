#!/usr/bin/env bash
# Redis memory per purchase with the change stream and the archive running
# (issue 14): confirms PURCHASES purchases (default 100000) over CARDS cards
# (default 100) against a server on its own redis-server (AOF always) with
# `loyalty archive` writing to its own PostgreSQL, then reports used_memory
# per purchase within the retention and after it (RETENTION_SECS, default
# 600: it must outlast the confirms), history entries per card, and the
# archive's lag and throughput. A measurement, not a test: run by hand.
#
#   loadtest/purchase-memory.sh [BIN]
#   POS_MIX=60s loadtest/purchase-memory.sh [BIN]
#
# With POS_MIX=RUN_TIME it measures the archive's lag under the till
# fleet's mix instead: `loyalty-loadtest prepare`, then `run pos-mix` for
# RUN_TIME against the same set-up, then the archive's progress lines of
# the run's 10 s windows and the worst and median of their p99.
#
# BIN defaults to target/release/loyalty (built here). Needs redis-server
# and PostgreSQL (Debian's postgresql package); starts and stops its own.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-}
TARGET=${CARGO_TARGET_DIR:-target}
if [ -z "$BIN" ]; then
    cargo build --release --quiet --bin loyalty
    BIN=$TARGET/release/loyalty
fi
cargo build --quiet --example purchase_memory
if [ -n "${POS_MIX:-}" ]; then
    cargo build --release --quiet -p loyalty-loadtest
    exec "$TARGET/debug/examples/purchase_memory" --bin "$BIN" --pos-mix "$POS_MIX" \
        --loadtest "$TARGET/release/loyalty-loadtest"
fi
exec "$TARGET/debug/examples/purchase_memory" --bin "$BIN" \
    --purchases "${PURCHASES:-100000}" --cards "${CARDS:-100}" \
    --retention-secs "${RETENTION_SECS:-600}" --concurrency "${CONCURRENCY:-64}"
