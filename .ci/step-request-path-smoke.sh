#!/usr/bin/env bash
# Smoke run of the request-path benchmark: every route answers under wrk for a second, in a
# debug build. No performance thresholds here (CI machines are noisy); the full run is
# `cargo run --release -p threadline-bench -- --rounds 20` (guides/performance.md).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
fi
cargo run -q -p threadline-bench -- --rounds 1 --duration 1
