#!/usr/bin/env bash
# Smoke run of the seal benchmark: 10,000 changes sealed and verified (debug binary, already
# built by the tests); fails when the seal does not cover every row or does not verify.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/bin/time ] || apt-get install -y -q time || { apt-get update -q && apt-get install -y -q time; }
cargo build -q -p threadline-cli
THREADLINE="${CARGO_TARGET_DIR:-target}/debug/threadline" bash bench/seal.sh --quick
