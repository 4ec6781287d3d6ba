#!/usr/bin/env bash
# Smoke runs of the storage benchmarks: `partitions convert` of a 10,000-change plain trail,
# and `archive` of a 20,000-change partition in both formats (failing above 150 MB peak RSS).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/bin/time ] || apt-get install -y -q time || { apt-get update -q && apt-get install -y -q time; }
cargo build -q -p threadline-cli
export THREADLINE="${CARGO_TARGET_DIR:-target}/debug/threadline"
bench/partition_convert.sh 10000
bench/archive_memory.sh 20000 --max-rss-mb 150
