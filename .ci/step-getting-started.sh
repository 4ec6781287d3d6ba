#!/usr/bin/env bash
# Follows guides/getting-started.md from an empty crate: writes every file the guide marks
# `<!-- file: ... -->` into a new crate outside the workspace (the dependencies pointed at this
# checkout with [patch.crates-io]), then runs every shell block the guide marks `<!-- run -->`,
# in order, with `threadline` from this checkout. `cargo run` in those blocks (re)starts the
# application in the background. Fails unless the request is captured with its actor and
# action, shown by the explorer, and verify-coverage and doctor pass.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
GUIDE="$ROOT/guides/getting-started.md"
DB_URL="${GETTING_STARTED_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/threadline_getting_started_ci}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

WORK="$(mktemp -d)"
APP_PID=""
cleanup() {
    [ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Block N of the guide that follows a line `<!-- MARK -->` (without the fences).
block() {
    awk -v mark="<!-- $1 -->" -v want="$2" '
        $0 == mark { n++; armed = (n == want); next }
        armed && /^```/ { if (inside) exit; inside = 1; next }
        armed && inside { print }
    ' "$GUIDE"
}
count() { grep -c -x -- "<!-- $1 -->" "$GUIDE" || true; }

# 1. The crate, from the guide's files.
APP="$WORK/blog"
mkdir -p "$APP/src" "$APP/migrations"
{
    printf '[package]\nname = "blog"\nversion = "0.1.0"\nedition = "2024"\npublish = false\n\n'
    block 'file: Cargo.toml [dependencies]' 1
    printf '\n[patch.crates-io]\n'
    for crate in threadline-core threadline-sqlx threadline-macros threadline-axum; do
        printf '%s = { path = "%s/%s" }\n' "$crate" "$ROOT" "$crate"
    done
    # The workspace's profile, so that the dependencies already built for it are reused.
    printf '\n[profile.dev.package."*"]\ndebug = false\n'
} >"$APP/Cargo.toml"
for file in src/main.rs migrations/0001_create_posts.sql threadline.toml; do
    block "file: $file" 1 >"$APP/$file"
    [ -s "$APP/$file" ] || { echo "getting-started: the guide has no block for $file" >&2; exit 1; }
done
# The workspace's lock file: the same dependency versions, resolved offline.
cp "$ROOT/Cargo.lock" "$APP/Cargo.lock"

# 2. The CLI of this checkout, and a new database.
cargo build -q -p threadline-cli --manifest-path "$ROOT/Cargo.toml"
export PATH="$CARGO_TARGET_DIR/debug:$PATH"
psql -q -d "${DB_URL%/*}/postgres" -c "DROP DATABASE IF EXISTS threadline_getting_started_ci" \
    -c "CREATE DATABASE threadline_getting_started_ci"
export DATABASE_URL="$DB_URL"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export PORT

cd "$APP"
# Offline first (the workspace build fetched every locked crate); online if something is missing.
cargo build -q --offline || cargo build -q

# `cargo run` in the guide's blocks: stop the running instance, start the binary, wait for it.
cargo() {
    [ "$1" = run ] || { command cargo "$@"; return; }
    if [ -n "$APP_PID" ]; then kill "$APP_PID"; wait "$APP_PID" 2>/dev/null || true; fi
    command cargo build -q --offline || command cargo build -q
    "$CARGO_TARGET_DIR/debug/blog" >"$WORK/app.log" 2>&1 &
    APP_PID=$!
    for _ in $(seq 1 50); do
        grep -q "^listening on" "$WORK/app.log" && return 0
        kill -0 "$APP_PID" 2>/dev/null || break
        sleep 0.2
    done
    echo "getting-started: the application did not start:" >&2
    cat "$WORK/app.log" >&2
    return 1
}

# 3. Every `<!-- run -->` block, in order (the guide's port 3000 is a free port here).
runs="$(count run)"
[ "$runs" -ge 3 ] || { echo "getting-started: expected the guide's run blocks, found $runs" >&2; exit 1; }
for i in $(seq 1 "$runs"); do
    script="$(block run "$i" | sed "s/localhost:3000/localhost:$PORT/g")"
    echo "+ guide block $i:"
    echo "$script" | sed 's/^/    /'
    eval "$script"
done

# 4. What the guide promises.
timeline="$(curl -sf -H 'x-user: admin' "localhost:$PORT/admin/audit/api/timeline")"
echo "$timeline" | grep -q '"table_name":"posts","table_pk":{"id":1},"op":"insert"' ||
    { echo "getting-started: the explorer does not show the insert: $timeline" >&2; exit 1; }
echo "$timeline" | grep -q '"actor_ref":{"id":"alice","type":"user"}' ||
    { echo "getting-started: the insert is not attributed to alice: $timeline" >&2; exit 1; }
actions="$(psql -tA -d "$DB_URL" -c "SELECT count(*) FROM audit_actions a JOIN audit_changes c
    ON c.transaction_id = a.transaction_id WHERE a.name = 'post.created' AND a.status = 'ok'
    AND a.actor_ref = '{\"type\":\"user\",\"id\":\"alice\"}'")"
[ "$actions" = 1 ] || { echo "getting-started: no post.created action linked to the change" >&2; exit 1; }
page="$(curl -sf -H 'x-user: admin' "localhost:$PORT/admin/audit/transactions/1")"
echo "$page" | grep -q 'post.created' ||
    { echo "getting-started: the transaction page does not list the post.created action" >&2; exit 1; }
refused="$(curl -s -o /dev/null -w '%{http_code}' -H 'x-user: alice' "localhost:$PORT/admin/audit/")"
[ "$refused" = 403 ] || { echo "getting-started: the explorer answered $refused to alice" >&2; exit 1; }
echo "getting-started: the guide's application captured the request and showed it in the explorer"
