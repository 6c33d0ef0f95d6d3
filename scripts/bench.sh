#!/usr/bin/env bash
# Builds Boong's benchmarks (Release, in build-bench/), runs every bench_*
# executable, and merges their user counters into build/bench-results.json
# (see scripts/lib/merge_bench.py for the format). Arguments are passed to
# every benchmark, e.g.  scripts/bench.sh --benchmark_filter=Saga
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
    -DBOONG_BUILD_TESTS=OFF -DBOONG_BUILD_EXAMPLES=OFF -DBOONG_BUILD_BENCH=ON
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
trap 'rm -rf "$tmp"' EXIT

results=()
failed=()
for bench in "${benches[@]}"; do
    name=$(basename "$bench")
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
done

mkdir -p "$(dirname "$out")"
merge_rc=0
if ((${#results[@]})); then
    "$python" "$root/scripts/lib/merge_bench.py" -o "$out" "${results[@]}" || merge_rc=$?
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
