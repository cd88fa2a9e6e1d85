#!/usr/bin/env bash
# Restart storm: TILLS tills (default 2000), each with its own login,
# connect at once to a freshly started release server and then send one
# balance request a second each. Prints, for argon2 passwords and for till
# tokens: how long until every till had its first answer, the first-answer
# latencies, the per-second p99 afterwards and when it is back under 10 ms,
# and the server's CPU seconds. A measurement, not a test: run by hand.
#
#   loadtest/restart-storm.sh [argon2|token|both] [BIN]
#
# BIN defaults to target/release/loyalty (built here); pass another build's
# binary to compare (e.g. one built from an older commit). Everything runs
# on 127.0.0.1 and stops by itself (SECS per run, default 60, at most 300).
# The argon2 users file is generated once into target/restart-storm/.
set -euo pipefail
cd "$(dirname "$0")/.."
KIND=${1:-both}
BIN=${2:-}
TILLS=${TILLS:-2000}
SECS=${SECS:-60}
TARGET=${CARGO_TARGET_DIR:-target}
if [ -z "$BIN" ]; then
    cargo build --release --quiet --bin loyalty
    BIN=$TARGET/release/loyalty
fi
# The client needs no optimisation to send 2,000 requests a second.
cargo build --quiet --example restart_storm
kinds=$KIND
[ "$KIND" = both ] && kinds="argon2 token"
for k in $kinds; do
    echo "== $k: $TILLS tills, $SECS s, $BIN (load: $(cut -d' ' -f1-3 /proc/loadavg))"
    "$TARGET/debug/examples/restart_storm" --bin "$BIN" --kind "$k" --tills "$TILLS" --secs "$SECS" \
        --workdir "$TARGET/restart-storm"
done
