# shellcheck shell=bash
# Private PostgreSQL 15, Redis 7 and RabbitMQ 3.10 servers for Boong's tests.
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
#   boong_start_rabbitmq [parent] [port]  exports BOONG_TEST_RABBITMQ_HOST, _PORT, _USER, _PASSWORD
#                                         (boong/boong, administrator, all permissions on vhost /),
#                                         BOONG_TEST_RABBITMQ_RESTART (a command restarting the node,
#                                         data kept), BOONG_TEST_RABBITMQ_STOP / _START (an outage)
#                                         and _ALARM / _CLEAR (a memory alarm raised and cleared)
#   boong_stop_rabbitmq
#   boong_stop_servers                    all stops; safe to call twice or when nothing runs
#
# Each server lives in its own fresh temporary directory (data, socket, logs),
# made with mktemp -d under [parent] (default: $TMPDIR or /tmp) and removed by
# its stop function. An empty or missing port means "pick one". The caller owns
# the cleanup trap, e.g.:
#   trap boong_stop_servers EXIT; trap 'exit 130' INT; trap 'exit 143' TERM
# Functions return non-zero on failure (printing the server's log tail); they
# do not rely on `set -e` and are safe under it. State is kept in BOONG_PG_* and
# BOONG_REDIS_* / BOONG_RABBITMQ_* shell variables: call start and stop from the same
# shell (not from $(...)). BOONG_PG_PORT / BOONG_REDIS_PORT / BOONG_RABBITMQ_PORT hold
# the ports.
#
# Run directly, it starts the three servers, runs the given command with the
# variables exported, and stops them:  scripts/lib/servers.sh ctest --test-dir build

BOONG_PG_BIN=${BOONG_PG_BIN:-/usr/lib/postgresql/15/bin}
BOONG_SRV_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BOONG_SERVER_WAIT_S=${BOONG_SERVER_WAIT_S:-30}
# The scripts behind /usr/sbin/rabbitmq*: Debian's wrappers there switch to the
# rabbitmq user, reset HOME and log to /var/log/rabbitmq, which a private node must not.
BOONG_RABBITMQ_BIN=${BOONG_RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}
BOONG_RABBITMQ_WAIT_S=${BOONG_RABBITMQ_WAIT_S:-90}

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

# Runs a command with the environment of the RabbitMQ node in $1 (its env.sh),
# from its directory.
_boong_as_rmq() { # dir command...
    local dir=$1
    shift
    # shellcheck source=/dev/null  # written by boong_start_rabbitmq
    (source "$dir/env.sh" && cd "$dir" && exec "$@")
}

# A free port other than the given ones (ports picked together are not bound yet).
_boong_free_port_except() { # port...
    local i port taken
    for ((i = 0; i < 20; i++)); do
        port=$(boong_free_port) || return 1
        for taken in "$@"; do
            [[ $port == "$taken" ]] && continue 2
        done
        echo "$port"
        return 0
    done
    _boong_srv_log "no distinct free TCP port found"
    return 1
}

boong_start_rabbitmq() {
    local parent=${1:-${TMPDIR:-/tmp}} port=${2:-}
    if [[ -n ${BOONG_RABBITMQ_DIR:-} ]]; then
        _boong_srv_log "RabbitMQ already started here ($BOONG_RABBITMQ_DIR)"
        return 1
    fi
    if [[ ! -x $BOONG_RABBITMQ_BIN/rabbitmq-server || ! -x $BOONG_RABBITMQ_BIN/rabbitmqctl ]] ||
        ! command -v epmd >/dev/null 2>&1; then
        _boong_srv_log "RabbitMQ not found in $BOONG_RABBITMQ_BIN (run scripts/deps.sh)"
        return 1
    fi
    if [[ -z $port ]]; then
        port=$(boong_free_port) || return 1
    elif _boong_port_in_use "$port"; then
        _boong_srv_log "port $port on 127.0.0.1 is already in use"
        return 1
    fi
    # Erlang distribution and a private epmd get free ports of their own: the
    # default dist port (AMQP port + 20000) may be anything, and the shared epmd
    # on 4369 (a system node's, perhaps) is none of our business.
    local dist_port epmd_port
    dist_port=$(_boong_free_port_except "$port") || return 1
    epmd_port=$(_boong_free_port_except "$port" "$dist_port") || return 1

    local dir
    dir=$(mktemp -d "$parent/boong-rabbitmq.XXXXXX") || return 1
    BOONG_RABBITMQ_DIR=$dir
    # shellcheck disable=SC2034  # state for callers
    BOONG_RABBITMQ_PORT=$port
    BOONG_RABBITMQ_NODE="boong-${dir##*.}@localhost"
    local node=$BOONG_RABBITMQ_NODE

    # A private HOME holds the Erlang cookie that the node and rabbitmqctl share
    # (written here, before either runs: both would create one, and race).
    local uuid
    if ! mkdir "$dir/home" "$dir/mnesia" "$dir/log" || ! read -r uuid </proc/sys/kernel/random/uuid ||
        ! (umask 077 && printf '%s' "${uuid//-/}" >"$dir/home/.erlang.cookie") ||
        ! chmod 400 "$dir/home/.erlang.cookie"; then
        _boong_srv_log "cannot set up $dir"
        boong_stop_rabbitmq
        return 1
    fi
    # The default user is created at the first boot only, and kept by restarts.
    printf '%s\n' \
        "listeners.tcp.1 = 127.0.0.1:$port" \
        "default_vhost = /" \
        "default_user = boong" \
        "default_pass = boong" \
        "default_user_tags.administrator = true" \
        "default_permissions.configure = .*" \
        "default_permissions.read = .*" \
        "default_permissions.write = .*" \
        "disk_free_limit.absolute = 50MB" \
        "vm_memory_high_watermark.relative = 0.6" >"$dir/rabbitmq.conf"
    printf '[].\n' >"$dir/enabled_plugins" # no plugins: no management UI
    : >"$dir/rabbitmq-env.conf"            # read instead of /etc/rabbitmq/rabbitmq-env.conf
    local -a env=(
        "HOME=$dir/home"
        "RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf"
        "RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf"
        "RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config" # absent, and not /etc's
        "RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins"
        "RABBITMQ_MNESIA_BASE=$dir/mnesia"
        "RABBITMQ_LOG_BASE=$dir/log"
        "RABBITMQ_PID_FILE=$dir/rabbitmq.pid"
        "RABBITMQ_NODENAME=$node"
        "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1"
        "RABBITMQ_NODE_PORT=$port"
        "RABBITMQ_DIST_PORT=$dist_port"
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
        "ERL_EPMD_PORT=$epmd_port"
        "ERL_CRASH_DUMP=$dir/erl_crash.dump"
        "BOONG_RABBITMQ_BIN=$BOONG_RABBITMQ_BIN"
        "BOONG_RABBITMQ_WAIT_S=$BOONG_RABBITMQ_WAIT_S"
    )
    local var
    for var in "${env[@]}"; do
        printf 'export %s=%q\n' "${var%%=*}" "${var#*=}"
    done >"$dir/env.sh"

    # Starts it detached and waits for the boot (printing the log tail on failure).
    if ! "$BOONG_SRV_LIB/restart_rabbitmq.sh" "$dir" start; then
        _boong_srv_log "RabbitMQ failed to start on 127.0.0.1:$port"
        boong_stop_rabbitmq
        return 1
    fi
    if ! _boong_as_rmq "$dir" "$BOONG_RABBITMQ_BIN/rabbitmqctl" -q -n "$node" authenticate_user boong boong \
        >"$dir/setup.log" 2>&1; then
        _boong_srv_log "RabbitMQ user boong cannot authenticate"
        _boong_srv_tail "$dir/setup.log" "$dir/log/$node.log"
        boong_stop_rabbitmq
        return 1
    fi

    export BOONG_TEST_RABBITMQ_HOST=127.0.0.1
    export BOONG_TEST_RABBITMQ_PORT=$port
    export BOONG_TEST_RABBITMQ_USER=boong
    export BOONG_TEST_RABBITMQ_PASSWORD=boong
    # For chaos tests: a clean stop and a start of the same node (data kept).
    export BOONG_TEST_RABBITMQ_RESTART="'$BOONG_SRV_LIB/restart_rabbitmq.sh' '$dir' restart"
    # For outage tests: down for as long as the test likes, then up again.
    export BOONG_TEST_RABBITMQ_STOP="'$BOONG_SRV_LIB/restart_rabbitmq.sh' '$dir' stop"
    export BOONG_TEST_RABBITMQ_START="'$BOONG_SRV_LIB/restart_rabbitmq.sh' '$dir' start"
    export BOONG_TEST_RABBITMQ_ALARM="'$BOONG_SRV_LIB/restart_rabbitmq.sh' '$dir' alarm"
    export BOONG_TEST_RABBITMQ_CLEAR="'$BOONG_SRV_LIB/restart_rabbitmq.sh' '$dir' clear"
    _boong_srv_log "RabbitMQ ready on 127.0.0.1:$port (node $node, dir $dir)"
}

boong_stop_rabbitmq() {
    local dir=${BOONG_RABBITMQ_DIR:-}
    [[ -n $dir ]] || return 0
    if [[ -d $dir ]]; then
        # Stops the node (rabbitmqctl stop, SIGKILL if it hangs), then kills
        # what still names $dir on its command line, and the private epmd.
        if [[ -f $dir/env.sh ]] && ! "$BOONG_SRV_LIB/restart_rabbitmq.sh" "$dir" teardown; then
            _boong_srv_log "RabbitMQ node ${BOONG_RABBITMQ_NODE:-} left processes behind"
        fi
        rm -rf -- "$dir" || true
    fi
    unset BOONG_RABBITMQ_DIR BOONG_RABBITMQ_PORT BOONG_RABBITMQ_NODE BOONG_TEST_RABBITMQ_HOST \
        BOONG_TEST_RABBITMQ_PORT BOONG_TEST_RABBITMQ_USER BOONG_TEST_RABBITMQ_PASSWORD \
        BOONG_TEST_RABBITMQ_RESTART BOONG_TEST_RABBITMQ_STOP BOONG_TEST_RABBITMQ_START \
        BOONG_TEST_RABBITMQ_ALARM BOONG_TEST_RABBITMQ_CLEAR
    return 0
}

boong_stop_servers() {
    boong_stop_rabbitmq
    boong_stop_redis
    boong_stop_postgres
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -uo pipefail
    if (($# == 0)); then
        echo "usage: $0 COMMAND [ARG...]   (runs COMMAND with private PostgreSQL, Redis and RabbitMQ)" >&2
        exit 2
    fi
    trap boong_stop_servers EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    boong_start_postgres "" "" || exit 1
    boong_start_redis "" "" || exit 1
    boong_start_rabbitmq "" "" || exit 1
    "$@"
    exit $?
fi
