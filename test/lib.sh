# test/lib.sh: shared by make test, make demo and make bench (sourced, not run).
#
# Installs what is missing, builds and installs tusk, and starts throwaway
# PostgreSQL and Redis servers on free loopback ports. Servers run as the
# unprivileged "postgres" user when we are root (PostgreSQL refuses root),
# as ourselves otherwise. Everything started here is stopped by tusk_cleanup,
# which callers install as an EXIT trap.

TUSK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_CONFIG=${PG_CONFIG:-$PG_BIN/pg_config}
TUSK_PACKAGES="postgresql-15 postgresql-server-dev-15 libhiredis-dev libxxhash-dev redis-server libipc-run-perl libgtest-dev g++ make prometheus"

tusk_log() { printf '%s\n' "$*" >&2; }

# Runs a command with root rights: directly as root, else through sudo.
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

# Runs a command as the user that owns the servers.
as_server_user() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ensure_packages() {
    local missing=() p
    for p in $TUSK_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    tusk_log "installing: ${missing[*]}"
    if [ "$(id -u)" != 0 ] && ! sudo -n true 2>/dev/null; then
        tusk_log "missing packages and no root rights; run: sudo apt-get install -y ${missing[*]}"
        return 1
    fi
    # Packages must not start system services (a cluster on 5432, a Redis on 6379):
    # tests run their own servers and leave nothing running.
    local policy=/usr/sbin/policy-rc.d added_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null && as_root chmod 755 "$policy" &&
            added_policy=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    local rc=$?
    [ -n "$added_policy" ] && as_root rm -f "$policy"
    return $rc
}

build_and_install() {
    make -C "$TUSK_ROOT" -s PG_CONFIG="$PG_CONFIG" >/dev/null &&
        as_root make -C "$TUSK_ROOT" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
}

# Makes a directory the server user can write and sets SERVER_TMPDIR to it;
# tusk_cleanup removes it. (Not called as $(...): the list must live in this shell.)
TUSK_TMPDIRS=()
SERVER_TMPDIR=""
server_tmpdir() {
    SERVER_TMPDIR=$(mktemp -d /tmp/tusk.XXXXXX) || return 1
    TUSK_TMPDIRS+=("$SERVER_TMPDIR")
    chmod 755 "$SERVER_TMPDIR"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$SERVER_TMPDIR"; fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Prints a free loopback port in [20000, 60000).
free_port() {
    local p tries=0
    while [ $tries -lt 200 ]; do
        p=$((20000 + RANDOM % 40000))
        port_in_use "$p" || { printf '%s\n' "$p"; return 0; }
        tries=$((tries + 1))
    done
    return 1
}

REDIS_PIDFILE=""
REDIS_PORT=""
start_redis() {
    local dir
    server_tmpdir || return 1
    dir=$SERVER_TMPDIR
    REDIS_PORT=$(free_port) || return 1
    REDIS_PIDFILE="$dir/redis.pid"
    as_server_user redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --daemonize yes --pidfile "$REDIS_PIDFILE" --dir "$dir" --logfile "$dir/redis.log" || return 1
    local i
    for i in $(seq 1 50); do
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0
        sleep 0.1
    done
    tusk_log "redis did not start on port $REDIS_PORT"
    return 1
}

stop_redis() {
    [ -n "$REDIS_PIDFILE" ] && [ -f "$REDIS_PIDFILE" ] || return 0
    local pid i
    pid=$(cat "$REDIS_PIDFILE")
    kill "$pid" 2>/dev/null
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    REDIS_PIDFILE=""
}

PGDATA_DIR=""
PG_PORT=""
# start_postgres [extra postgresql.conf lines...]
start_postgres() {
    local dir
    server_tmpdir || return 1
    dir=$SERVER_TMPDIR
    PGDATA_DIR="$dir/data"
    PG_PORT=$(free_port) || return 1
    as_server_user "$PG_BIN/initdb" -D "$PGDATA_DIR" -A trust -U postgres -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2; return 1; }
    {
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $PG_PORT"
        echo "unix_socket_directories = '$dir'"
        echo "shared_preload_libraries = 'tusk'"
        echo "fsync = off"
        local line
        for line in "$@"; do echo "$line"; done
    } | as_server_user tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
    as_server_user "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$dir/postgres.log" -w -t 60 start >/dev/null || {
        cat "$dir/postgres.log" >&2; return 1; }
}

stop_postgres() {
    [ -n "$PGDATA_DIR" ] && [ -f "$PGDATA_DIR/postmaster.pid" ] || return 0
    as_server_user "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null 2>&1 ||
        as_server_user "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -w stop >/dev/null 2>&1
    PGDATA_DIR=""
}

# psql against the throwaway server: run_psql [psql args...]
run_psql() {
    "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"
}

# Stops a postmaster left running in any data directory below $1 (an
# interrupted pg_regress leaves its temp instance behind).
stop_leftover_postmasters() {
    local pidfile pid i
    for pidfile in $(find "$1" -maxdepth 4 -name postmaster.pid 2>/dev/null); do
        pid=$(head -n 1 "$pidfile")
        [ -n "$pid" ] || continue
        kill -INT "$pid" 2>/dev/null || continue
        for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -QUIT "$pid" 2>/dev/null
    done
}

tusk_cleanup() {
    stop_postgres
    stop_redis
    local d
    for d in "${TUSK_TMPDIRS[@]}"; do
        [ -n "$d" ] && [ -d "$d" ] || continue
        stop_leftover_postmasters "$d"
        rm -rf "$d"
    done
    TUSK_TMPDIRS=()
}
