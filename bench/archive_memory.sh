#!/usr/bin/env bash
# Peak memory and time of `threadline archive` over one partition of N changes (and N/10
# transactions), in each format, on a fresh partitioned database; the archive is verified
# (read back) before the command succeeds, so the run includes the read-back.
#
#   bench/archive_memory.sh [N] [--max-rss-mb MB]   default N = 1000000
#   THREADLINE=path/to/threadline bench/archive_memory.sh 5000000
#
# Needs psql and a built binary; the database threadline_bench_archive_<pid> is dropped at
# the end.
set -euo pipefail
N=1000000
MAX_RSS_MB=""
while [ $# -gt 0 ]; do
    case "$1" in
        --max-rss-mb) MAX_RSS_MB="$2"; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) N="$1"; shift ;;
    esac
done
BIN="${THREADLINE:-target/debug/threadline}"
ADMIN="${ADMIN_URL:-postgres://root@127.0.0.1:5432/postgres}"
DB="threadline_bench_archive_$$"
OUT="$(mktemp -d)"
psql -q "$ADMIN" -c "CREATE DATABASE $DB"
trap 'psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"; rm -rf "$OUT"' EXIT
URL="${ADMIN%/*}/$DB"
"$BIN" install --stdout --partitioned --interval month | psql -q "$URL" 2>/dev/null
# Every row in one month, 60 to 30 days before the first of this month.
psql -q "$URL" <<SQL
CREATE TEMP TABLE base AS SELECT date_trunc('month', now() - interval '45 days') AS t0;
INSERT INTO audit_transactions (id, txid, occurred_at, actor_ref, request_id) OVERRIDING SYSTEM VALUE
SELECT g, g, (SELECT t0 FROM base) + g * (interval '27 days' / ($N / 10 + 1)),
       jsonb_build_object('type', 'user', 'id', (g % 1000)::text), 'req-' || g
FROM generate_series(1, $N / 10) g;
INSERT INTO audit_changes (transaction_id, table_schema, table_name, table_pk, op, data_after, data_before, changed_fields, captured_at)
SELECT g / 10 + 1, 'public', 'posts', jsonb_build_object('id', g), 'update',
       jsonb_build_object('id', g, 'title', 'Title ' || g, 'body', repeat('lorem ipsum ', 25)),
       jsonb_build_object('id', g, 'title', 'Old ' || g, 'body', repeat('lorem ipsum ', 25)),
       ARRAY['title'],
       (SELECT t0 FROM base) + (g / 10 + 1) * (interval '27 days' / ($N / 10 + 1))
FROM generate_series(0, $N - 1) g;
SQL
"$BIN" partitions ensure --database-url "$URL" >/dev/null
BEFORE="$(psql -tAq "$URL" -c "SELECT to_char(date_trunc('month', now()), 'YYYY-MM-DD')")"
FAIL=0
for FORMAT in parquet ndjson; do
    /usr/bin/time -f "%M %e" -o "$OUT/time" "$BIN" archive --database-url "$URL" --before "$BEFORE" \
        --out "$OUT/$FORMAT" --format "$FORMAT" >/dev/null
    read -r RSS WALL < "$OUT/time"
    SIZE="$(du -sh "$OUT/$FORMAT" | cut -f1)"
    echo "$FORMAT: $N changes + $((N / 10)) transactions: peak RSS $((RSS / 1024)) MB, wall ${WALL} s, files $SIZE"
    if [ -n "$MAX_RSS_MB" ] && [ $((RSS / 1024)) -gt "$MAX_RSS_MB" ]; then
        echo "FAIL: $FORMAT peaked above $MAX_RSS_MB MB" >&2
        FAIL=1
    fi
done
exit $FAIL
