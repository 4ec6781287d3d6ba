#!/usr/bin/env bash
# Time of `threadline seal` and `threadline verify-seals` over N changes (in N/10
# transactions, plus N/1000 standalone actions) on a fresh database, and a check that the
# chain verifies. Usage: bench/seal.sh [N] (default 1000000); bench/seal.sh --quick runs
# 10000 (CI smoke). Needs psql and a built binary (THREADLINE=target/release/threadline for
# the figures in guides/compliance.md).
set -euo pipefail
N="${1:-1000000}"
[ "$N" = "--quick" ] && N=10000
BIN="${THREADLINE:-target/debug/threadline}"
ADMIN="${ADMIN_URL:-postgres://root@127.0.0.1:5432/postgres}"
DB="threadline_bench_seal_$$"
psql -q "$ADMIN" -c "CREATE DATABASE $DB"
trap 'psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
URL="${ADMIN%/*}/$DB"
"$BIN" install --stdout | psql -q "$URL" 2>/dev/null
# txids 1..N/10 all lie below any running transaction, so one seal covers everything.
psql -q "$URL" <<SQL
INSERT INTO audit_transactions (txid, occurred_at, actor_ref, request_id)
SELECT g, timestamptz '2026-01-01' + g * interval '1 second',
       jsonb_build_object('type', 'user', 'id', (g % 97)::text), 'req-' || g
FROM generate_series(1, $N / 10) g;
INSERT INTO audit_changes (transaction_id, table_schema, table_name, table_pk, op, data_after,
                           data_before, changed_fields, captured_at)
SELECT g / 10 + 1, 'public', 'posts', jsonb_build_object('id', g), 'update',
       jsonb_build_object('id', g, 'title', 'Title ' || g, 'body', repeat('lorem ipsum ', 25)),
       jsonb_build_object('id', g, 'title', 'Old ' || g), ARRAY['title'],
       timestamptz '2026-01-01' + (g / 10 + 1) * interval '1 second'
FROM generate_series(0, $N - 1) g;
INSERT INTO audit_actions (name, actor_ref, status, txid)
SELECT 'report.viewed', '{"type":"user","id":"1"}', 'ok', g * 10 FROM generate_series(1, $N / 1000) g;
ANALYZE;
SQL
echo "sealing $N changes:"
/usr/bin/time -f "seal: wall %e s, peak RSS %M KB" "$BIN" seal --database-url "$URL"
/usr/bin/time -f "verify-seals: wall %e s, peak RSS %M KB" "$BIN" verify-seals --database-url "$URL" | tee /tmp/seal_bench_$$.out
grep -q "verified seals 1 to 1: $((N / 10)) transactions, $N changes, $((N / 1000)) actions" /tmp/seal_bench_$$.out
rm -f /tmp/seal_bench_$$.out
echo "ok: the seal covers every row and verifies"
