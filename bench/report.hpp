// Reporting a benchmark figure next to the baseline bench.sh measured for it.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <optional>
#include <string>

namespace boong::bench {

// A positive number from the environment, or nothing.
inline std::optional<double> env_number(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) return std::nullopt;
    char* end = nullptr;
    const double d = std::strtod(v, &end);
    if (end == v || d <= 0) return std::nullopt;
    return d;
}

// Sets <name>, and <name>_baseline and <name>_ratio (value / baseline) when
// bench.sh measured a baseline and passed it in `baseline_env`.
inline void report(benchmark::State& state, const std::string& name, double value, const char* baseline_env) {
    state.counters[name] = value;
    if (auto b = env_number(baseline_env)) {
        state.counters[name + "_baseline"] = *b;
        state.counters[name + "_ratio"] = value / *b;
    }
}

}  // namespace boong::bench
