#!/usr/bin/env bash
# Lock time of `threadline partitions convert` on a plain trail of N changes (and N/10
# transactions) spread over the last 300 days, on a fresh database: how long the preparation
# runs while capture goes on, and how long the switch holds ACCESS EXCLUSIVE (capture waits).
# Usage: bench/partition_convert.sh [N] (default 1000000). Needs psql and a built binary.
set -euo pipefail
N="${1:-1000000}"
BIN="${THREADLINE:-target/debug/threadline}"
ADMIN="${ADMIN_URL:-postgres://root@127.0.0.1:5432/postgres}"
DB="threadline_bench_convert_$$"
psql -q "$ADMIN" -c "CREATE DATABASE $DB"
trap 'psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
URL="${ADMIN%/*}/$DB"
"$BIN" install --stdout | psql -q "$URL"
psql -q "$URL" <<SQL
INSERT INTO audit_transactions (id, txid, occurred_at) OVERRIDING SYSTEM VALUE
SELECT g, g, now() - interval '300 days' + g * (interval '300 days' / ($N / 10 + 1))
FROM generate_series(1, $N / 10) g;
ALTER TABLE audit_transactions ALTER COLUMN id RESTART WITH $((N / 10 + 1));
INSERT INTO audit_changes (transaction_id, table_schema, table_name, table_pk, op, data_after, captured_at)
SELECT g / 10 + 1, 'public', 'posts', jsonb_build_object('id', g), 'update',
       jsonb_build_object('id', g, 'title', 'Title ' || g, 'body', repeat('lorem ipsum ', 25)),
       now() - interval '300 days' + (g / 10 + 1) * (interval '300 days' / ($N / 10 + 1))
FROM generate_series(0, $N - 1) g;
ANALYZE;
SQL
echo "plain trail: $(psql -tAq "$URL" -c 'SELECT count(*) FROM audit_changes') changes, $(psql -tAq "$URL" -c "SELECT pg_size_pretty(pg_total_relation_size('audit_changes'))")"
/usr/bin/time -f "wall %e s, peak RSS %M KB" "$BIN" partitions convert --execute --premake 3 --database-url "$URL"
psql -tAq "$URL" -c "SELECT relkind, count(*) FROM pg_class WHERE relname = 'audit_changes' GROUP BY 1" \
    | grep -qx 'p|1' || { echo "audit_changes is not partitioned" >&2; exit 1; }
echo "after: $(psql -tAq "$URL" -c 'SELECT count(*) FROM audit_changes') changes"
