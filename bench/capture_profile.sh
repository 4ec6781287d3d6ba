#!/usr/bin/env bash
# Where a capture's time goes: samples one pgbench backend with `perf` and splits its on-CPU
# time into the capture's parts. Shares of one process's samples barely move when other work
# shares the machine, unlike throughput ratios, so this is the tool for small differences.
#
#   bench/capture_profile.sh W1              this checkout's capture on a plain install
#   bench/capture_profile.sh W2 partitioned  the same on `install --partitioned`
#   bench/capture_profile.sh W1 DIR          a folder holding install.sql and capture_posts.sql
#
# Needs perf (apt install linux-perf), python3, pgbench and a local superuser connection (the
# backend must run on this machine). Runs the workload for 13 s (-c 1, -M prepared,
# synchronous_commit off) and samples its backend for 10 s. Prints each part as a share of
# the backend's on-CPU samples (kernel time included); the parts nest as indented. Not run by CI: perf is not installed there.
set -euo pipefail
W=${1:-}
VARIANT=${2:-plain}
case $W in W1|W2|W5) ;; *) sed -n 2,13p "$0"; exit 2 ;; esac
for tool in perf python3 pgbench psql; do
    command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 1; }
done
cd "$(dirname "$0")/.."
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
export PGOPTIONS="-c client_min_messages=warning -c synchronous_commit=off"
DB=threadline_profile_$$
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"; dropdb --if-exists --force "$DB" 2>/dev/null || true' EXIT
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -d "$DB")

cargo build -q -p threadline-cli
BIN="${CARGO_TARGET_DIR:-target}/debug/threadline"
createdb "$DB"
"${PSQL[@]}" -f bench/posts.sql >/dev/null
URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB"
case $VARIANT in
    plain) "$BIN" install --stdout | "${PSQL[@]}" -f - >/dev/null ;;
    partitioned)
        "$BIN" install --partitioned --stdout | "${PSQL[@]}" -f - >/dev/null
        "$BIN" partitions ensure --database-url "$URL" >/dev/null ;;
    *) "${PSQL[@]}" -f "$VARIANT/install.sql" >/dev/null ;;
esac
if [ -d "$VARIANT" ]; then
    "${PSQL[@]}" -f "$VARIANT/capture_posts.sql" >/dev/null
else
    "$BIN" gen-triggers --tables posts --stdout --database-url "$URL" | "${PSQL[@]}" -f - >/dev/null
fi

{
    case $W in
        W1|W5) printf '\\set n random(1, 1000000000)\n\\set a random(1, 1000)\n' ;;
        W2) printf '\\set id random(1, 100000)\n' ;;
    esac
    echo "BEGIN;"
    echo "SELECT set_config('threadline.actor_ref', '{\"type\":\"user\",\"id\":\"u1\"}', true);"
    insert="INSERT INTO posts (title, body, status, author_id, views, metadata, updated_at) VALUES ('Post ' || :n::text, 'post ' || :n::text || ' ' || repeat('lorem ipsum ', 25), 'draft', :a, 0, '{\"tags\": [\"rust\", \"postgres\"], \"lang\": \"en\"}', now());"
    case $W in
        W1) echo "$insert" ;;
        W2) echo "UPDATE posts SET views = views + 1, updated_at = now() WHERE id = :id;" ;;
        W5) for _ in 1 2 3 4 5 6 7 8 9 10; do echo "$insert"; done ;;
    esac
    echo "COMMIT;"
} >"$TMP/script.sql"

pgbench -n -M prepared -c 1 -T 13 -f "$TMP/script.sql" "$DB" >"$TMP/pgbench.log" 2>&1 &
BENCH=$!
sleep 2
PID=$(psql -X -At -d postgres -c "SELECT pid FROM pg_stat_activity
    WHERE datname = '$DB' AND application_name = 'pgbench'")
[ -n "$PID" ] || { echo "no pgbench backend found" >&2; exit 1; }
perf record -q -F 3000 -g -p "$PID" -o "$TMP/perf.data" -- sleep 10 >/dev/null 2>&1
wait "$BENCH"
perf report -i "$TMP/perf.data" --no-children --stdio --sort symbol -g folded,0,caller,count \
    2>/dev/null | grep '^[0-9]' >"$TMP/folded.txt"

echo "$W on $VARIANT, $(grep -o 'tps = [0-9.]*' "$TMP/pgbench.log" | head -1), $(date -u +%F)"
python3 - "$TMP/folded.txt" <<'PY'
import sys

stacks = []
for line in open(sys.argv[1]):
    count, frames = line.split(" ", 1)
    stacks.append((int(count), frames.strip().split(";")))

def samples(pred):
    return sum(n for n, s in stacks if pred(s))

def after(s, frame):
    return s[s.index(frame):] if frame in s else []

total = samples(lambda s: True)
if samples(lambda s: "PostgresMain" in s) == 0:
    sys.exit("no PostgreSQL samples: is perf allowed to read this process?")
FN = "plpgsql_exec_function"
capture = lambda s: "plpgsql_exec_trigger" in s
tx_row = lambda s: capture(s) and FN in s
change = lambda s: capture(s) and FN not in s
ROUTING = ("ExecFindPartition", "ExecSetupPartitionTupleRouting", "ExecCleanupTupleRouting")
parts = [
    (0, "capture trigger", capture),
    (1, "transaction row (threadline_transaction_id)", tx_row),
    (2, "its INSERT statement", lambda s: tx_row(s) and "SPI_execute_plan_with_paramlist" in after(s, FN)),
    (2, "its index entries", lambda s: tx_row(s) and "ExecInsertIndexTuples" in after(s, FN)),
    (1, "change rows (the capture statement)", change),
    (2, "executor start", lambda s: change(s) and "standard_ExecutorStart" in s),
    (2, "row images (to_jsonb)", lambda s: change(s) and "to_jsonb" in s),
    (2, "heap insert", lambda s: change(s) and "heap_insert" in s),
    (2, "index entries", lambda s: change(s) and "ExecInsertIndexTuples" in s),
    (1, "partition routing (both tables)", lambda s: capture(s) and any(r in s for r in ROUTING)),
    (0, "commit", lambda s: "CommitTransactionCommand" in s),
]
print(f"{'part':<52} share of the backend's on-CPU samples ({total})")
for depth, name, pred in parts:
    print(f"{'  ' * depth + name:<52} {100 * samples(pred) / total:5.1f}%")
PY
