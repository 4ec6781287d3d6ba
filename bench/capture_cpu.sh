#!/usr/bin/env bash
# Capture cost as backend CPU time, for comparing capture variants on a busy machine.
#
#   bench/capture_cpu.sh ROUNDS N "W1 W2 W3 W4 W5" baseline bench/frozen DIR...
#
# Each variant is a folder holding install.sql and capture_posts.sql (`baseline` is the
# unaudited table). Every variant gets its own database with the capture benchmark's posts
# table (100,000 rows); each round runs the same N transactions of each workload (N/20 for
# W3 and W4) through one psql session per variant, one variant after the other, and reads the
# session's own CPU time from /proc/<backend pid>/schedstat before and after (so the role must
# be a superuser, and the server local). The table shows each variant's minimum over the
# rounds in us per transaction, and its ratio to the baseline: load from other processes only
# ever adds CPU time (cache misses, migrations), so the minimum is the least disturbed figure.
# synchronous_commit is off; statements go through the simple protocol (parsed every time),
# so the baseline costs more than under pgbench -M prepared and ratios come out lower.
set -euo pipefail
[ $# -ge 4 ] || { sed -n 2,16p "$0"; exit 2; }
ROUNDS=$1 N=$2 WL=$3; shift 3
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
export PGOPTIONS="-c client_min_messages=warning -c synchronous_commit=off"
P=threadline_cpu_$$
W=$(mktemp -d)
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS ${P}_base WITH (FORCE)"
createdb ${P}_base
psql -X -q -v ON_ERROR_STOP=1 -d ${P}_base -f "$(dirname "$0")/posts.sql" >/dev/null
names=()
for v in "$@"; do
  n=$(basename "$v"); names+=("$n")
  psql -X -q -d postgres -c "DROP DATABASE IF EXISTS ${P}_$n WITH (FORCE)"
  createdb -T ${P}_base ${P}_$n
  if [ "$v" != baseline ]; then
    psql -X -q -v ON_ERROR_STOP=1 -d ${P}_$n -f "$v/install.sql" >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 -d ${P}_$n -f "$v/capture_posts.sql" >/dev/null
  fi
  psql -X -q -d ${P}_$n -c "VACUUM ANALYZE" >/dev/null
done
BEGIN_TX="BEGIN; SELECT set_config('threadline.actor_ref', '{\"type\":\"user\",\"id\":\"u1\"}', true);"
ins() { echo "INSERT INTO posts (title, body, status, author_id, views, metadata, updated_at) VALUES ('Post $1', 'post $1 ' || repeat('lorem ipsum ', 25), 'draft', $(( $1 % 1000 + 1 )), 0, '{\"tags\": [\"rust\", \"postgres\"], \"lang\": \"en\"}', now());"; }
for w in $WL; do
  {
    echo "\\o /dev/null"
    for i in $(seq 1 $N); do
      echo "$BEGIN_TX"
      case $w in
        W1) ins $((RANDOM * 32768 + RANDOM)) ;;
        W2) echo "UPDATE posts SET views = views + 1, updated_at = now() WHERE id = $(( (RANDOM * 32768 + RANDOM) % 100000 + 1 ));" ;;
        W3) echo "INSERT INTO posts (title, body, status, author_id, views, metadata, updated_at) SELECT 'Post ' || g, 'post ' || g || ' ' || repeat('lorem ipsum ', 25), 'draft', 1 + g % 1000, 0, '{\"tags\": [\"rust\", \"postgres\"], \"lang\": \"en\"}', now() FROM generate_series(1, 1000) AS g;" ;;
        W4) s=$(( (RANDOM * 32768 + RANDOM) % 99000 + 1 )); echo "UPDATE posts SET views = views + 1, updated_at = now() WHERE id BETWEEN $s AND $s + 999;" ;;
        W5) for j in 1 2 3 4 5 6 7 8 9 10; do ins $((RANDOM * 32768 + RANDOM)); done ;;
      esac
      echo "END;"
    done
  } > $W/$w.sql
done
R=$W/res.tsv
CPU="SELECT split_part(pg_read_file('/proc/' || pg_backend_pid() || '/schedstat'), ' ', 1);"
for w in $WL; do
  n=$N; case $w in W3|W4) n=$((N/20)) ;; esac
  { echo "\\o /dev/null"; awk -v n=$n 'BEGIN{c=0} /^BEGIN/{c++} c<=n' $W/$w.sql | grep -v '^\\o'; } > $W/$w.cut.sql
  for r in $(seq 1 $ROUNDS); do
    line="$w round $r:"
    for v in "${names[@]}"; do
      out=$( { echo "$CPU"; cat $W/$w.cut.sql; echo "\\o"; echo "$CPU"; } | psql -X -q -At -v ON_ERROR_STOP=1 -d ${P}_$v )
      a=$(echo "$out" | head -1); b=$(echo "$out" | tail -1)
      us=$(awk -v a=$a -v b=$b -v n=$n 'BEGIN{printf "%.1f", (b-a)/1000/n}')
      printf '%s\t%s\t%s\n' "$w" "$v" "$us" >> $R
      line="$line $v=${us}us"
    done
    echo "$line" >&2
  done
done
minimum() { sort -g | head -1; }
echo
echo '(minimum over rounds)'; printf '| workload |'; for v in "${names[@]}"; do printf ' %s us/tx | ratio |' "$v"; done; echo
for w in $WL; do
  b=$(awk -F'\t' -v w=$w '$1==w && $2=="baseline"{print $3}' $R | minimum)
  printf '| %s |' $w
  for v in "${names[@]}"; do
    m=$(awk -F'\t' -v w=$w -v v=$v '$1==w && $2==v{print $3}' $R | minimum)
    printf ' %s | %.3f |' $m $(awk -v m=$m -v b=$b 'BEGIN{print m/b}')
  done
  echo
done
for v in "${names[@]}"; do psql -X -q -d postgres -c "DROP DATABASE IF EXISTS ${P}_$v WITH (FORCE)"; done
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS ${P}_base WITH (FORCE)"
rm -rf $W
