#!/usr/bin/env bash
# Lock time of `threadline partitions ensure` moving N changes (and N/10 transactions) out of
# DEFAULT into their own monthly partition, on a fresh database.
# Usage: bench/partition_ensure.sh [N] (default 1000000). Needs psql and a built binary.
set -euo pipefail
N="${1:-1000000}"
BIN="${THREADLINE:-target/debug/threadline}"
ADMIN="${ADMIN_URL:-postgres://root@127.0.0.1:5432/postgres}"
DB="threadline_bench_partitions_$$"
psql -q "$ADMIN" -c "CREATE DATABASE $DB"
trap 'psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
URL="${ADMIN%/*}/$DB"
"$BIN" install --stdout --partitioned --interval month | psql -q "$URL"
psql -q "$URL" <<SQL
INSERT INTO audit_transactions (id, txid, occurred_at) OVERRIDING SYSTEM VALUE
SELECT g, g, timestamptz '2026-01-01' + g * interval '1 second' FROM generate_series(1, $N / 10) g;
INSERT INTO audit_changes (transaction_id, table_schema, table_name, table_pk, op, data_after, captured_at)
SELECT g / 10 + 1, 'public', 'posts', jsonb_build_object('id', g), 'update',
       jsonb_build_object('id', g, 'title', 'Title ' || g, 'body', repeat('lorem ipsum ', 25)),
       timestamptz '2026-01-01' + (g / 10 + 1) * interval '1 second'
FROM generate_series(0, $N - 1) g;
ANALYZE;
SQL
echo "DEFAULT holds $(psql -tAq "$URL" -c 'SELECT count(*) FROM audit_changes_default') changes"
/usr/bin/time -f "wall %e s, peak RSS %M KB" "$BIN" partitions ensure --premake 3 --database-url "$URL"
echo "second run:"
/usr/bin/time -f "wall %e s" "$BIN" partitions ensure --premake 3 --database-url "$URL"
