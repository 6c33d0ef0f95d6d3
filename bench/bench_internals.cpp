// Do Boong's hand-written internals pay for themselves? Each against what it
// replaces, in the same run (this machine is shared: only ratios within one
// run mean anything):
//  - json_write/boong vs json_write/nlohmann: detail::write_json (the
//    stores' and brokers' writer, depth-limited) against json::dump(), on an
//    event payload and metadata.
//  - id_index/boong vs id_index/flat_map vs id_index/std_map: the memory
//    store's event-id index against boost::unordered_flat_map and
//    std::unordered_map (same hash), 100,000 UUIDs inserted then looked up.
//    Alone, the flat map wins (by 25-35 %); in the store it lost: with it,
//    saga_in_memory/1 fell from 120-122 k to 72-78 k sagas/s (interleaved
//    runs). The index's slots hold the full hash (no key read on a miss) and
//    are prefetched while an append is validated; the store's index spans
//    every event ever appended, far beyond the cache.
// Run: scripts/bench.sh --benchmark_filter='json_write|id_index'
#include "json_text.hpp"
#include "memory/id_index.hpp"

#include <boong/event.hpp>

#include <benchmark/benchmark.h>
#include <boost/unordered/unordered_flat_map.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

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

constexpr std::size_t kIds = 100'000;

const std::vector<std::string>& ids() {
    static const std::vector<std::string> all = [] {
        boong::IdGenerator gen(42);
        std::vector<std::string> v;
        for (std::size_t i = 0; i < kIds; ++i) v.push_back(gen.next());
        return v;
    }();
    return all;
}

using Hash = std::hash<std::string_view>;

void id_index_boong(benchmark::State& state) {
    const auto& v = ids();
    auto id_at = [&v](std::size_t i) -> std::string_view { return v[i]; };
    for (auto _ : state) {
        boong::detail::IdIndex<Hash> index;
        for (std::size_t i = 0; i < v.size(); ++i) index.insert(v[i], i, id_at);
        std::size_t found = 0;
        for (const auto& id : v) found += index.find(id, id_at) != index.npos;
        benchmark::DoNotOptimize(found);
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kIds));
}
BENCHMARK(id_index_boong)->Name("id_index/boong")->Unit(benchmark::kMillisecond);

template <class Map>
void id_index_map(benchmark::State& state) {
    const auto& v = ids();
    for (auto _ : state) {
        Map index;
        for (std::size_t i = 0; i < v.size(); ++i) index.emplace(v[i], i);
        std::size_t found = 0;
        for (const auto& id : v) found += index.find(id) != index.end();
        benchmark::DoNotOptimize(found);
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kIds));
}
BENCHMARK(id_index_map<boost::unordered_flat_map<std::string_view, std::size_t, Hash>>)
    ->Name("id_index/flat_map")
    ->Unit(benchmark::kMillisecond);
BENCHMARK(id_index_map<std::unordered_map<std::string_view, std::size_t, Hash>>)
    ->Name("id_index/std_map")
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
