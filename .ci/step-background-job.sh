#!/usr/bin/env bash
# Runs the background-job example, which exits non-zero unless the job's write carries the job
# actor and the enqueuing request's correlation id.
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL="${BACKGROUND_JOB_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/threadline_demo_ci}"
cargo run -q -p background-job
