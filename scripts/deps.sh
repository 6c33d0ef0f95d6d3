#!/usr/bin/env bash
# Installs what Boong needs to build and test on Debian 12 (bookworm).
#
#   scripts/deps.sh            # run it
#   source scripts/deps.sh     # or source it: defines boong_deps and runs it
#
# Idempotent and fast: one dpkg-query call finds the missing packages, and apt
# runs only when something is missing. BOONG_SKIP_DEPS=1 skips everything (for a
# machine whose packages are managed some other way).
#
# Never add libboost-dev here: it is Boost 1.74 and conflicts with libboost1.81-dev.
#
# rabbitmq-server's postinst starts the system node through invoke-rc.d (denied
# in containers, by policy-rc.d or for want of an init system). Boong's tests
# never use that node: scripts/lib/servers.sh runs a private one, with its own
# node name, ports and epmd, beside a system node on 5672 and epmd on 4369.

BOONG_DEPS_PACKAGES=(
    build-essential cmake ninja-build ccache pkg-config git
    libboost1.81-dev nlohmann-json3-dev libspdlog-dev libfmt-dev catch2 libbenchmark-dev
    libpqxx-dev libhiredis-dev libssl-dev librabbitmq-dev libcli11-dev
    prometheus-cpp-dev prometheus
    postgresql postgresql-contrib redis-server redis-tools rabbitmq-server
    uuid-runtime procps python3 openssl
    clang libclang-rt-14-dev
)

boong_deps() {
    if [[ ${BOONG_SKIP_DEPS:-0} == 1 ]]; then
        echo "deps.sh: skipped (BOONG_SKIP_DEPS=1)"
        return 0
    fi
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "deps.sh: dpkg-query not found: this script supports Debian 12 only" >&2
        return 1
    fi

    # One dpkg-query for all packages; unknown packages are simply absent from
    # its output (it then exits 1, which is expected).
    local -A installed=()
    local name state
    # shellcheck disable=SC2016  # ${Package} and ${Status} are dpkg-query fields
    while read -r name _ _ state; do
        if [[ $state == installed ]]; then installed[$name]=1; fi
    done < <(dpkg-query -W -f='${Package} ${Status}\n' "${BOONG_DEPS_PACKAGES[@]}" 2>/dev/null || true)

    local -a missing=()
    local pkg
    for pkg in "${BOONG_DEPS_PACKAGES[@]}"; do
        [[ -n ${installed[$pkg]:-} ]] || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        echo "deps.sh: all ${#BOONG_DEPS_PACKAGES[@]} packages already installed"
        return 0
    fi

    local -a sudo=()
    if ((EUID != 0)); then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "deps.sh: missing ${missing[*]}, and neither root nor sudo is available to install them" >&2
            return 1
        fi
    fi

    local log start=$SECONDS attempt ok=0
    log=$(mktemp "${TMPDIR:-/tmp}/boong-deps.XXXXXX.log") || return 1
    local -a apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
    for attempt in 1 2 3; do # a mirror can fail now and then
        if "${apt[@]}" update >>"$log" 2>&1 &&
            "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
            ok=1
            break
        fi
        ((attempt == 3)) || sleep $((attempt * 5))
    done
    if ((!ok)); then
        echo "deps.sh: FAILED to install ${missing[*]}; last lines of $log:" >&2
        tail -n 30 "$log" >&2
        return 1
    fi
    rm -f "$log"
    echo "deps.sh: installed ${#missing[@]} missing package(s) in $((SECONDS - start)) s: ${missing[*]}"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    boong_deps
else
    boong_deps
fi
