// What the PostgreSQL benchmarks share: the server bench.sh started, the
// percentiles they report, and a main() that can also prepare baseline tables.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

namespace boong::bench {

// The private server's DSN (scripts/bench.sh exports it); empty when unset.
inline std::string pg_dsn() {
    const char* d = std::getenv("BOONG_BENCH_PG_DSN");
    return d ? d : "";
}

// False (and the benchmark skipped with the reason) without a server.
inline bool pg_usable(benchmark::State& state) {
    if (pg_dsn().empty()) {
        state.SkipWithError("BOONG_BENCH_PG_DSN is not set (scripts/bench.sh sets it)");
        return false;
    }
    return true;
}

// The p-quantile of `v` (reorders it); 0 for none.
inline double percentile(std::vector<double>& v, double p) {
    if (v.empty()) return 0;
    const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

// main() of a PostgreSQL benchmark: `--boong-prepare` runs `prepare` (the
// tables bench.sh's pgbench baseline uses) instead of the benchmarks.
template <class Prepare>
int pg_main(const char* program, int argc, char** argv, Prepare prepare) {
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--boong-prepare") != 0) continue;
        if (pg_dsn().empty()) {
            std::cerr << program << ": BOONG_BENCH_PG_DSN is not set\n";
            return 2;
        }
        try {
            return prepare();
        } catch (const std::exception& e) {
            std::cerr << program << ": prepare failed: " << e.what() << "\n";
            return 1;
        }
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

}  // namespace boong::bench
