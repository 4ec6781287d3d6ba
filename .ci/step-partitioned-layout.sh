#!/usr/bin/env bash
# The capture, exploration and operations suites again, against a partitioned install
# (threadline-test-support reads THREADLINE_TEST_LAYOUT; guides/scaling.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
THREADLINE_TEST_LAYOUT=partitioned cargo test -p threadline-sqlx \
    --test 'capture_*' --test coverage --test doctor \
    --test exploration_history --test exploration_timeline --test exploration_transactions \
    --test exploration_errors --test exploration_schema \
    --test export --test hardened --test partition --test retention --test snapshot
# The reporting node replicates a partitioned trail too (and `partitions ensure` moving rows
# out of DEFAULT must not replicate them twice).
THREADLINE_TEST_LAYOUT=partitioned cargo test -p threadline-tests --test replication
