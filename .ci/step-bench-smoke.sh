#!/usr/bin/env bash
# Smoke run of the capture benchmark: every workload runs briefly, audited and not, and the
# audited row counts are checked, for this checkout's capture, the frozen previous one and the
# partitioned install. No performance thresholds here (CI machines are noisy).
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/capture.sh --quick --partitioned
