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
#                                         and _ALARM / _CLEAR (a memory alarm raised and cleared);
#                                         a TLS listener too: _TLS_PORT, _CA_FILE, _CLIENT_CERT_FILE,
#                                         _CLIENT_KEY_FILE, and _OTHER_CA_FILE, _OTHER_CLIENT_CERT_FILE,
#                                         _OTHER_CLIENT_KEY_FILE (a CA the node does not trust)
#   boong_stop_rabbitmq
#   boong_stop_servers                    all stops; safe to call twice or when nothing runs
#   boong_start_rabbitmq_cluster, boong_stop_rabbitmq_cluster: a three-node RabbitMQ cluster, for
#                                         chaos tests (see the end of this file; boong_stop_servers
#                                         leaves it alone)
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

# Writes a node's configuration into $1: rabbitmq.conf (a plain listener
# on $3, the boong/boong administrator, the memory watermark $6, then any
# further lines given), no plugins, and its environment (env.sh, as
# restart_rabbitmq.sh and _boong_as_rmq read it).
_boong_rabbitmq_node_files() { # dir node port dist_port epmd_port watermark [conf line...]
    local dir=$1 node=$2 port=$3 dist_port=$4 epmd_port=$5 watermark=$6
    shift 6
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
        "vm_memory_high_watermark.relative = $watermark" \
        "$@" >"$dir/rabbitmq.conf" || return 1
    printf '[].\n' >"$dir/enabled_plugins" || return 1 # no plugins: no management UI
    : >"$dir/rabbitmq-env.conf" || return 1            # read instead of /etc/rabbitmq/rabbitmq-env.conf
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
    if ! command -v openssl >/dev/null 2>&1; then
        _boong_srv_log "openssl not found: it makes the TLS listener's certificates (apt-get install openssl)"
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
    local dist_port epmd_port tls_port
    dist_port=$(_boong_free_port_except "$port") || return 1
    epmd_port=$(_boong_free_port_except "$port" "$dist_port") || return 1
    tls_port=$(_boong_free_port_except "$port" "$dist_port" "$epmd_port") || return 1

    local dir
    dir=$(mktemp -d "$parent/boong-rabbitmq.XXXXXX") || return 1
    BOONG_RABBITMQ_DIR=$dir
    # shellcheck disable=SC2034  # state for callers
    BOONG_RABBITMQ_PORT=$port
    # shellcheck disable=SC2034  # state for callers
    BOONG_RABBITMQ_TLS_PORT=$tls_port
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
    # A TLS listener too (amqps), with a throwaway CA: the client may present a
    # certificate (checked against the CA), or none and log in with a password.
    local tls=$dir/tls
    if ! boong_make_tls_certificates "$tls" 2>"$dir/tls.log"; then
        _boong_srv_log "cannot make the TLS certificates in $tls"
        _boong_srv_tail "$dir/tls.log"
        boong_stop_rabbitmq
        return 1
    fi
    # The default user is created at the first boot only, and kept by restarts.
    _boong_rabbitmq_node_files "$dir" "$node" "$port" "$dist_port" "$epmd_port" 0.6 \
        "listeners.ssl.default = 127.0.0.1:$tls_port" \
        "ssl_options.cacertfile = $tls/ca.pem" \
        "ssl_options.certfile = $tls/server.pem" \
        "ssl_options.keyfile = $tls/server.key" \
        "ssl_options.verify = verify_peer" \
        "ssl_options.fail_if_no_peer_cert = false" || {
        _boong_srv_log "cannot write the RabbitMQ node's files in $dir"
        boong_stop_rabbitmq
        return 1
    }

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
    # The TLS listener completes a verified handshake (name and chain).
    if ! timeout 10 openssl s_client -connect "127.0.0.1:$tls_port" -CAfile "$tls/ca.pem" -verify_return_error \
        -verify_hostname localhost -brief </dev/null >"$dir/tls-check.log" 2>&1; then
        _boong_srv_log "RabbitMQ's TLS listener on 127.0.0.1:$tls_port failed a verified handshake"
        _boong_srv_tail "$dir/tls-check.log" "$dir/log/$node.log"
        boong_stop_rabbitmq
        return 1
    fi

    export BOONG_TEST_RABBITMQ_HOST=127.0.0.1
    export BOONG_TEST_RABBITMQ_PORT=$port
    export BOONG_TEST_RABBITMQ_USER=boong
    export BOONG_TEST_RABBITMQ_PASSWORD=boong
    # TLS: the listener's port, the CA that signed its certificate (for localhost and
    # 127.0.0.1), a client certificate it signed, and another CA with a client
    # certificate of its own, which the node does not trust.
    export BOONG_TEST_RABBITMQ_TLS_PORT=$tls_port
    export BOONG_TEST_RABBITMQ_CA_FILE=$tls/ca.pem
    export BOONG_TEST_RABBITMQ_CLIENT_CERT_FILE=$tls/client.pem
    export BOONG_TEST_RABBITMQ_CLIENT_KEY_FILE=$tls/client.key
    export BOONG_TEST_RABBITMQ_OTHER_CA_FILE=$tls/other-ca.pem
    export BOONG_TEST_RABBITMQ_OTHER_CLIENT_CERT_FILE=$tls/other-client.pem
    export BOONG_TEST_RABBITMQ_OTHER_CLIENT_KEY_FILE=$tls/other-client.key
    # For chaos tests: a clean stop and a start of the same node (data kept).
    export BOONG_TEST_RABBITMQ_RESTART="'$BOONG_SRV_LIB/restart_rabbitmq.sh' '$dir' restart"
    # For outage tests: down for as long as the test likes, then up again.
    export BOONG_TEST_RABBITMQ_STOP="'$BOONG_SRV_LIB/restart_rabbitmq.sh' '$dir' stop"
    export BOONG_TEST_RABBITMQ_START="'$BOONG_SRV_LIB/restart_rabbitmq.sh' '$dir' start"
    export BOONG_TEST_RABBITMQ_ALARM="'$BOONG_SRV_LIB/restart_rabbitmq.sh' '$dir' alarm"
    export BOONG_TEST_RABBITMQ_CLEAR="'$BOONG_SRV_LIB/restart_rabbitmq.sh' '$dir' clear"
    _boong_srv_log "RabbitMQ ready on 127.0.0.1:$port, TLS on $tls_port (node $node, dir $dir)"
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
        BOONG_TEST_RABBITMQ_ALARM BOONG_TEST_RABBITMQ_CLEAR BOONG_RABBITMQ_TLS_PORT BOONG_TEST_RABBITMQ_TLS_PORT \
        BOONG_TEST_RABBITMQ_CA_FILE BOONG_TEST_RABBITMQ_CLIENT_CERT_FILE BOONG_TEST_RABBITMQ_CLIENT_KEY_FILE \
        BOONG_TEST_RABBITMQ_OTHER_CA_FILE BOONG_TEST_RABBITMQ_OTHER_CLIENT_CERT_FILE \
        BOONG_TEST_RABBITMQ_OTHER_CLIENT_KEY_FILE
    return 0
}

# Makes a throwaway certificate authority and certificates signed by it in
# DIR (created), with openssl and EC P-256 keys (milliseconds, unlike RSA),
# all PEM, valid for 30 days, readable by us only (who run the node):
#   ca.pem, ca.key                  the CA (CN "Boong test CA")
#   server.pem, server.key          CN localhost, SAN DNS:localhost and IP:127.0.0.1 (serverAuth)
#   client.pem, client.key          CN boong-test-client (clientAuth)
#   other-ca.pem                    another self-signed CA with the same name on another key:
#                                   it signed nothing above, so trusting it alone must fail
#   other-client.pem, other-client.key   signed by that other CA: a client the node must refuse
# For boong_start_rabbitmq's TLS listener. Returns non-zero (openssl's complaint on
# stderr) on failure.
boong_make_tls_certificates() { # dir
    local dir=${1:?usage: boong_make_tls_certificates DIR}
    # Each step checked: `set -e` would be ignored in a caller's `if !`.
    (
        umask 077
        mkdir -p -- "$dir" && cd -- "$dir" || exit 1
        ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
        ca() { # stem: a self-signed CA
            openssl req -x509 "${ec[@]}" -keyout "$1.key" -out "$1.pem" -days 30 -subj "/CN=Boong test CA" \
                -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
                2>"$1.log" && rm -f -- "$1.log"
        }
        leaf() { # stem issuer-stem serial cn extension...: a certificate the issuer signs
            local stem=$1 issuer=$2 serial=$3 cn=$4
            shift 4
            printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" "$@" \
                >"$stem.ext" &&
                openssl req -new "${ec[@]}" -keyout "$stem.key" -out "$stem.csr" -subj "/CN=$cn" 2>"$stem.log" &&
                openssl x509 -req -in "$stem.csr" -CA "$issuer.pem" -CAkey "$issuer.key" -set_serial "$serial" \
                    -days 30 -extfile "$stem.ext" -out "$stem.pem" 2>>"$stem.log" &&
                rm -f -- "$stem.csr" "$stem.ext" "$stem.log"
        }
        if ! { ca ca &&
            leaf server ca 2 localhost "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" &&
            leaf client ca 3 boong-test-client "extendedKeyUsage=clientAuth" &&
            ca other-ca &&
            leaf other-client other-ca 2 boong-test-client "extendedKeyUsage=clientAuth" &&
            openssl verify -CAfile ca.pem server.pem client.pem >/dev/null; }; then
            cat -- *.log 2>/dev/null >&2
            exit 1
        fi
        rm -f -- other-ca.key # nothing more to sign with it
    )
}

boong_stop_servers() {
    boong_stop_rabbitmq_cluster
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

# ---- a RabbitMQ cluster, for chaos tests -------------------------------------------
#
#   boong_start_rabbitmq_cluster [parent] [port1 port2 port3]
#       Three nodes of one RabbitMQ cluster on 127.0.0.1, each with its own node
#       name, AMQP port, Erlang distribution port, data and log directories,
#       under one fresh temporary directory (made under [parent], default $TMPDIR
#       or /tmp); they share an Erlang cookie and a private epmd. Nodes 2 and 3
#       join node 1. Exports
#         BOONG_TEST_RABBITMQ_CLUSTER_HOST      127.0.0.1
#         BOONG_TEST_RABBITMQ_CLUSTER_PORTS     the three AMQP ports, node 1 first ("p1 p2 p3")
#         BOONG_TEST_RABBITMQ_CLUSTER_NODES     the three node names, in the same order
#         BOONG_TEST_RABBITMQ_CLUSTER_USER, _PASSWORD   boong/boong (administrator, vhost /)
#         BOONG_TEST_RABBITMQ_CLUSTER_STOP_<n>  commands, for n = 1, 2, 3: node n stops cleanly,
#         BOONG_TEST_RABBITMQ_CLUSTER_KILL_<n>  or is killed (SIGKILL, as in a crash),
#         BOONG_TEST_RABBITMQ_CLUSTER_START_<n> or starts again (data kept; it rejoins)
#         BOONG_TEST_RABBITMQ_CLUSTER_CTL_<n>   a command prefix: rabbitmqctl against node n
#                                               (append its arguments, e.g. list_queues name leader)
#       Empty or missing ports are picked.
#   boong_stop_rabbitmq_cluster             stops the three nodes and removes the directory
# Quorum queues declared on it get a member on every node (RabbitMQ's default
# initial group size is the cluster's size), their leader on the node the
# declaring client is connected to. State: BOONG_RABBITMQ_CLUSTER_DIR (node
# n in $BOONG_RABBITMQ_CLUSTER_DIR/node<n>, each a node directory that
# restart_rabbitmq.sh takes), BOONG_RABBITMQ_CLUSTER_PORTS.

BOONG_RABBITMQ_CLUSTER_SIZE=3

# Writes the files of one cluster node into $1 (created): its configuration,
# its environment (env.sh, as restart_rabbitmq.sh reads it) and the cookie.
_boong_rabbitmq_cluster_node() { # dir node port dist_port epmd_port cookie
    local dir=$1 node=$2 port=$3 dist_port=$4 epmd_port=$5 cookie=$6
    mkdir "$dir" "$dir/home" "$dir/mnesia" "$dir/log" || return 1
    (umask 077 && printf '%s' "$cookie" >"$dir/home/.erlang.cookie") && chmod 400 "$dir/home/.erlang.cookie" ||
        return 1
    # As boong_start_rabbitmq's node (no TLS listener), with a lower memory
    # watermark: three share the machine. Nodes 2 and 3 make the user too at
    # their first boot, and take the cluster's when they join.
    _boong_rabbitmq_node_files "$dir" "$node" "$port" "$dist_port" "$epmd_port" 0.4
}

boong_start_rabbitmq_cluster() {
    local parent=${1:-${TMPDIR:-/tmp}}
    local -a ports=("${@:2}")
    local n=$BOONG_RABBITMQ_CLUSTER_SIZE i
    if [[ -n ${BOONG_RABBITMQ_CLUSTER_DIR:-} ]]; then
        _boong_srv_log "a RabbitMQ cluster is already started here ($BOONG_RABBITMQ_CLUSTER_DIR)"
        return 1
    fi
    if [[ ! -x $BOONG_RABBITMQ_BIN/rabbitmq-server || ! -x $BOONG_RABBITMQ_BIN/rabbitmqctl ]] ||
        ! command -v epmd >/dev/null 2>&1; then
        _boong_srv_log "RabbitMQ not found in $BOONG_RABBITMQ_BIN (run scripts/deps.sh)"
        return 1
    fi
    # AMQP ports as given or picked; then a distribution port per node and one epmd port.
    local -a taken=() dist_ports=()
    for ((i = 0; i < n; i++)); do
        if [[ -z ${ports[i]:-} ]]; then
            ports[i]=$(_boong_free_port_except "${taken[@]}") || return 1
        elif _boong_port_in_use "${ports[i]}"; then
            _boong_srv_log "port ${ports[i]} on 127.0.0.1 is already in use"
            return 1
        fi
        taken+=("${ports[i]}")
    done
    for ((i = 0; i < n; i++)); do
        dist_ports[i]=$(_boong_free_port_except "${taken[@]}") || return 1
        taken+=("${dist_ports[i]}")
    done
    local epmd_port
    epmd_port=$(_boong_free_port_except "${taken[@]}") || return 1

    local dir uuid
    dir=$(mktemp -d "$parent/boong-rabbitmq-cluster.XXXXXX") || return 1
    BOONG_RABBITMQ_CLUSTER_DIR=$dir
    BOONG_RABBITMQ_CLUSTER_PORTS="${ports[*]:0:n}"
    local -a nodes=()
    for ((i = 1; i <= n; i++)); do nodes+=("boong-c$i-${dir##*.}@localhost"); done
    if ! read -r uuid </proc/sys/kernel/random/uuid; then
        boong_stop_rabbitmq_cluster
        return 1
    fi
    for ((i = 1; i <= n; i++)); do
        if ! _boong_rabbitmq_cluster_node "$dir/node$i" "${nodes[i - 1]}" "${ports[i - 1]}" "${dist_ports[i - 1]}" \
            "$epmd_port" "${uuid//-/}"; then
            _boong_srv_log "cannot set up $dir/node$i"
            boong_stop_rabbitmq_cluster
            return 1
        fi
    done

    # One private epmd for the three (a node finds another through it), started
    # as restart_rabbitmq.sh starts it, so that its teardown finds it.
    epmd -port "$epmd_port" -address 127.0.0.1 -daemon
    for ((i = 0; i < 50; i++)); do
        epmd -port "$epmd_port" -names >/dev/null 2>&1 && break
        sleep 0.1
    done

    # The three boot at once (each waits for its own boot, printing its log on failure).
    local -a pids=()
    for ((i = 1; i <= n; i++)); do
        "$BOONG_SRV_LIB/restart_rabbitmq.sh" "$dir/node$i" start &
        pids+=($!)
    done
    local failed=0
    for i in "${pids[@]}"; do
        wait "$i" || failed=1
    done
    if ((failed)); then
        _boong_srv_log "a RabbitMQ cluster node failed to start"
        boong_stop_rabbitmq_cluster
        return 1
    fi
    # Nodes 2 and 3 join node 1, one after the other.
    for ((i = 2; i <= n; i++)); do
        if ! "$BOONG_SRV_LIB/restart_rabbitmq.sh" "$dir/node$i" join "${nodes[0]}"; then
            _boong_srv_log "node ${nodes[i - 1]} could not join ${nodes[0]}"
            boong_stop_rabbitmq_cluster
            return 1
        fi
    done
    # Every node sees the others running, and the user can log in.
    local status
    status=$(_boong_as_rmq "$dir/node1" "$BOONG_RABBITMQ_BIN/rabbitmqctl" -q -n "${nodes[0]}" \
        eval 'lists:sort(rabbit_nodes:all_running()).' 2>"$dir/setup.log")
    for ((i = 0; i < n; i++)); do
        if [[ $status != *"'${nodes[i]}'"* ]]; then
            _boong_srv_log "node ${nodes[i]} is not running in the cluster: $status"
            _boong_srv_tail "$dir/setup.log" "$dir/node$((i + 1))/log/${nodes[i]}.log"
            boong_stop_rabbitmq_cluster
            return 1
        fi
    done
    if ! _boong_as_rmq "$dir/node1" "$BOONG_RABBITMQ_BIN/rabbitmqctl" -q -n "${nodes[0]}" \
        authenticate_user boong boong >>"$dir/setup.log" 2>&1; then
        _boong_srv_log "RabbitMQ user boong cannot authenticate on the cluster"
        _boong_srv_tail "$dir/setup.log"
        boong_stop_rabbitmq_cluster
        return 1
    fi

    export BOONG_TEST_RABBITMQ_CLUSTER_HOST=127.0.0.1
    export BOONG_TEST_RABBITMQ_CLUSTER_PORTS=$BOONG_RABBITMQ_CLUSTER_PORTS
    export BOONG_TEST_RABBITMQ_CLUSTER_NODES="${nodes[*]}"
    export BOONG_TEST_RABBITMQ_CLUSTER_USER=boong
    export BOONG_TEST_RABBITMQ_CLUSTER_PASSWORD=boong
    local script="'$BOONG_SRV_LIB/restart_rabbitmq.sh'"
    for ((i = 1; i <= n; i++)); do
        export "BOONG_TEST_RABBITMQ_CLUSTER_STOP_$i=$script '$dir/node$i' stop"
        export "BOONG_TEST_RABBITMQ_CLUSTER_KILL_$i=$script '$dir/node$i' kill"
        export "BOONG_TEST_RABBITMQ_CLUSTER_START_$i=$script '$dir/node$i' start"
        export "BOONG_TEST_RABBITMQ_CLUSTER_CTL_$i=$script '$dir/node$i' ctl"
    done
    _boong_srv_log "RabbitMQ cluster ready on 127.0.0.1:${BOONG_RABBITMQ_CLUSTER_PORTS// /,} (nodes ${nodes[*]}, dir $dir)"
}

boong_stop_rabbitmq_cluster() {
    local dir=${BOONG_RABBITMQ_CLUSTER_DIR:-}
    local n=$BOONG_RABBITMQ_CLUSTER_SIZE i
    [[ -n $dir ]] || return 0
    if [[ -d $dir ]]; then
        # Every node stops at once (a node waits for none of the others to stop);
        # then each teardown kills what is left of it, and the shared epmd.
        local -a pids=()
        for ((i = 1; i <= n; i++)); do
            [[ -f $dir/node$i/env.sh ]] || continue
            "$BOONG_SRV_LIB/restart_rabbitmq.sh" "$dir/node$i" stop &
            pids+=($!)
        done
        for i in "${pids[@]}"; do
            wait "$i" || true
        done
        for ((i = 1; i <= n; i++)); do
            [[ -f $dir/node$i/env.sh ]] || continue
            if ! "$BOONG_SRV_LIB/restart_rabbitmq.sh" "$dir/node$i" teardown; then
                _boong_srv_log "RabbitMQ cluster node $i ($dir/node$i) left processes behind"
            fi
        done
        rm -rf -- "$dir" || true
    fi
    for ((i = 1; i <= n; i++)); do
        unset "BOONG_TEST_RABBITMQ_CLUSTER_STOP_$i" "BOONG_TEST_RABBITMQ_CLUSTER_KILL_$i" \
            "BOONG_TEST_RABBITMQ_CLUSTER_START_$i" "BOONG_TEST_RABBITMQ_CLUSTER_CTL_$i"
    done
    unset BOONG_RABBITMQ_CLUSTER_DIR BOONG_RABBITMQ_CLUSTER_PORTS BOONG_TEST_RABBITMQ_CLUSTER_HOST \
        BOONG_TEST_RABBITMQ_CLUSTER_PORTS BOONG_TEST_RABBITMQ_CLUSTER_NODES BOONG_TEST_RABBITMQ_CLUSTER_USER \
        BOONG_TEST_RABBITMQ_CLUSTER_PASSWORD
    return 0
}
