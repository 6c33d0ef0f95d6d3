#!/usr/bin/env bash
# Builds Boong's benchmarks (Release, in build-bench/), runs every bench_*
# executable, and merges their user counters into build/bench-results.json
# (see scripts/lib/merge_bench.py for the format). Arguments are passed to
# every benchmark, e.g.  scripts/bench.sh --benchmark_filter=Saga
# Servers (Redis, RabbitMQ, PostgreSQL) are private to the run, on free
# loopback ports in temporary directories, and stopped on exit.
# Environment: BENCH_BUILD_DIR (default build-bench),
#              BENCH_OUT (default build/bench-results.json).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build_dir=${BENCH_BUILD_DIR:-build-bench}
out=${BENCH_OUT:-build/bench-results.json}

python=/usr/bin/python3
[[ -x $python ]] || python=$(command -v python3) || { echo "bench.sh: python3 not found" >&2; exit 1; }

"$root/scripts/deps.sh"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBOONG_BUILD_TESTS=OFF -DBOONG_BUILD_EXAMPLES=ON -DBOONG_BUILD_BENCH=ON
cmake --build "$build_dir" -j"$(nproc)"

benches=()
if [[ -d $build_dir/bench ]]; then
    mapfile -t benches < <(find "$build_dir/bench" -path '*/CMakeFiles' -prune -o \
        -type f -name 'bench_*' ! -name '*.*' -perm -u+x -print | sort)
fi
if ((${#benches[@]} == 0)); then
    echo "bench.sh: no bench_* executables in $build_dir/bench" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/boong-bench.XXXXXX")
# One cleanup for everything: the servers started below (each stop is a no-op
# for a server that is not running) and the temporary directory.
_cleanup() {
    if declare -F boong_stop_servers >/dev/null; then boong_stop_servers; fi
    rm -rf "$tmp"
}
trap _cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# shellcheck source=SCRIPTDIR/lib/servers.sh
source "$root/scripts/lib/servers.sh"

# bench_redis: a private redis-server for this run, and its baseline measured
# against it here with redis-benchmark (XADD MAXLEN ~ of one 200-byte field,
# 50 clients, pipeline 16), passed on as BOONG_BENCH_REDIS_XADD_BASELINE.
# bench_choreography's services use the same server.
if [[ -x $build_dir/bench/bench_redis || -x $build_dir/bench/bench_choreography ]]; then
    boong_start_redis "" "" || { echo "bench.sh: cannot start redis-server" >&2; exit 1; }
    export BOONG_BENCH_REDIS_HOST=127.0.0.1 BOONG_BENCH_REDIS_PORT=$BOONG_REDIS_PORT
    field=$(printf '%0200d' 0)
    redis_rps=$(redis-benchmark -h 127.0.0.1 -p "$BOONG_REDIS_PORT" -c 50 -P 16 -n 400000 -q \
        XADD bench:baseline MAXLEN '~' 1000000 '*' f "$field" 2>/dev/null |
        tr '\r' '\n' | grep -Eo '[0-9.]+ requests per second' | tail -n 1 | cut -d' ' -f1 || true)
    redis-cli -h 127.0.0.1 -p "$BOONG_REDIS_PORT" DEL bench:baseline >/dev/null || true
    if [[ -n $redis_rps ]]; then
        export BOONG_BENCH_REDIS_XADD_BASELINE=$redis_rps
        echo "bench.sh: redis-benchmark XADD baseline: $redis_rps requests/s"
    else
        echo "bench.sh: redis-benchmark baseline not measured" >&2
    fi
fi

# bench_postgres and bench_durable: a private PostgreSQL 15 with durable
# commits (fsync=on, synchronous_commit=on: scripts/lib/servers.sh). They run
# after the other benchmarks, each of their figures right after the
# raw-client baseline (pgbench, psql) it is compared with
# (scripts/lib/pg_baselines.sh). Each is skipped when a --benchmark_filter
# excludes all of its benchmarks.
_bench_wanted() { # benchmark names... -> true unless a --benchmark_filter excludes them all
    local arg
    for arg in "${bench_args[@]}"; do
        if [[ $arg == --benchmark_filter=* && ${arg#*=} != -* ]] &&
            ! printf '%s\n' "$@" | grep -Eq -- "${arg#*=}"; then
            return 1
        fi
    done
    return 0
}
bench_args=("$@")
pg_bench=""
durable_bench=""
choreography_bench=""
if [[ -x $build_dir/bench/bench_postgres ]] && _bench_wanted pg_append_concurrent any_pg_append_concurrent pg_append_batch pg_read_all pg_append_growth; then
    pg_bench=$build_dir/bench/bench_postgres
fi
if [[ -x $build_dir/bench/bench_durable ]] && _bench_wanted saga_durable_throughput recovery_time; then
    durable_bench=$build_dir/bench/bench_durable
fi
if [[ -x $build_dir/bench/bench_choreography ]] && _bench_wanted choreography_orders saga_orders; then
    choreography_bench=$build_dir/bench/bench_choreography
fi
if [[ -n $pg_bench || -n $durable_bench || -n $choreography_bench ]]; then
    # shellcheck source=SCRIPTDIR/lib/pg_baselines.sh
    source "$root/scripts/lib/pg_baselines.sh"
    boong_start_postgres "" "" || { echo "bench.sh: cannot start PostgreSQL" >&2; exit 1; }
    export BOONG_BENCH_PG_DSN=$BOONG_TEST_PG_DSN
fi

# bench_rabbitmq: a private RabbitMQ node (scripts/lib/servers.sh), started
# right before it and stopped right after it, so that the node's Erlang VM
# takes no CPU from the other benchmarks. Its baseline is a raw rabbitmq-c
# publisher that bench_rabbitmq itself runs against the same node.
_start_rabbitmq() {
    boong_start_rabbitmq "" "" || return 1
    export BOONG_BENCH_RABBITMQ_HOST=$BOONG_TEST_RABBITMQ_HOST BOONG_BENCH_RABBITMQ_PORT=$BOONG_TEST_RABBITMQ_PORT \
        BOONG_BENCH_RABBITMQ_USER=$BOONG_TEST_RABBITMQ_USER BOONG_BENCH_RABBITMQ_PASSWORD=$BOONG_TEST_RABBITMQ_PASSWORD
}
_stop_rabbitmq() {
    boong_stop_rabbitmq
    unset BOONG_BENCH_RABBITMQ_HOST BOONG_BENCH_RABBITMQ_PORT BOONG_BENCH_RABBITMQ_USER BOONG_BENCH_RABBITMQ_PASSWORD
}

results=()
failed=()
for bench in "${benches[@]}"; do
    name=$(basename "$bench")
    # bench_postgres and bench_durable: below, next to their baselines (and
    # not at all when the filter excludes them).
    [[ $name == bench_postgres || $name == bench_durable || $name == bench_choreography ]] && continue
    rabbitmq=0
    if [[ $name == bench_rabbitmq ]] && _bench_wanted rabbitmq_publish rabbitmq_roundtrip; then
        if ! _start_rabbitmq; then
            echo "bench.sh: cannot start RabbitMQ for $name" >&2
            failed+=("$name")
            continue
        fi
        rabbitmq=1
    fi
    echo "bench.sh: running $name"
    # Console output is JSON too; keep it out of the way, next to nothing.
    if "$bench" --benchmark_format=json --benchmark_out="$tmp/$name.json" "$@" >"$tmp/$name.stdout"; then
        # An empty file: a --benchmark_filter matched nothing in this executable.
        [[ -s $tmp/$name.json ]] && results+=("$tmp/$name.json")
    else
        echo "bench.sh: $name FAILED (exit $?)" >&2
        failed+=("$name")
        [[ -s $tmp/$name.json ]] && results+=("$tmp/$name.json")
    fi
    ((rabbitmq == 0)) || _stop_rabbitmq
done

# Runs one of the PostgreSQL benchmark executables through its baseline
# function (scripts/lib/pg_baselines.sh).
_run_pg() { # function exe
    local fn=$1 exe=$2 name rc=0 lines=()
    name=$(basename "$exe")
    echo "bench.sh: running $name (with its baselines)"
    mapfile -t lines < <("$fn" "$exe" "$tmp" "${bench_args[@]}"; echo "rc=$?")
    [[ ${lines[-1]} == rc=0 ]] || rc=1
    unset 'lines[-1]'
    results+=("${lines[@]}")
    ((rc == 0)) || failed+=("$name")
}
[[ -z $pg_bench ]] || _run_pg boong_pg_bench "$pg_bench"
[[ -z $durable_bench ]] || _run_pg boong_pg_durable_bench "$durable_bench"
[[ -z $choreography_bench ]] || _run_pg boong_pg_choreography_bench "$choreography_bench"

mkdir -p "$(dirname "$out")"
merge_rc=0
if ((${#results[@]})); then
    "$python" "$root/scripts/lib/merge_bench.py" -o "$out" "${results[@]}" || merge_rc=$?
    # The brokers' round trips (the same load: 32 publishers, one consumer
    # with concurrency 64) side by side, those that ran.
    "$python" - "$out" <<'PY' || true
import json, sys
rows = {}
for r in json.load(open(sys.argv[1], encoding="utf-8")):
    # "<benchmark>[/iterations:1/real_time]/<counter>"
    bench, counter = r["name"].split("/")[0], r["name"].rsplit("/", 1)[-1]
    if bench in ("redis_roundtrip", "rabbitmq_roundtrip"):
        rows.setdefault(bench, {})[counter] = r["value"]
if rows:
    print("\nbroker round trip: publish -> handler -> ack")
    print(f"{'benchmark':<20}{'messages/s':>12}{'p50 us':>10}{'p99 us':>10}")
    for bench in ("redis_roundtrip", "rabbitmq_roundtrip"):
        c = rows.get(bench)
        if c:
            print(f"{bench:<20}{c.get('messages_per_s', 0):>12,.0f}"
                  f"{c.get('p50_latency_us', 0):>10,.0f}{c.get('p99_latency_us', 0):>10,.0f}")
PY
fi

if ((${#results[@]} == 0)); then
    echo "bench.sh: FAILED: no benchmark produced results" >&2
    exit 1
fi
if ((${#failed[@]})) || ((merge_rc)); then
    echo "bench.sh: FAILED: ${failed[*]:-merge} (ran ${#benches[@]} benchmark executable(s))" >&2
    exit 1
fi
echo "bench.sh: ran ${#benches[@]} benchmark executable(s); results in $out"
