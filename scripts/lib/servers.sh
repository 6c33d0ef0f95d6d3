# shellcheck shell=bash
# Private PostgreSQL 15 and Redis 7 servers for Boong's tests.
#
# Source this file, then:
#   boong_free_port                       print a free TCP port on 127.0.0.1
#   boong_start_postgres [parent] [port]  exports BOONG_TEST_PG_DSN, BOONG_TEST_PG_RESTART (a shell
#                                         command restarting it as after a crash), and
#                                         BOONG_TEST_PG_STOP / BOONG_TEST_PG_START (an outage: it
#                                         stops as after a crash, and starts again when told),
#                                         BOONG_TEST_PG_ADMIN_DSN (the superuser, on its socket)
#   boong_stop_postgres
#   boong_start_redis [parent] [port]     exports BOONG_TEST_REDIS_HOST, BOONG_TEST_REDIS_PORT, and
#                                         BOONG_TEST_REDIS_RESTART (a command restarting it, data kept)
#   boong_stop_redis
#   boong_stop_servers                    both stops; safe to call twice or when nothing runs
#
# Each server lives in its own fresh temporary directory (data, socket, logs),
# made with mktemp -d under [parent] (default: $TMPDIR or /tmp) and removed by
# its stop function. An empty or missing port means "pick one". The caller owns
# the cleanup trap, e.g.:
#   trap boong_stop_servers EXIT; trap 'exit 130' INT; trap 'exit 143' TERM
# Functions return non-zero on failure (printing the server's log tail); they
# do not rely on `set -e` and are safe under it. State is kept in BOONG_PG_* and
# BOONG_REDIS_* shell variables: call start and stop from the same shell (not
# from $(...)). BOONG_PG_PORT / BOONG_REDIS_PORT hold the ports.
#
# Run directly, it starts both servers, runs the given command with the
# variables exported, and stops them:  scripts/lib/servers.sh ctest --test-dir build

BOONG_PG_BIN=${BOONG_PG_BIN:-/usr/lib/postgresql/15/bin}
BOONG_SRV_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BOONG_SERVER_WAIT_S=${BOONG_SERVER_WAIT_S:-30}

_boong_srv_log() { printf 'servers.sh: %s\n' "$*" >&2; }

_boong_srv_tail() { # file...
    local f
    for f in "$@"; do
        [[ -s $f ]] || continue
        _boong_srv_log "---- last lines of $f ----"
        tail -n 40 -- "$f" >&2
    done
}

# True when something listens on (or accepts connections at) 127.0.0.1:$1.
_boong_port_in_use() {
    local port=$1
    if command -v ss >/dev/null 2>&1 && [[ -n $(ss -Hltn "sport = :$port" 2>/dev/null) ]]; then
        return 0
    fi
    # shellcheck disable=SC2016  # $1 is expanded by the inner bash
    timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$port" 2>/dev/null
}

# Prints a free port in 20000-32767: a private range below Linux's default
# ephemeral ports (32768-60999), so outgoing connections do not take it.
boong_free_port() {
    local i port
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + RANDOM % 12768))
        if ! _boong_port_in_use "$port"; then
            echo "$port"
            return 0
        fi
    done
    _boong_srv_log "no free TCP port found in 20000-32767"
    return 1
}

# Runs a command as the postgres OS user when we are root (PostgreSQL refuses
# to run as root), as ourselves otherwise; from the server's own directory.
_boong_as_pg() {
    if ((EUID == 0)); then
        (cd "$BOONG_PG_DIR" && runuser -u postgres -- "$@")
    else
        (cd "$BOONG_PG_DIR" && "$@")
    fi
}

_boong_pg_pid() { # prints the postmaster's pid if it runs
    local pid
    [[ -f $BOONG_PG_DIR/data/postmaster.pid ]] || return 1
    read -r pid <"$BOONG_PG_DIR/data/postmaster.pid" || return 1
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

boong_start_postgres() {
    local parent=${1:-${TMPDIR:-/tmp}} port=${2:-}
    if [[ -n ${BOONG_PG_DIR:-} ]]; then
        _boong_srv_log "PostgreSQL already started here ($BOONG_PG_DIR)"
        return 1
    fi
    if [[ ! -x $BOONG_PG_BIN/initdb ]]; then
        _boong_srv_log "PostgreSQL 15 not found in $BOONG_PG_BIN (run scripts/deps.sh)"
        return 1
    fi
    if [[ -z $port ]]; then
        port=$(boong_free_port) || return 1
    elif _boong_port_in_use "$port"; then
        _boong_srv_log "port $port on 127.0.0.1 is already in use"
        return 1
    fi

    local dir
    dir=$(mktemp -d "$parent/boong-pg.XXXXXX") || return 1
    BOONG_PG_DIR=$dir
    # shellcheck disable=SC2034  # state for callers, e.g. chaos scripts
    BOONG_PG_PORT=$port
    BOONG_PG_STARTED=0
    if ((EUID == 0)); then
        if ! chown postgres:postgres "$dir" || ! runuser -u postgres -- test -w "$dir"; then
            _boong_srv_log "user postgres cannot write $dir (is $parent traversable by others?)"
            boong_stop_postgres
            return 1
        fi
    fi

    # Local (socket) connections trust, so we can set up; TCP needs the password.
    if ! _boong_as_pg "$BOONG_PG_BIN/initdb" -D "$dir/data" -U postgres --no-locale -E UTF8 \
        --auth-local=trust --auth-host=md5 --no-sync >"$dir/initdb.log" 2>&1; then
        _boong_srv_log "initdb failed"
        _boong_srv_tail "$dir/initdb.log"
        boong_stop_postgres
        return 1
    fi

    local opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$dir'"
    opts+=" -c fsync=on -c synchronous_commit=on -c max_connections=200"
    BOONG_PG_STARTED=1
    # pg_ctl -w returns once the server is up, or as soon as it has died.
    if ! _boong_as_pg "$BOONG_PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -o "$opts" \
        -w -t "$BOONG_SERVER_WAIT_S" start >"$dir/pg_ctl.log" 2>&1; then
        _boong_srv_log "PostgreSQL failed to start on 127.0.0.1:$port"
        _boong_srv_tail "$dir/pg_ctl.log" "$dir/postgres.log"
        boong_stop_postgres
        return 1
    fi
    local deadline=$((SECONDS + BOONG_SERVER_WAIT_S))
    until "$BOONG_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 2; do
        if ((SECONDS >= deadline)) || ! _boong_pg_pid >/dev/null; then
            _boong_srv_log "PostgreSQL did not answer on 127.0.0.1:$port within ${BOONG_SERVER_WAIT_S} s"
            _boong_srv_tail "$dir/postgres.log"
            boong_stop_postgres
            return 1
        fi
        sleep 0.2
    done

    if ! "$BOONG_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres \
        -c "CREATE ROLE boong LOGIN CREATEDB PASSWORD 'boong'" \
        -c "CREATE DATABASE boong_test OWNER boong" >"$dir/setup.log" 2>&1 ||
        ! "$BOONG_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 \
            "postgresql://boong:boong@127.0.0.1:$port/boong_test" -c 'SELECT 1' >>"$dir/setup.log" 2>&1; then
        _boong_srv_log "creating the boong role and boong_test database failed"
        _boong_srv_tail "$dir/setup.log" "$dir/postgres.log"
        boong_stop_postgres
        return 1
    fi

    export BOONG_TEST_PG_DSN="postgresql://boong:boong@127.0.0.1:$port/boong_test"
    # The superuser, through the server's own socket (trust): for tests that
    # must change server settings (ALTER SYSTEM).
    export BOONG_TEST_PG_ADMIN_DSN="host=$dir port=$port user=postgres dbname=boong_test"
    # For chaos tests: a crash-like restart (immediate stop, then the same
    # options again, from postmaster.opts).
    local as_pg=""
    ((EUID == 0)) && as_pg="runuser -u postgres --"
    export BOONG_TEST_PG_RESTART="cd '$dir' && $as_pg '$BOONG_PG_BIN/pg_ctl' -D '$dir/data' -m immediate -w -t 60 restart >>'$dir/restart.log' 2>&1"
    # For outage tests: down for as long as the test likes, then up again.
    export BOONG_TEST_PG_STOP="cd '$dir' && $as_pg '$BOONG_PG_BIN/pg_ctl' -D '$dir/data' -m immediate -w -t 60 stop >>'$dir/restart.log' 2>&1"
    export BOONG_TEST_PG_START="cd '$dir' && $as_pg '$BOONG_PG_BIN/pg_ctl' -D '$dir/data' -l '$dir/postgres.log' -o \"$opts\" -w -t 60 start >>'$dir/restart.log' 2>&1"
    _boong_srv_log "PostgreSQL ready on 127.0.0.1:$port (dir $dir)"
}

boong_stop_postgres() {
    local dir=${BOONG_PG_DIR:-}
    [[ -n $dir ]] || return 0
    if [[ -d $dir ]]; then
        local pid i
        # A server launched a moment ago may not have written its pid file yet.
        for ((i = 0; i < 25; i++)); do
            [[ ${BOONG_PG_STARTED:-0} == 1 && ! -f $dir/data/postmaster.pid ]] || break
            sleep 0.2
        done
        if pid=$(_boong_pg_pid); then
            if ! _boong_as_pg "$BOONG_PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1; then
                _boong_srv_log "PostgreSQL (pid $pid) did not stop cleanly; killing it"
                kill -KILL "$pid" 2>/dev/null || true
                local child
                for child in $(pgrep -P "$pid" 2>/dev/null || true); do
                    kill -KILL "$child" 2>/dev/null || true
                done
            fi
        fi
        rm -rf -- "$dir" || true
    fi
    unset BOONG_PG_DIR BOONG_PG_PORT BOONG_PG_STARTED BOONG_TEST_PG_DSN BOONG_TEST_PG_RESTART BOONG_TEST_PG_STOP \
        BOONG_TEST_PG_START BOONG_TEST_PG_ADMIN_DSN
    return 0
}

boong_start_redis() {
    local parent=${1:-${TMPDIR:-/tmp}} port=${2:-}
    if [[ -n ${BOONG_REDIS_DIR:-} ]]; then
        _boong_srv_log "Redis already started here ($BOONG_REDIS_DIR)"
        return 1
    fi
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        _boong_srv_log "redis-server/redis-cli not found (run scripts/deps.sh)"
        return 1
    fi
    if [[ -z $port ]]; then
        port=$(boong_free_port) || return 1
    elif _boong_port_in_use "$port"; then
        _boong_srv_log "port $port on 127.0.0.1 is already in use"
        return 1
    fi

    local dir
    dir=$(mktemp -d "$parent/boong-redis.XXXXXX") || return 1
    BOONG_REDIS_DIR=$dir
    # shellcheck disable=SC2034  # state for callers
    BOONG_REDIS_PORT=$port
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes --save '' \
        --daemonize no </dev/null >"$dir/redis.log" 2>&1 &
    BOONG_REDIS_PID=$!

    # Ready when *our* server answers: INFO's process_id must be its pid.
    local deadline=$((SECONDS + BOONG_SERVER_WAIT_S))
    until [[ $(redis-cli -h 127.0.0.1 -p "$port" info server 2>/dev/null | tr -d '\r') == *"process_id:$BOONG_REDIS_PID"$'\n'* ]] &&
        [[ $(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]]; do
        if ! kill -0 "$BOONG_REDIS_PID" 2>/dev/null; then
            _boong_srv_log "Redis exited during startup"
            _boong_srv_tail "$dir/redis.log"
            boong_stop_redis
            return 1
        fi
        if ((SECONDS >= deadline)); then
            _boong_srv_log "Redis did not answer PING on 127.0.0.1:$port within ${BOONG_SERVER_WAIT_S} s"
            _boong_srv_tail "$dir/redis.log"
            boong_stop_redis
            return 1
        fi
        sleep 0.1
    done

    export BOONG_TEST_REDIS_HOST=127.0.0.1
    export BOONG_TEST_REDIS_PORT=$port
    # For chaos tests: a restart that keeps the data (SHUTDOWN writes the AOF).
    export BOONG_TEST_REDIS_RESTART="'$BOONG_SRV_LIB/restart_redis.sh' '$dir' '$port'"
    _boong_srv_log "Redis ready on 127.0.0.1:$port (dir $dir)"
}

boong_stop_redis() {
    local dir=${BOONG_REDIS_DIR:-} pid=${BOONG_REDIS_PID:-}
    [[ -n $dir ]] || return 0
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            _boong_srv_log "Redis (pid $pid) did not stop cleanly; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    if [[ -n $pid ]]; then
        wait "$pid" 2>/dev/null || true # reap it when it is our child
    fi
    # A chaos test may have restarted it (restart_redis.sh): that server has its own pid file.
    if [[ -f $dir/redis.pid ]]; then
        local again
        again=$(cat "$dir/redis.pid" 2>/dev/null || true)
        if [[ -n $again ]] && kill -0 "$again" 2>/dev/null; then
            kill -TERM "$again" 2>/dev/null || true
            for ((i = 0; i < 100; i++)); do
                kill -0 "$again" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$again" 2>/dev/null || true
        fi
    fi
    rm -rf -- "$dir" || true
    unset BOONG_REDIS_DIR BOONG_REDIS_PORT BOONG_REDIS_PID BOONG_TEST_REDIS_HOST BOONG_TEST_REDIS_PORT BOONG_TEST_REDIS_RESTART
    return 0
}

boong_stop_servers() {
    boong_stop_redis
    boong_stop_postgres
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -uo pipefail
    if (($# == 0)); then
        echo "usage: $0 COMMAND [ARG...]   (runs COMMAND with private PostgreSQL and Redis)" >&2
        exit 2
    fi
    trap boong_stop_servers EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    boong_start_postgres "" "" || exit 1
    boong_start_redis "" "" || exit 1
    "$@"
    exit $?
fi
