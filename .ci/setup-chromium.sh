#!/usr/bin/env bash
# Installs Debian's chromium for the audit explorer's browser test
# (threadline-axum/tests/explorer_browser.rs), when it is missing. The test drives chromium
# over the DevTools protocol itself, so chromium-driver is not needed.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
chromium --version
