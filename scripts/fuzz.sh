#!/usr/bin/env bash
# Builds Boong's libFuzzer targets with clang (ASan + UBSan) in build-fuzz/
# and runs each for a bounded time, starting from its seed corpus in
# tests/fuzz/corpus/<target>/. Fails on any crash, leak, sanitizer report or
# timeout, and leaves the input that caused it in build-fuzz/findings/.
#
#   scripts/fuzz.sh                    every target, 30 s each
#   scripts/fuzz.sh --seconds 600      longer (what grows the corpus is kept in build-fuzz/corpus/)
#   scripts/fuzz.sh --target fuzz_config --seconds 60
#
# To fuzz for hours on a spare machine: scripts/fuzz.sh --seconds 36000 --target T,
# then copy the small, new inputs worth keeping from build-fuzz/corpus/T into
# tests/fuzz/corpus/T (libFuzzer's -merge=1 picks a minimal set).
#
# Environment: FUZZ_BUILD_DIR (default build-fuzz).
set -euo pipefail

usage() { sed -n '2,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

seconds=30
targets=(fuzz_json_reader fuzz_stream_entry fuzz_config fuzz_domain_event fuzz_order_request)
only=()
while (($#)); do
    case $1 in
        --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
        --target) only+=("${2:?--target needs a name}"); shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "fuzz.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
[[ $seconds =~ ^[0-9]+$ ]] || { echo "fuzz.sh: --seconds must be a number of seconds" >&2; exit 2; }
((${#only[@]})) && targets=("${only[@]}")

# clang and its runtime (libFuzzer, sanitizers) come with the other dependencies.
"$root/scripts/deps.sh"

build_dir=${FUZZ_BUILD_DIR:-build-fuzz}
CXX=clang++ cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBOONG_BUILD_FUZZERS=ON \
    -DBOONG_WITH_POSTGRES=OFF -DBOONG_WITH_REDIS=OFF -DBOONG_BUILD_TESTS=OFF -DBOONG_BUILD_EXAMPLES=OFF \
    -DBOONG_BUILD_BENCH=OFF -DBOONG_INSTALL=OFF >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target "${targets[@]}"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=()
for t in "${targets[@]}"; do
    seeds=$root/tests/fuzz/corpus/$t
    corpus=$build_dir/corpus/$t
    findings=$build_dir/findings/$t
    mkdir -p "$corpus" "$findings"
    log=$build_dir/$t.log
    echo "fuzz.sh: $t for $seconds s"
    # The seeds are read, never written; what is found goes to the working corpus.
    if "$build_dir/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$findings/" "$corpus" "$seeds" >"$log" 2>&1; then
        echo "fuzz.sh: $t: $(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$') runs, no crash"
    else
        echo "fuzz.sh: $t FAILED; the input is in $findings/, the log in $log:" >&2
        grep -E 'ERROR|SUMMARY|==[0-9]+==|Test unit written' "$log" | head -n 20 >&2 || tail -n 30 "$log" >&2
        failed+=("$t")
    fi
done
if ((${#failed[@]})); then
    echo "fuzz.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: PASSED (${#targets[@]} targets, $seconds s each)"
