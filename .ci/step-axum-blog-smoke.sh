#!/usr/bin/env bash
# Smoke run of the flagship demo: serves on a free port, sends the three README curl requests,
# prints the audit trail and fails unless it is attributed correctly.
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL="${AXUM_BLOG_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/threadline_demo_ci}"
cargo run -q -p axum-blog -- --smoke
