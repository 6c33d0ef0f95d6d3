#pragma once

#include <boong/policy.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>

namespace boong::detail {

// The delay after failed attempt `attempt` (1-based) under `p`. `salt` picks
// the jitter: derived from the saga and step, so it needs no shared random
// state and a replay waits the same.
inline std::chrono::milliseconds backoff_delay(const RetryPolicy& p, int attempt, std::uint64_t salt) noexcept {
    const double base = static_cast<double>(p.initial_delay.count()) * std::pow(p.multiplier, attempt - 1);
    const double capped = std::min(base, static_cast<double>(p.max_delay.count()));
    std::uint64_t z = salt + 0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(attempt);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    const double unit = static_cast<double>(z >> 11) * 0x1.0p-53;  // [0, 1)
    const double jittered = capped * (1.0 + p.jitter * (2.0 * unit - 1.0));
    const double bounded = std::clamp(jittered, 0.0, static_cast<double>(p.max_delay.count()));
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(bounded)));
}

}  // namespace boong::detail
