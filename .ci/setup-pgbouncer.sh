#!/usr/bin/env bash
# Installs PgBouncer when missing and starts it (idempotently) for the PgBouncer tests:
# 127.0.0.1:${PGBOUNCER_PORT:-6432}, pool_mode = transaction, default_pool_size = 4, every
# database routed to the local PostgreSQL (the tests create theirs at run time), trust auth.
# Its config, pidfile and log live in ${PGBOUNCER_DIR:-/var/run/threadline-pgbouncer}.
set -euo pipefail
PORT="${PGBOUNCER_PORT:-6432}"
DIR="${PGBOUNCER_DIR:-/var/run/threadline-pgbouncer}"
PG_HOST="${PGHOST_FOR_PGBOUNCER:-127.0.0.1}"
PG_PORT="${PGPORT_FOR_PGBOUNCER:-5432}"

if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y pgbouncer >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y pgbouncer >/dev/null; }
fi
PGBOUNCER="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"

# Already running and answering? Then there is nothing to do.
if [ -f "$DIR/pgbouncer.pid" ] && kill -0 "$(cat "$DIR/pgbouncer.pid")" 2>/dev/null \
    && pg_isready -h 127.0.0.1 -p "$PORT" -q; then
    echo "pgbouncer already running on 127.0.0.1:$PORT"
    exit 0
fi

mkdir -p "$DIR"
cat > "$DIR/pgbouncer.ini" <<INI
[databases]
* = host=$PG_HOST port=$PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir =
auth_type = trust
auth_file = $DIR/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = 4
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
max_db_connections = 0
ignore_startup_parameters = extra_float_digits,options
server_reset_query =
server_check_delay = 0
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
INI
# trust still needs every user name listed; these are the roles the tests connect as.
printf '"postgres" ""\n"threadline_app" ""\n' > "$DIR/userlist.txt"

RUN_AS=()
if [ "$(id -u)" = 0 ]; then
    chown -R postgres "$DIR"
    RUN_AS=(-u postgres)
fi
rm -f "$DIR/pgbouncer.pid"
"$PGBOUNCER" -d "${RUN_AS[@]}" "$DIR/pgbouncer.ini"
for _ in $(seq 1 30); do
    pg_isready -h 127.0.0.1 -p "$PORT" -q && break
    sleep 0.2
done
pg_isready -h 127.0.0.1 -p "$PORT"
echo "pgbouncer started on 127.0.0.1:$PORT (pool_mode=transaction, default_pool_size=4; config in $DIR)"
