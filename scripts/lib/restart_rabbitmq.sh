#!/usr/bin/env bash
# Starts and stops the private RabbitMQ node that servers.sh set up in DIR, with
# the environment it wrote to DIR/env.sh (node name, ports, private HOME with
# the Erlang cookie, private epmd). Its data (DIR/mnesia) is kept across a stop
# and a start, so durable queues, persistent messages and users survive.
# For chaos and outage tests (BOONG_TEST_RABBITMQ_RESTART, _STOP, _START) and
# for servers.sh itself.
#   restart_rabbitmq.sh DIR restart    stop, then start (the default)
#   restart_rabbitmq.sh DIR stop       rabbitmqctl stop; SIGKILL if it hangs
#   restart_rabbitmq.sh DIR start      start detached, wait until booted
#   restart_rabbitmq.sh DIR alarm      raise a memory alarm (watermark 0): RabbitMQ blocks publishers
#   restart_rabbitmq.sh DIR clear      back to the configured watermark (0.6): the alarm clears
#   restart_rabbitmq.sh DIR teardown   stop, then kill whatever still names DIR
#                                      on its command line, and the private epmd
#   restart_rabbitmq.sh DIR kill       SIGKILL the node, as in a crash (data kept)
#   restart_rabbitmq.sh DIR join NODE  make it a member of NODE's cluster (stop_app,
#                                      join_cluster, start_app): boong_start_rabbitmq_cluster
#   restart_rabbitmq.sh DIR ctl ARG... rabbitmqctl ARG... against the node
# Only processes whose command line names DIR (or the private epmd's port) are
# ever signalled: a system RabbitMQ node, or the shared epmd on 4369, is left alone.
set -uo pipefail
dir=${1:?usage: restart_rabbitmq.sh DIR [restart|stop|start|alarm|clear|teardown|kill|join NODE|ctl ARG...]}
action=${2:-restart}
wait_s=${BOONG_RABBITMQ_WAIT_S:-90}

say() { printf 'restart_rabbitmq.sh: %s\n' "$*" >&2; }

if [[ ! -f $dir/env.sh ]]; then
    say "$dir/env.sh not found: not a node directory made by servers.sh"
    exit 1
fi
# shellcheck source=/dev/null  # written by boong_start_rabbitmq
source "$dir/env.sh"
cd "$dir" || exit 1
ctl=("$BOONG_RABBITMQ_BIN/rabbitmqctl" -q -n "$RABBITMQ_NODENAME")
log=$RABBITMQ_LOG_BASE/$RABBITMQ_NODENAME.log

# Pids of the Erlang VMs that run with HOME=$dir/home: the node (server) or
# also the CLI tools talking to it (all). Matched on exact arguments, so a
# directory name cannot match another's prefix.
node_pids() { # server|all
    local pid args
    for pid in $(pgrep -x beam.smp 2>/dev/null || true); do
        args=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline") || continue
        [[ $'\n'$args$'\n' == *$'\n-home\n'"$HOME"$'\n'* ]] || continue
        [[ $1 == all || $'\n'$args$'\n' == *$'\n-s\nrabbit\nboot\n'* ]] || continue
        echo "$pid"
    done
}

# Pids of the private epmd: exactly the command line we started it with.
epmd_pids() {
    pgrep -x -f "epmd -port $ERL_EPMD_PORT -address 127.0.0.1 -daemon" 2>/dev/null || true
}

# On failure: the first errors of the node's log (the cause; its tail is the
# shutdown that followed), its last lines, and why the VM died if it did.
show_log() {
    local f
    for f in "$dir/start.log" "$log"; do
        [[ -s $f ]] || continue
        if [[ $f == "$log" ]] && grep -q -E '\[(error|critical)\]' "$f"; then
            say "---- first errors in $f ----"
            grep -m 20 -E '\[(error|critical)\]' "$f" >&2
        fi
        say "---- last lines of $f ----"
        tail -n 20 -- "$f" >&2
    done
    if [[ -s $ERL_CRASH_DUMP ]]; then
        say "---- $ERL_CRASH_DUMP ----"
        grep -m 1 '^Slogan' "$ERL_CRASH_DUMP" >&2
    fi
}

ensure_epmd() {
    epmd -port "$ERL_EPMD_PORT" -names >/dev/null 2>&1 && return 0
    epmd -port "$ERL_EPMD_PORT" -address 127.0.0.1 -daemon || return 1
    local i
    for ((i = 0; i < 50; i++)); do
        epmd -port "$ERL_EPMD_PORT" -names >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    say "epmd did not come up on port $ERL_EPMD_PORT"
    return 1
}

kill_and_wait() { # pid...
    (($#)) || return 0
    kill -KILL "$@" 2>/dev/null || true
    local i pid alive
    for ((i = 0; i < 50; i++)); do
        alive=0
        for pid in "$@"; do
            # A killed process may linger as a zombie when nothing reaps it.
            [[ -r /proc/$pid/stat && $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] && alive=1
        done
        ((alive)) || return 0
        sleep 0.1
    done
    return 1
}

# True once the node has registered its name with the private epmd: cheap to
# poll, unlike rabbitmqctl (half a second to boot the CLI each time).
registered() {
    [[ $'\n'$(epmd -port "$ERL_EPMD_PORT" -names 2>/dev/null) == *$'\n'"name ${RABBITMQ_NODENAME%@*} at port "* ]]
}

stop_node() {
    local -a pids
    mapfile -t pids < <(node_pids server)
    ((${#pids[@]})) || return 0 # already down
    # stop halts RabbitMQ and the VM cleanly; we wait for the OS process to exit
    # (rabbitmqctl shutdown waits too, but took 2 s longer here). A node that
    # cannot be told to stop (not registered yet, wedged) is killed at once.
    local i tries=10
    timeout 60 "${ctl[@]}" stop >>"$dir/restart.log" 2>&1 && tries=300
    for ((i = 0; i < tries; i++)); do
        mapfile -t pids < <(node_pids server)
        ((${#pids[@]})) || return 0
        sleep 0.1
    done
    say "node $RABBITMQ_NODENAME (pid ${pids[*]}) did not stop cleanly; killing it"
    kill_and_wait "${pids[@]}" || { say "pid ${pids[*]} survived SIGKILL"; return 1; }
}

start_node() {
    if [[ -n $(node_pids server) ]]; then
        say "node $RABBITMQ_NODENAME already runs"
        return 1
    fi
    ensure_epmd || return 1
    rm -f -- "$RABBITMQ_PID_FILE"
    # -detached: the VM daemonizes, so the node outlives this script.
    if ! "$BOONG_RABBITMQ_BIN/rabbitmq-server" -detached </dev/null >>"$dir/start.log" 2>&1; then
        say "rabbitmq-server -detached failed"
        show_log
        return 1
    fi
    # The node registers with epmd early in its boot; await_startup then waits
    # for the boot to finish (it fails at once on a node not registered yet).
    local start=$SECONDS seen=0
    until registered && timeout 30 "${ctl[@]}" await_startup --timeout 25 >>"$dir/restart.log" 2>&1; do
        if [[ -n $(node_pids server) ]]; then
            seen=1
        elif ((seen || SECONDS - start >= 5)); then # its VM runs within a second when it starts at all
            say "node $RABBITMQ_NODENAME exited during startup"
            show_log
            return 1
        fi
        if ((SECONDS - start >= wait_s)); then
            say "node $RABBITMQ_NODENAME did not finish booting within $wait_s s"
            show_log
            return 1
        fi
        sleep 0.1
    done
    return 0
}

printf '==== %s %s\n' "$(date '+%F %T')" "$action" >>"$dir/restart.log"
case $action in
    stop) stop_node ;;
    start) start_node ;;
    restart) stop_node && start_node ;;
    alarm) "${ctl[@]}" set_vm_memory_high_watermark 0 ;;
    clear) "${ctl[@]}" set_vm_memory_high_watermark 0.6 ;;
    kill)
        mapfile -t pids < <(node_pids server)
        kill_and_wait "${pids[@]}" || { say "pid ${pids[*]} survived SIGKILL"; exit 1; }
        ;;
    join)
        target=${3:?usage: restart_rabbitmq.sh DIR join NODE}
        # The CLI talks to the node; the node itself contacts $target (same cookie and epmd).
        if ! { "${ctl[@]}" stop_app && "${ctl[@]}" join_cluster "$target" && "${ctl[@]}" start_app &&
            timeout 60 "${ctl[@]}" await_startup --timeout 55; } >>"$dir/restart.log" 2>&1; then
            say "node $RABBITMQ_NODENAME could not join $target"
            tail -n 20 -- "$dir/restart.log" >&2
            show_log
            exit 1
        fi
        ;;
    ctl) "${ctl[@]}" "${@:3}" ;;
    teardown)
        stop_node
        mapfile -t leftovers < <(node_pids all)
        kill_and_wait "${leftovers[@]}"
        epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1 || true
        mapfile -t leftovers < <(epmd_pids)
        kill_and_wait "${leftovers[@]}"
        [[ -z $(node_pids all) && -z $(epmd_pids) ]]
        ;;
    *)
        say "unknown action: $action (restart, stop, start, alarm, clear, teardown, kill, join or ctl)"
        exit 2
        ;;
esac
