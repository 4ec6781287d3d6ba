#!/usr/bin/env bash
# Starts PostgreSQL when it is not answering, then runs every .ci/setup-*.sh
# (each installs and starts one extra service a test suite needs, e.g. PgBouncer).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432
for setup in .ci/setup-*.sh; do
    [ -e "$setup" ] && bash "$setup"
done
true
