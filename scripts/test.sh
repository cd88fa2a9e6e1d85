#!/usr/bin/env bash
# The whole test suite: unit tests and the API integration suite.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets
