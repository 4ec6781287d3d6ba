#!/usr/bin/env bash
# Prepares the reporting-node test (logical replication of the audit tables):
#   - the primary (127.0.0.1:5432) gets wal_level = logical; it is restarted only when the
#     setting is not in effect yet, which happens once, before any test runs;
#   - a second cluster "reporting" on 127.0.0.1:${REPORTING_PORT:-5433} with trust auth on
#     localhost, created and started when missing.
# Idempotent: a second run changes nothing.
set -euo pipefail
VERSION="$(ls /etc/postgresql | sort -n | tail -n1)"
PORT="${REPORTING_PORT:-5433}"
PSQL=(psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atq)

if [ "$("${PSQL[@]}" -c 'show wal_level')" != logical ]; then
    "${PSQL[@]}" -c "alter system set wal_level = 'logical'"
    pg_ctlcluster --skip-systemctl-redirect "$VERSION" main restart
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
echo "primary wal_level: $("${PSQL[@]}" -c 'show wal_level')"

if ! pg_lsclusters -h | awk '{print $2}' | grep -qx reporting; then
    pg_createcluster "$VERSION" reporting --port "$PORT" >/dev/null
    HBA="/etc/postgresql/$VERSION/reporting/pg_hba.conf"
    cat > "$HBA" <<HBA
local all all trust
host all all 127.0.0.1/32 trust
host all all ::1/128 trust
HBA
fi
if ! pg_isready -h 127.0.0.1 -p "$PORT" -q; then
    pg_ctlcluster --skip-systemctl-redirect "$VERSION" reporting start
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p "$PORT" -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p "$PORT"
psql -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -Atq \
    -c "select 1 from pg_roles where rolname = 'root'" | grep -q 1 \
    || psql -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -q -c 'create role root superuser login'
echo "reporting cluster answering on 127.0.0.1:$PORT"
