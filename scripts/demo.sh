#!/usr/bin/env bash
# Builds Boong (RelWithDebInfo, in build/) and runs the order-processing
# example; exits with the example's status. Arguments go to the example.
# Environment: BUILD_DIR (default build).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build_dir=${BUILD_DIR:-build}
demo=$build_dir/examples/order_processing/order_processing

"$root/scripts/deps.sh"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
# Build just the example when the build knows it as a target, everything otherwise.
if cmake --build "$build_dir" --target help 2>/dev/null | grep -q '^order_processing:'; then
    cmake --build "$build_dir" -j"$(nproc)" --target order_processing
else
    cmake --build "$build_dir" -j"$(nproc)"
fi

if [[ ! -x $demo ]]; then
    echo "demo.sh: $demo was not built (is BOONG_BUILD_EXAMPLES on?)" >&2
    exit 1
fi
echo "demo.sh: running $demo $*"
exec "$demo" "$@"
