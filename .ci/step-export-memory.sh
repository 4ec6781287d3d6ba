#!/usr/bin/env bash
# Smoke run of the export memory benchmark: 20,000 changes through `threadline export --all`
# (debug binary, already built by the tests), failing above 100 MB peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/bin/time ] || apt-get install -y -q time || { apt-get update -q && apt-get install -y -q time; }
cargo build -q -p threadline-cli
THREADLINE="${CARGO_TARGET_DIR:-target}/debug/threadline" bench/export_memory.sh --changes 20000 --max-rss-mb 100
