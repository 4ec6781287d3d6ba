#!/usr/bin/env bash
# Smoke run of the actix-web demo: serves on a free port, sends its three demo requests and
# fails unless the history and the #[audited] action are attributed to the right user.
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL="${ACTIX_BLOG_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/threadline_actix_demo_ci}"
cargo run -q -p actix-blog -- --smoke
