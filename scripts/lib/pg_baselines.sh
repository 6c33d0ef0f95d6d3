# shellcheck shell=bash
# Runs bench_postgres and bench_durable next to raw-client baselines measured
# against the same server, on tables of the same shape, each baseline right
# before the benchmark it belongs to (on a shared machine, minutes apart is
# already a different machine).
#
#   source scripts/lib/servers.sh scripts/lib/pg_baselines.sh
#   boong_start_postgres "" ""
#   BOONG_BENCH_PG_DSN=$BOONG_TEST_PG_DSN boong_pg_bench BENCH_POSTGRES_EXE WORK_DIR [benchmark args...]
#   BOONG_BENCH_PG_DSN=$BOONG_TEST_PG_DSN boong_pg_durable_bench BENCH_DURABLE_EXE WORK_DIR [benchmark args...]
#
# Prints the Google Benchmark JSON files it wrote, one per line; returns
# non-zero if a baseline or a benchmark failed. The baselines, passed to
# bench_postgres in the environment (see bench/bench_postgres.cpp):
#   pg_append_concurrent  pgbench, 64 clients, one INSERT (one event) per transaction;
#                         p50/p99 from its per-transaction log (10 % sample)
#   pg_append_batch       pgbench, 4 clients, one 100-row INSERT per transaction
#   pg_read_all           psql, the same rows in position order to /dev/null (faster of two runs)
#   pg_append_growth      none: its own 1M-event run is the baseline of its 50M-event run
# bench_choreography's: choreography_orders and saga_orders, each after pg_append_concurrent's baseline.
# bench_durable's (see bench/bench_durable.cpp):
#   saga_durable_throughput  pgbench, 16 clients, one transaction per saga step: INSERT an
#                            event row + UPDATE one of 10,000 saga rows (version + 1)
#   recovery_time            none (its target, 10 s, is reported with it)
# pgbench runs in prepared mode with the ~200-byte payload bound as a
# parameter (-M prepared -D payload=...): the closest a raw client gets to
# what the library sends. A --benchmark_filter among the arguments selects
# which benchmarks run.

BOONG_PG_BIN=${BOONG_PG_BIN:-/usr/lib/postgresql/15/bin}
BOONG_BENCH_SECONDS=${BOONG_BENCH_SECONDS:-8}

# The payload bench_postgres appends, and metadata of the size the library writes.
BOONG_BENCH_PAYLOAD='{"order_id":"ord-0000000001","customer":"cust-42","amount_cents":12345,"currency":"EUR","items":[{"sku":"sku-1","qty":2},{"sku":"sku-2","qty":1}],"note":"benchmark payload of about two hundred bytes."}'
BOONG_BENCH_METADATA='{"causation_id":"bench-pgbench-00","correlation_id":"bench-pgbench-00","timestamp":"2025-01-01T00:00:00.000000Z"}'

_boong_bl_log() { printf 'pg_baselines: %s\n' "$*" >&2; }

_boong_bl_python() {
    if [[ -x /usr/bin/python3 ]]; then /usr/bin/python3 "$@"; else python3 "$@"; fi
}

# One row as pgbench inserts it: position and version from one sequence
# (unique per stream), the payload bound, a fresh event id.
_boong_bl_row() { # [sequence]
    local seq=${1:-bench_pgbench_seq}
    printf "(nextval('%s'), 'pgbench-' || :client_id, nextval('%s'), gen_random_uuid(), 'BenchEvent', 1, :payload, '%s')" \
        "$seq" "$seq" "$BOONG_BENCH_METADATA"
}

_boong_bl_pgbench() { # script clients [pgbench args] -> prints tps
    local script=$1 clients=$2
    shift 2
    local out
    if ! out=$("$BOONG_PG_BIN/pgbench" -n -M prepared -c "$clients" -j 2 -T "$BOONG_BENCH_SECONDS" \
        -f "$script" -D payload="$BOONG_BENCH_PAYLOAD" "$@" "$BOONG_BENCH_PG_DSN" 2>&1); then
        _boong_bl_log "pgbench failed:"
        printf '%s\n' "$out" >&2
        return 1
    fi
    sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out"
}

_boong_bl_append_concurrent() { # work
    local work=$1 tps percentiles
    printf 'INSERT INTO bench_pgbench (position, stream_id, version, event_id, type, schema_version, payload, metadata) VALUES %s;\n' \
        "$(_boong_bl_row)" >"$work/one.sql"
    rm -f "$work"/pgbench_one*
    tps=$(_boong_bl_pgbench "$work/one.sql" 64 -l --sampling-rate=0.1 --log-prefix="$work/pgbench_one") || return 1
    percentiles=$(cat "$work"/pgbench_one* | _boong_bl_python -c '
import sys
lat = sorted(int(line.split()[2]) for line in sys.stdin if line.strip())
pick = lambda p: lat[int(p * (len(lat) - 1))] if lat else 0
print(pick(0.50), pick(0.99))') || return 1
    export BOONG_BENCH_BASELINE_APPEND_CONCURRENT=$tps
    read -r BOONG_BENCH_BASELINE_APPEND_P50_US BOONG_BENCH_BASELINE_APPEND_P99_US <<<"$percentiles"
    export BOONG_BENCH_BASELINE_APPEND_P50_US BOONG_BENCH_BASELINE_APPEND_P99_US
    _boong_bl_log "pg_append_concurrent baseline: $tps events/s, p50 $BOONG_BENCH_BASELINE_APPEND_P50_US us," \
        "p99 $BOONG_BENCH_BASELINE_APPEND_P99_US us"
}

_boong_bl_append_batch() { # work
    local work=$1 tps i
    {
        printf 'INSERT INTO bench_pgbench (position, stream_id, version, event_id, type, schema_version, payload, metadata) VALUES\n'
        for ((i = 1; i <= 100; i++)); do
            printf '%s%s\n' "$(_boong_bl_row)" "$( ((i < 100)) && echo , || echo ';')"
        done
    } >"$work/batch.sql"
    tps=$(_boong_bl_pgbench "$work/batch.sql" 4) || return 1
    export BOONG_BENCH_BASELINE_APPEND_BATCH
    BOONG_BENCH_BASELINE_APPEND_BATCH=$(_boong_bl_python -c "print($tps * 100)")
    _boong_bl_log "pg_append_batch baseline: $BOONG_BENCH_BASELINE_APPEND_BATCH events/s"
}

_boong_bl_read_all() {
    local columns="position, stream_id, version, event_id, type, schema_version, payload, metadata, stored_at"
    local best="" start end took _
    for _ in 1 2; do
        start=$(date +%s.%N)
        "$BOONG_PG_BIN/psql" -X -A -t -q "$BOONG_BENCH_PG_DSN" \
            -c "SELECT $columns FROM bench_read ORDER BY position" >/dev/null || return 1
        end=$(date +%s.%N)
        took=$(_boong_bl_python -c "print($end - $start)")
        if [[ -z $best ]] || _boong_bl_python -c "import sys; sys.exit(0 if $took < $best else 1)"; then best=$took; fi
    done
    export BOONG_BENCH_BASELINE_READ_ALL
    BOONG_BENCH_BASELINE_READ_ALL=$(_boong_bl_python -c "print(1000000 / $best)")
    _boong_bl_log "pg_read_all baseline: $BOONG_BENCH_BASELINE_READ_ALL events/s (psql, ${best} s)"
}

# A saga step as a raw client would store it: in one transaction, the step's
# event (a row of the events table's shape, payload bound) and its saga's
# row (one of 10,000, at random). 16 clients.
_boong_bl_saga_steps() { # work
    local work=$1 tps
    {
        printf '\\set id random(1, 10000)\n'
        printf 'BEGIN;\n'
        printf 'INSERT INTO bench_durable_pgbench (position, stream_id, version, event_id, type, schema_version, payload, metadata) VALUES %s;\n' \
            "$(_boong_bl_row bench_durable_pgbench_seq)"
        printf "UPDATE bench_durable_pgbench_sagas SET version = version + 1, updated_at = now() WHERE saga_id = 'b' || :id;\n"
        printf 'END;\n'
    } >"$work/saga_step.sql"
    tps=$(_boong_bl_pgbench "$work/saga_step.sql" 16) || return 1
    export BOONG_BENCH_BASELINE_SAGA_STEPS=$tps
    _boong_bl_log "saga_durable_throughput baseline: $tps transactions/s (one per saga step)"
}

# Same conditions for the library and the baselines: no checkpoint and no
# autovacuum in the middle of a measurement (autovacuum wakes once a minute
# and would vacuum the table the last measurement filled during whichever
# one runs then, library's or baseline's). The prepared tables are vacuumed
# once instead (_boong_bl_checkpoint). Durability settings are untouched.
_boong_bl_configure() {
    : "${BOONG_PG_DIR:?started by boong_start_postgres}" "${BOONG_PG_PORT:?}"
    if ! "$BOONG_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$BOONG_PG_DIR" -p "$BOONG_PG_PORT" -U postgres -d postgres \
        -c "ALTER SYSTEM SET max_wal_size = '8GB'" -c "ALTER SYSTEM SET checkpoint_timeout = '30min'" \
        -c "ALTER SYSTEM SET autovacuum = off" -c "SELECT pg_reload_conf()" >/dev/null; then
        _boong_bl_log "could not configure the server"
        return 1
    fi
}

# Vacuums the prepared tables (as autovacuum would have, in its own time),
# then writes everything out.
_boong_bl_checkpoint() {
    "$BOONG_PG_BIN/psql" -X -q "$BOONG_BENCH_PG_DSN" -c "VACUUM (ANALYZE)" >/dev/null 2>&1 ||
        _boong_bl_log "VACUUM of the prepared tables failed (continuing)"
    "$BOONG_PG_BIN/psql" -X -q -h "$BOONG_PG_DIR" -p "$BOONG_PG_PORT" -U postgres -d postgres -c CHECKPOINT >/dev/null
}

# Runs the benchmarks NAME... of EXE (each right after its baseline, when it
# has one: _boong_bl_<baseline>) on the started server and prints the JSON
# result files. Shared by the two entry points below.
#   _boong_pg_run EXE WORK WHAT "name:baseline ..." [benchmark args...]
_boong_pg_run() {
    local exe=$1 work=$2 what=$3 plan=$4
    shift 4
    : "${BOONG_PG_DIR:?started by boong_start_postgres}" "${BOONG_PG_PORT:?}" "${BOONG_BENCH_PG_DSN:?}"
    local filter="" args=() arg
    for arg in "$@"; do
        if [[ $arg == --benchmark_filter=* ]]; then filter=${arg#*=}; else args+=("$arg"); fi
    done
    local prog
    prog=$(basename "$exe")

    _boong_bl_configure || return 1
    _boong_bl_log "preparing tables for $what"
    "$exe" --boong-prepare >&2 || return 1
    _boong_bl_checkpoint

    local rc=0 entry name baseline out
    for entry in $plan; do
        name=${entry%%:*} baseline=${entry#*:}
        if [[ -n $filter ]] && ! grep -Eq -- "$filter" <<<"$name"; then continue; fi
        if [[ -n $baseline ]]; then
            "_boong_bl_$baseline" "$work" || { rc=1; continue; }
        fi
        out="$work/$prog.$name.json"
        if ! BOONG_BENCH_PG_DATA_DIR=$BOONG_PG_DIR/data "$exe" --benchmark_filter="^${name}(/|\$)" \
            --benchmark_format=json --benchmark_out="$out" "${args[@]}" >"$work/$prog.$name.stdout" ||
            ! grep -q '"name"' "$out" 2>/dev/null; then
            _boong_bl_log "$prog $name FAILED"
            rc=1
        fi
        if [[ -s $out ]]; then echo "$out"; fi
    done
    return "$rc"
}

boong_pg_bench() {
    local exe=$1 work=$2
    shift 2
    _boong_pg_run "$exe" "$work" "bench_postgres (1,000,000 events for pg_read_all)" \
        "pg_append_concurrent:append_concurrent any_pg_append_concurrent: pg_append_batch:append_batch pg_read_all:read_all pg_append_growth:" "$@"
}

# bench_choreography: the order services end to end, each variant right after
# pg_append_concurrent's pgbench baseline (one INSERT per transaction).
boong_pg_choreography_bench() {
    local exe=$1 work=$2
    shift 2
    _boong_pg_run "$exe" "$work" "bench_choreography" \
        "choreography_orders:append_concurrent saga_orders:append_concurrent" "$@"
}

# bench_durable: the same, for durable execution. recovery_time has no
# baseline; it runs after the throughput benchmark.
boong_pg_durable_bench() {
    local exe=$1 work=$2
    shift 2
    _boong_pg_run "$exe" "$work" "bench_durable" "saga_durable_throughput:saga_steps recovery_time:" "$@"
}
