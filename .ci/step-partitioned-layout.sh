#!/usr/bin/env bash
# The capture, exploration and operations suites again, against a partitioned install
# (threadline-test-support reads THREADLINE_TEST_LAYOUT; guides/scaling.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
THREADLINE_TEST_LAYOUT=partitioned cargo test -p threadline-sqlx \
    --test capture --test capture_policy --test coverage --test doctor --test exploration \
    --test export --test hardened --test partition --test retention --test snapshot
