#!/usr/bin/env bash
# Smoke run of the exploration benchmark (200k synthetic changes, a few samples per method):
# proves the command works; no thresholds. The full runs are in guides/indexing.md and
# guides/scaling.md. The second run covers the partitioned layout and the retention timing.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
cargo run -q -p threadline-sqlx --example explore_bench -- --quick
cargo run -q -p threadline-sqlx --example explore_bench -- --quick --partitioned --span-days 365 --retention
