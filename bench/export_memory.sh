#!/usr/bin/env bash
# Peak memory of `threadline export --all` over a large trail (SPEC §7: streaming export
# memory stays flat however many rows stream).
#
#   bench/export_memory.sh                  1,000,000 changes, every format
#   bench/export_memory.sh --changes 10000  a quick run (CI smoke mode uses this)
#   bench/export_memory.sh --max-rss-mb 100 fail when any export peaks above 100 MB
#   THREADLINE=path/to/threadline bench/export_memory.sh   use a prebuilt binary
#
# Fills a fresh database (threadline_export_bench_<pid>, dropped at the end) with the install
# schema and a synthetic trail: 10 changes per transaction, ~300-byte row images, an actor,
# request and correlation ids on every transaction and an action on every tenth. Then runs
# `threadline export --format F --all -o FILE` under /usr/bin/time -v for each format and
# prints the peak RSS, wall time and file size. Needs psql, createdb and dropdb on PATH (or in
# /usr/lib/postgresql/*/bin) and a server reachable through the usual PG* variables (default
# 127.0.0.1:5432, user postgres).
set -euo pipefail

CHANGES=1000000
FORMATS="ndjson csv json"
MAX_RSS_MB=""
while [ $# -gt 0 ]; do
    case "$1" in
        --changes) CHANGES="$2"; shift 2 ;;
        --formats) FORMATS="$2"; shift 2 ;;
        --max-rss-mb) MAX_RSS_MB="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 1; }
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
if ! command -v psql >/dev/null; then
    PATH="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1):$PATH"
fi
if [ -z "${THREADLINE:-}" ]; then
    cargo build --release -q -p threadline-cli
    THREADLINE="${CARGO_TARGET_DIR:-target}/release/threadline"
fi
DB="threadline_export_bench_$$"
OUT="$(mktemp -d)"
cleanup() { dropdb --if-exists "$DB" 2>/dev/null || true; rm -rf "$OUT"; }
trap cleanup EXIT

createdb "$DB"
export DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB"
"$THREADLINE" install --stdout | PGOPTIONS="-c client_min_messages=warning" psql -q -v ON_ERROR_STOP=1 "$DATABASE_URL" >/dev/null
TRANSACTIONS=$(( (CHANGES + 9) / 10 ))
psql -q -v ON_ERROR_STOP=1 "$DATABASE_URL" <<SQL
INSERT INTO audit_transactions (txid, occurred_at, actor_ref, request_id, correlation_id)
SELECT g, timestamptz '2026-01-01' + g * interval '10 ms',
       jsonb_build_object('type', 'user', 'id', (g % 1000)::text), 'req-' || g, 'corr-' || (g / 10)
FROM generate_series(1, $TRANSACTIONS) AS g;
INSERT INTO audit_actions (name, actor_ref, status, transaction_id, inserted_at)
SELECT 'post.published', jsonb_build_object('type', 'user', 'id', (g % 1000)::text), 'ok', g,
       timestamptz '2026-01-01' + g * interval '10 ms'
FROM generate_series(1, $TRANSACTIONS, 10) AS g;
INSERT INTO audit_changes (transaction_id, table_schema, table_name, table_pk, op, data_after, captured_at)
SELECT (g - 1) / 10 + 1, 'public', 'posts', jsonb_build_object('id', g), 'insert',
       jsonb_build_object('id', g, 'title', 'Post number ' || g, 'body', repeat('lorem ipsum ', 22),
                          'status', 'published', 'author_id', g % 1000, 'views', g % 7919),
       timestamptz '2026-01-01' + g * interval '1 ms'
FROM generate_series(1, $CHANGES) AS g;
ANALYZE;
SQL
echo "trail: $CHANGES changes in $TRANSACTIONS transactions ($(psql -Atc "SELECT pg_size_pretty(pg_database_size(current_database()))" "$DATABASE_URL"))"
printf '%-8s %12s %10s %12s\n' format "peak RSS" "wall" "file"
for format in $FORMATS; do
    file="$OUT/export.$format"
    /usr/bin/time -v -o "$OUT/time.txt" "$THREADLINE" export --format "$format" --all -o "$file" 2>"$OUT/stderr.txt" \
        || { cat "$OUT/stderr.txt" "$OUT/time.txt" >&2; exit 1; }
    grep -q "wrote $CHANGES changes" "$OUT/stderr.txt" || { cat "$OUT/stderr.txt" >&2; exit 1; }
    rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$OUT/time.txt")
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$OUT/time.txt")
    printf '%-8s %9d MB %10s %9d MB\n' "$format" $((rss_kb / 1024)) "$wall" $(( $(stat -c %s "$file") / 1048576 ))
    rm -f "$file"
    if [ -n "$MAX_RSS_MB" ] && [ $((rss_kb / 1024)) -gt "$MAX_RSS_MB" ]; then
        echo "export --format $format peaked at $((rss_kb / 1024)) MB, above --max-rss-mb $MAX_RSS_MB" >&2
        exit 1
    fi
done
