// Do Boong's hand-written internals pay for themselves? Each against what it
// would be replaced by, in the same run (this machine is shared: only ratios
// within one run mean anything):
//  - json_write/boong vs json_write/nlohmann: detail::write_json (the
//    stores' and brokers' writer, depth-limited) against json::dump(), on an
//    event payload.
// (The memory store's hand-written id index did not pay: 25-35 % slower than
// boost::unordered_flat_map here, which replaced it.)
// Run: scripts/bench.sh --benchmark_filter=json_write
#include "json_text.hpp"

#include <boong/event.hpp>

#include <benchmark/benchmark.h>

#include <string>

namespace {

boong::json payload() {
    return {{"order_id", "0190a3f2-5c1e-7a3b-9d4e-2f6a8b0c1d2e"},
            {"customer", "ada lovelace"},
            {"amount_cents", 129900},
            {"currency", "EUR"},
            {"items", {{{"sku", "widget"}, {"quantity", 2}}, {{"sku", "gadget"}, {"quantity", 1}}}},
            {"note", "leave at the door ✓"}};
}

void json_write_boong(benchmark::State& state) {
    const auto p = payload();
    std::string out;
    for (auto _ : state) {
        out.clear();
        boong::detail::write_json(out, p);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(json_write_boong)->Name("json_write/boong");

void json_write_nlohmann(benchmark::State& state) {
    const auto p = payload();
    for (auto _ : state) {
        auto out = p.dump();
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(json_write_nlohmann)->Name("json_write/nlohmann");

}  // namespace

BENCHMARK_MAIN();
