#!/usr/bin/env bash
# Builds Boong and runs its CTest suite against private PostgreSQL, Redis and
# RabbitMQ servers (started here, stopped on any exit); with the chaos tests
# (all tests, or --label chaos), a three-node RabbitMQ cluster too.
#
#   scripts/test.sh                         all tests, RelWithDebInfo build in build/
#   scripts/test.sh --label unit            only tests labelled unit (also integration, chaos)
#   scripts/test.sh --sanitize [--label L]  ASan+UBSan Debug build in build-asan/
#   scripts/test.sh ... -- -R saga          anything after -- goes to ctest
#
# Environment: BUILD_DIR (default build), ASAN_BUILD_DIR (default build-asan).
set -euo pipefail

usage() { sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

sanitize=0
labels=()
ctest_extra=()
while (($#)); do
    case $1 in
        --label | -L)
            (($# >= 2)) || { echo "test.sh: $1 needs a label" >&2; exit 2; }
            labels+=("$2")
            shift 2
            ;;
        --label=*) labels+=("${1#*=}"); shift ;;
        --sanitize) sanitize=1; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; ctest_extra=("$@"); break ;;
        *) echo "test.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

if ((sanitize)); then
    build_dir=${ASAN_BUILD_DIR:-build-asan}
    config=(-DCMAKE_BUILD_TYPE=Debug -DBOONG_SANITIZE=ON -DBOONG_BUILD_BENCH=OFF -DBOONG_BUILD_EXAMPLES=OFF)
    flavour="Debug+ASan/UBSan"
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
else
    build_dir=${BUILD_DIR:-build}
    config=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
    flavour="RelWithDebInfo"
fi
config+=(-DBOONG_BUILD_TESTS=ON)

label_args=()
label_text=all
# The cluster takes half a minute to start: only when the chaos tests run.
cluster=1
if ((${#labels[@]})); then
    cluster=0
    for label in "${labels[@]}"; do
        if [[ $label == chaos ]]; then cluster=1; fi
    done
fi
if ((${#labels[@]})); then
    label_regex=$(IFS='|'; echo "${labels[*]}")
    label_args=(-L "^($label_regex)\$")
    label_text=$(IFS=,; echo "${labels[*]}")
fi

export CTEST_OUTPUT_ON_FAILURE=1

# shellcheck source=SCRIPTDIR/lib/servers.sh
source "$root/scripts/lib/servers.sh"

step=deps
started=$SECONDS
ctest_log=""
finish() {
    local rc=$? counts=""
    trap - EXIT INT TERM
    boong_stop_servers
    if [[ -n $ctest_log && -f $ctest_log ]]; then
        counts=$(grep -Eo '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$ctest_log" | tail -n 1 || true)
    fi
    local what="labels: $label_text; $flavour in $build_dir; $((SECONDS - started)) s"
    if ((rc == 0)); then
        echo "test.sh: PASSED (${counts:+$counts; }$what)"
    elif [[ $step == ctest ]]; then
        echo "test.sh: FAILED in ctest, exit $rc (${counts:+$counts; }$what)"
    else
        echo "test.sh: FAILED at step $step, exit $rc ($what)"
    fi
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$root/scripts/deps.sh"

step=configure
cmake -S . -B "$build_dir" -G Ninja "${config[@]}"

step=build
cmake --build "$build_dir" -j"$(nproc)"

step=servers
boong_start_postgres "" ""
boong_start_redis "" ""
boong_start_rabbitmq "" ""
if ((cluster)); then
    boong_start_rabbitmq_cluster ""
fi

step=ctest
ctest_log=$build_dir/ctest.log
ctest --test-dir "$build_dir" --output-on-failure -j2 --no-tests=error \
    "${label_args[@]}" "${ctest_extra[@]}" 2>&1 | tee "$ctest_log"
