#!/usr/bin/env bash
# Threadline capture benchmark (SPEC §9): audited vs unaudited pgbench throughput.
#
#   bench/capture.sh            full run: 5 rounds x 10 s per cell, -c 1 and -c 4 with
#                               synchronous_commit=off, and -c 1 with synchronous_commit=on
#   bench/capture.sh --quick    smoke run: 1 round x 2 s per cell (CI runs this, no thresholds)
#   bench/capture.sh --growth   also the growth check: W1 and W3 against 10M existing changes
#   bench/capture.sh --partitioned   adds the partitioned install as a variant of the same run
#   bench/capture.sh --help     every option
#
# Needs psql, createdb, dropdb and pgbench on PATH (or in /usr/lib/postgresql/*/bin) and a
# PostgreSQL server reachable through the usual PG* variables (default 127.0.0.1:5432, postgres).
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/capture.sh [options]

  --quick               1 round, 2 s per run, configs "1:off 4:off" (CI smoke mode)
  --rounds N            rounds per cell; each round runs baseline then audited (default 5)
  --duration S          seconds per measured pgbench run (default 10)
  --warmup S            seconds of unmeasured pgbench per database before its first run (default 3)
  --configs "C:S ..."   clients:synchronous_commit cells (default "1:off 4:off 1:on")
  --workloads "W1 .."   subset of W1 W2 W3 W4 W5 (default all)
  --variants "V .."     audited variants, each measured against the same baseline in every
                        round (default "audited frozen"):
                          audited      this checkout's install + gen-triggers output
                          frozen       the capture SQL of the previous release, kept in
                                       bench/frozen/ (the yardstick for "no regression")
                          partitioned  this checkout's capture on `install --partitioned`
                          DIR          a folder holding install.sql and capture_posts.sql (any
                                       name with a slash), e.g. to try a change by hand
  --partitioned         add the partitioned variant (same as --variants "audited frozen partitioned")
  --growth              also run the growth check (W1, W3 at -c 1 with existing changes)
  --growth-only         run only the growth check
  --growth-rows N       existing changes for the growth check (default 10000000); the database
                        with them, threadline_bench_grown_<rows>_<hash>, is kept for later runs
                        (about 1 KB per change: drop it with dropdb when done)
  --prefix NAME         prefix of the per-run database names (default threadline_bench_<pid>,
                        so concurrent runs never share databases)

Overhead = baseline TPS / audited TPS of the same round; the table shows medians over rounds.
Each round runs baseline, then every variant, one after the other (B A F B A F ...).
Every audited run checks that audit_changes grew by exactly the rows written and
audit_transactions by exactly the transactions run; a mismatch fails the benchmark.
EOF
}

ROUNDS=5
DURATION=10
WARMUP=3
CONFIGS="1:off 4:off 1:on"
WORKLOADS="W1 W2 W3 W4 W5"
VARIANTS="audited frozen"
GROWTH=0
MAIN=1
GROWTH_ROWS=10000000
PREFIX=threadline_bench_$$
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) ROUNDS=1; DURATION=2; WARMUP=1; CONFIGS="1:off 4:off" ;;
        --rounds) ROUNDS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        --configs) CONFIGS=$2; shift ;;
        --workloads) WORKLOADS=$2; shift ;;
        --variants) VARIANTS=$2; shift ;;
        --partitioned) VARIANTS="audited frozen partitioned" ;;
        --growth) GROWTH=1 ;;
        --growth-only) GROWTH=1; MAIN=0 ;;
        --growth-rows) GROWTH_ROWS=$2; shift ;;
        --prefix) PREFIX=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
# The growth check compares against this checkout's capture.
[ "$GROWTH" = 1 ] && [[ " $VARIANTS " != *" audited "* ]] && VARIANTS="audited $VARIANTS"
for v in $VARIANTS; do
    case "$v" in
        audited|frozen|partitioned) ;;
        */*) [ -f "$v/install.sql" ] && [ -f "$v/capture_posts.sql" ] ||
                { echo "variant $v: no install.sql and capture_posts.sql there" >&2; exit 2; } ;;
        *) echo "unknown variant $v: use audited, frozen, partitioned or a folder" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
export PGOPTIONS="-c client_min_messages=warning"
for tool in pgbench psql createdb dropdb; do
    if ! command -v "$tool" >/dev/null; then
        dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
        [ -n "$dir" ] && [ -x "$dir/$tool" ] && PATH="$PATH:$dir"
    fi
    command -v "$tool" >/dev/null || { echo "$tool not found: install postgresql-client" >&2; exit 1; }
done

WORK=$(mktemp -d)
RESULTS="$WORK/results.tsv"
trap 'rm -rf "$WORK"' EXIT
BASE_TPL="${PREFIX}_tpl_base"
AUDITED_TPL="${PREFIX}_tpl_audited"  # the "audited" variant's template (growth check)
# database name suffix of a variant (a folder variant is named after the folder)
vname() { case $1 in */*) basename "$1" | tr -c 'a-zA-Z0-9_\n' _ ;; *) echo "$1" ;; esac; }
tpl() { echo "${PREFIX}_tpl_$(vname "$1")"; }
RUN_DB="${PREFIX}_run"
PSQL=(psql -X -q -v ON_ERROR_STOP=1)

log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }
q() { "${PSQL[@]}" -At -d "$1" -c "$2"; }
fresh_db() { dropdb --if-exists --force "$1"; createdb -T "$2" "$1"; }

# --- templates -------------------------------------------------------------------------------

log "building threadline-cli"
# (A target directory shared with another checkout can swap this binary under the run: use
# this checkout's own target directory when measuring.)
cargo build -q -p threadline-cli
BIN="${CARGO_TARGET_DIR:-target}/debug/threadline"
threadline() { "$BIN" "$@"; }

# install_variant DB VARIANT: the audit schema and the posts capture of one variant
install_variant() {
    local db=$1 variant=$2
    case $variant in
        audited) "${PSQL[@]}" -d "$db" -f "$WORK/install.sql" >/dev/null ;;
        partitioned) threadline install --partitioned --stdout | "${PSQL[@]}" -d "$db" -f - >/dev/null ;;
        frozen|*/*)
            local dir=$variant
            [ "$variant" = frozen ] && dir=bench/frozen
            "${PSQL[@]}" -d "$db" -f "$dir/install.sql" >/dev/null
            "${PSQL[@]}" -d "$db" -f "$dir/capture_posts.sql" >/dev/null
            return ;;
    esac
    threadline gen-triggers --tables posts --stdout \
        --database-url "postgres://$PGUSER@$PGHOST:$PGPORT/$db" >"$WORK/capture.$variant.sql"
    "${PSQL[@]}" -d "$db" -f "$WORK/capture.$variant.sql" >/dev/null
}

make_templates() {
    local v db
    log "creating template databases $BASE_TPL and one per variant ($VARIANTS)"
    for db in "$BASE_TPL" $(for v in $VARIANTS; do tpl "$v"; done); do
        q postgres "ALTER DATABASE \"$db\" IS_TEMPLATE false" 2>/dev/null || true
        dropdb --if-exists --force "$db"
    done
    createdb "$BASE_TPL"
    "${PSQL[@]}" -d "$BASE_TPL" -f bench/posts.sql >/dev/null
    threadline install --stdout >"$WORK/install.sql"
    for v in $VARIANTS; do
        db=$(tpl "$v")
        createdb -T "$BASE_TPL" "$db"
        install_variant "$db" "$v"
        q "$db" "VACUUM ANALYZE" >/dev/null
    done
    cp "$WORK/capture.audited.sql" "$WORK/capture.sql" 2>/dev/null || true
    for db in "$BASE_TPL" $(for v in $VARIANTS; do tpl "$v"; done); do
        q postgres "ALTER DATABASE \"$db\" IS_TEMPLATE true"
    done
}

# --- workloads -------------------------------------------------------------------------------

# Every transaction, baseline included, first sets the actor (as an audited application does).
BEGIN_TX="BEGIN;
SELECT set_config('threadline.actor_ref', '{\"type\":\"user\",\"id\":\"u1\"}', true);"
INSERT_ONE="INSERT INTO posts (title, body, status, author_id, views, metadata, updated_at)
VALUES ('Post ' || :n::text, 'post ' || :n::text || ' ' || repeat('lorem ipsum ', 25), 'draft',
        :a, 0, '{\"tags\": [\"rust\", \"postgres\"], \"lang\": \"en\"}', now());"

# rows captured per transaction, and the pgbench script
rows_per_tx() { case $1 in W1|W2) echo 1 ;; W3|W4) echo 1000 ;; W5) echo 10 ;; esac; }
write_scripts() {
    local w
    for w in W1 W2 W3 W4 W5; do
        {
            case $w in
                W1|W5) printf '\\set n random(1, 1000000000)\n\\set a random(1, 1000)\n' ;;
                W2) printf '\\set id random(1, 100000)\n' ;;
                W4) printf '\\set s random(1, 99001)\n' ;;
            esac
            echo "$BEGIN_TX"
            case $w in
                W1) echo "$INSERT_ONE" ;;
                W2) echo "UPDATE posts SET views = views + 1, updated_at = now() WHERE id = :id;" ;;
                W3) cat <<'SQL'
INSERT INTO posts (title, body, status, author_id, views, metadata, updated_at)
SELECT 'Post ' || g, 'post ' || g || ' ' || repeat('lorem ipsum ', 25), 'draft',
       1 + g % 1000, 0, '{"tags": ["rust", "postgres"], "lang": "en"}', now()
FROM generate_series(1, 1000) AS g;
SQL
                    ;;
                W4) echo "UPDATE posts SET views = views + 1, updated_at = now() WHERE id BETWEEN :s AND :s + 999;" ;;
                W5) for _ in 1 2 3 4 5 6 7 8 9 10; do echo "$INSERT_ONE"; done ;;
            esac
            echo "END;"
        } >"$WORK/$w.sql"
    done
}

# Rows written so far: inserted posts plus the total of views increments (each update adds 1).
written() { q "$1" "SELECT (SELECT count(*) FROM posts) - 100000 + (SELECT coalesce(sum(views), 0) FROM posts) - $VIEWS0"; }
captured() { q "$1" "SELECT (SELECT count(*) FROM audit_changes) || ' ' || (SELECT count(*) FROM audit_transactions)"; }

# warm DB WORKLOAD CLIENTS SYNC: unmeasured run that loads caches and the audit tables' first pages
warm() {
    [ "$WARMUP" = 0 ] && return
    PGOPTIONS="$PGOPTIONS -c synchronous_commit=$4" \
        pgbench -n -M prepared -c "$3" -j "$3" -T "$WARMUP" -f "$WORK/$2.sql" "$1" >/dev/null 2>&1
}

# run_one DB VARIANT WORKLOAD CLIENTS SYNC -> prints the TPS; appends it to RESULTS
run_one() {
    local db=$1 variant=$2 w=$3 clients=$4 sync=$5 out tps txs before after changes txns expected
    before=$(written "$db")
    [ "$variant" != baseline ] && read -r changes txns <<<"$(captured "$db")"
    q "$db" CHECKPOINT
    out=$(PGOPTIONS="$PGOPTIONS -c synchronous_commit=$sync" \
        pgbench -n -M prepared -c "$clients" -j "$clients" -T "$DURATION" -f "$WORK/$w.sql" "$db" 2>&1) || {
        echo "$out" >&2; echo "pgbench failed for $w $variant" >&2; exit 1; }
    tps=$(awk '/^tps = / {print $3; exit}' <<<"$out")
    txs=$(awk -F': ' '/number of transactions actually processed/ {print $2; exit}' <<<"$out")
    if grep -q 'number of failed transactions: [1-9]' <<<"$out"; then
        echo "$out" >&2; echo "pgbench reported failed transactions for $w $variant" >&2; exit 1
    fi
    after=$(written "$db")
    expected=$((txs * $(rows_per_tx "$w")))
    if [ $((after - before)) -ne "$expected" ]; then
        echo "row check failed: $w $variant wrote $((after - before)) rows, expected $expected" >&2; exit 1
    fi
    if [ "$variant" != baseline ]; then
        local c2 t2 bytes
        read -r c2 t2 <<<"$(captured "$db")"
        if [ $((c2 - changes)) -ne "$expected" ] || [ $((t2 - txns)) -ne "$txs" ]; then
            echo "capture check failed: $w wrote $expected rows in $txs transactions," \
                "audit_changes grew by $((c2 - changes)), audit_transactions by $((t2 - txns))" >&2
            exit 1
        fi
        if [ "$w" = W3 ]; then
            bytes=$(q "$db" "$BYTES_SQL")
            printf 'bytes\t%s\t%s\t%s\t%s\n' "$clients" "$sync" "$variant" "$bytes" >>"$RESULTS"
        fi
    fi
    printf 'tps\t%s\t%s\t%s\t%s\t%s\n' "$w" "$clients" "$sync" "$variant" "$tps" >>"$RESULTS"
    echo "$tps"
}

# Audit bytes per captured row: audit_changes + audit_transactions (every partition, indexes
# and TOAST included) over the changes.
BYTES_SQL="SELECT round(sum(pg_total_relation_size(r))::numeric / (SELECT count(*) FROM audit_changes))
FROM (SELECT 'audit_changes'::regclass AS r UNION ALL SELECT 'audit_transactions'::regclass
      UNION ALL SELECT inhrelid::regclass FROM pg_inherits
      WHERE inhparent IN ('audit_changes'::regclass, 'audit_transactions'::regclass)) AS rels"

median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# run_cell WORKLOAD CLIENTS SYNC: a fresh baseline database and one per variant, then rounds of
# baseline followed by every variant (B A F B A F ...)
run_cell() {
    local w=$1 clients=$2 sync=$3 r b a v line
    fresh_db "${RUN_DB}_baseline" "$BASE_TPL"
    for v in $VARIANTS; do fresh_db "${RUN_DB}_$(vname "$v")" "$(tpl "$v")"; done
    for v in baseline $VARIANTS; do warm "${RUN_DB}_$(vname "$v")" "$w" "$clients" "$sync"; done
    for r in $(seq 1 "$ROUNDS"); do
        b=$(run_one "${RUN_DB}_baseline" baseline "$w" "$clients" "$sync")
        line="baseline $b"
        for v in $VARIANTS; do
            a=$(run_one "${RUN_DB}_$(vname "$v")" "$v" "$w" "$clients" "$sync")
            printf 'ratio\t%s\t%s\t%s\t%s\t%s\n' "$w" "$clients" "$sync" "$v" "$(awk -v b="$b" -v a="$a" 'BEGIN {printf "%.3f", b / a}')" >>"$RESULTS"
            line="$line, $v $a"
        done
        log "$w -c $clients sync=$sync round $r (tps): $line"
    done
    for v in baseline $VARIANTS; do dropdb --force "${RUN_DB}_$(vname "$v")"; done
}

field() { awk -F'\t' -v k="$1" -v w="$2" -v c="$3" -v s="$4" -v v="${5:-}" \
    '$1 == k && $2 == w && $3 == c && $4 == s && (v == "" || $5 == v) {print $NF}' "$RESULTS"; }

print_table() {
    local cfg w clients sync v head sep row
    echo
    echo "Threadline capture benchmark, $(date -u +%Y-%m-%d), $(nproc) cores, $(psql -X -At -d postgres -c 'SHOW server_version' | cut -d' ' -f1) PostgreSQL, rounds=$ROUNDS, duration=${DURATION}s, load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    head="| workload | clients | synchronous_commit | baseline TPS |"
    sep="|---|---|---|---|"
    for v in $VARIANTS; do
        head="$head $v TPS | $v overhead (median) | $v rounds |"
        sep="$sep---|---|---|"
    done
    echo "$head"
    echo "$sep"
    for cfg in $CONFIGS; do
        clients=${cfg%%:*} sync=${cfg##*:}
        for w in $WORKLOADS; do
            row=$(printf '| %s | %s | %s | %.0f |' "$w" "$clients" "$sync" \
                "$(field tps "$w" "$clients" "$sync" baseline | median)")
            for v in $VARIANTS; do
                row="$row $(printf ' %.0f | %.2fx | %s |' \
                    "$(field tps "$w" "$clients" "$sync" "$v" | median)" \
                    "$(field ratio "$w" "$clients" "$sync" "$v" | median)" \
                    "$(field ratio "$w" "$clients" "$sync" "$v" | paste -sd' ')")"
            done
            echo "$row"
        done
    done
    echo
    echo "Audit bytes per captured row after W3 (audit_changes + audit_transactions, table + indexes + TOAST):"
    for cfg in $CONFIGS; do
        clients=${cfg%%:*} sync=${cfg##*:}
        for v in $VARIANTS; do
            awk -F'\t' -v c="$clients" -v s="$sync" -v v="$v" '$1 == "bytes" && $2 == c && $3 == s && $4 == v {print $5}' "$RESULTS" |
                median | { read -r m; [ "$m" = - ] || echo "- $v, clients $clients, synchronous_commit $sync: median $m"; }
        done
    done
}

# --- growth check ----------------------------------------------------------------------------

# A database like the audited template with GROWTH_ROWS changes already in the trail. It is
# slow to build, so it is kept and reused while the capture SQL and row count stay the same.
grown_db() {
    local hash db
    hash=$(cat "$WORK/install.sql" "$WORK/capture.sql" | cksum | cut -d' ' -f1)
    db="threadline_bench_grown_${GROWTH_ROWS}_${hash}"
    if [ "$(q postgres "SELECT count(*) FROM pg_database WHERE datname = '$db'")" = 0 ]; then
        log "building $db ($GROWTH_ROWS existing changes; this takes a while, and is kept for later runs)"
        createdb -T "$AUDITED_TPL" "${db}_tmp"
        # One transaction per 10 changes, one change per (post, version); post images as captured.
        "${PSQL[@]}" -d "${db}_tmp" <<SQL
INSERT INTO audit_transactions (txid, occurred_at, actor_ref)
SELECT 1000 + t, now() - interval '1 year' + t * interval '3 seconds',
       jsonb_build_object('type', 'user', 'id', (t % 5000)::text)
FROM generate_series(1, ($GROWTH_ROWS + 9) / 10) AS t;
INSERT INTO audit_changes (transaction_id, table_schema, table_name, table_pk, op,
                           data_after, changed_fields, captured_at)
SELECT (g + 9) / 10, 'public', 'posts', jsonb_build_object('id', p.id),
       CASE WHEN g <= 100000 THEN 'insert' ELSE 'update' END,
       to_jsonb(p) || jsonb_build_object('views', g / 100000),
       CASE WHEN g > 100000 THEN ARRAY['updated_at', 'views'] END,
       now() - interval '1 year' + g * interval '300 milliseconds'
FROM generate_series(1, $GROWTH_ROWS) AS g
JOIN posts AS p ON p.id = 1 + (g - 1) % 100000;
VACUUM ANALYZE;
SQL
        q postgres "ALTER DATABASE \"${db}_tmp\" RENAME TO \"$db\""
        q postgres "ALTER DATABASE \"$db\" IS_TEMPLATE true"
    fi
    echo "$db"
}

run_growth() {
    local tpl w r b e g
    tpl=$(grown_db)
    log "growth check against $tpl"
    for w in W1 W3; do
        fresh_db "${RUN_DB}_b" "$BASE_TPL"
        fresh_db "${RUN_DB}_a" "$AUDITED_TPL"
        fresh_db "${RUN_DB}_g" "$tpl"
        for db in "${RUN_DB}_b" "${RUN_DB}_a" "${RUN_DB}_g"; do warm "$db" "$w" 1 off; done
        for r in $(seq 1 "$ROUNDS"); do
            b=$(run_one "${RUN_DB}_b" baseline "$w" 1 off)
            e=$(run_one "${RUN_DB}_a" audited "$w" 1 off)
            g=$(run_one "${RUN_DB}_g" audited "$w" 1 off)
            printf 'growth\t%s\tempty\t%s\n' "$w" "$(awk -v b="$b" -v a="$e" 'BEGIN {printf "%.3f", b / a}')" >>"$RESULTS"
            printf 'growth\t%s\tgrown\t%s\n' "$w" "$(awk -v b="$b" -v a="$g" 'BEGIN {printf "%.3f", b / a}')" >>"$RESULTS"
            log "growth $w round $r: baseline $b, audited empty $e, audited with $GROWTH_ROWS changes $g tps"
        done
        for db in "${RUN_DB}_b" "${RUN_DB}_a" "${RUN_DB}_g"; do dropdb --force "$db"; done
    done
    echo
    echo "Growth check (-c 1, synchronous_commit=off, $GROWTH_ROWS existing changes, medians of $ROUNDS rounds):"
    echo
    echo "| workload | overhead, empty trail | overhead, grown trail | grown / empty |"
    echo "|---|---|---|---|"
    for w in W1 W3; do
        e=$(awk -F'\t' -v w="$w" '$1 == "growth" && $2 == w && $3 == "empty" {print $4}' "$RESULTS" | median)
        g=$(awk -F'\t' -v w="$w" '$1 == "growth" && $2 == w && $3 == "grown" {print $4}' "$RESULTS" | median)
        printf '| %s | %.2fx | %.2fx | %.2f |\n' "$w" "$e" "$g" "$(awk -v e="$e" -v g="$g" 'BEGIN {print g / e}')"
    done
}

# --- main ------------------------------------------------------------------------------------

VIEWS0=$(( (49 * 50 / 2) * 2000 ))  # sum(views) of the template rows: g % 50 over 1..100000
make_templates
write_scripts
if [ "$MAIN" = 1 ]; then
    for cfg in $CONFIGS; do
        for w in $WORKLOADS; do
            run_cell "$w" "${cfg%%:*}" "${cfg##*:}"
        done
    done
    print_table
fi
[ "$GROWTH" = 1 ] && run_growth
for db in "$BASE_TPL" $(for v in $VARIANTS; do tpl "$v"; done); do
    q postgres "ALTER DATABASE \"$db\" IS_TEMPLATE false"
    dropdb --force "$db"
done
log "done"
