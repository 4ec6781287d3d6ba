#!/usr/bin/env bash
# Smoke run of the exploration benchmark (200k synthetic changes, a few samples per method):
# proves the command works; no thresholds. The full run is in guides/indexing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
cargo run -q -p threadline-sqlx --example explore_bench -- --quick
