// saga_in_memory: a 3-step saga of no-op steps run to completion on one thread,
// every transition recorded in the in-memory store.
#include <boong/saga_runner.hpp>
#include <boong/memory/store.hpp>

#include <boost/asio/io_context.hpp>

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <cstdlib>
#include <new>

// Counts heap allocations, to report them per saga. Only this benchmark
// binary replaces operator new.
namespace {
std::atomic<std::uint64_t> g_allocations{0};
}
void* operator new(std::size_t n) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::aligned_alloc(static_cast<std::size_t>(a), (n + static_cast<std::size_t>(a) - 1) &
                                                                      ~(static_cast<std::size_t>(a) - 1)))
        return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

using boost::asio::awaitable;

struct Noop {
    int n = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Noop, n)  // as a service would declare its saga data

class ThreeSteps {
public:
    static constexpr std::string_view name = "bench";
    awaitable<void> step(boong::StepContext<Noop>&) { co_return; }
    awaitable<void> undo(boong::StepContext<Noop>&) { co_return; }
};

using BenchSaga = boong::Saga<boong::Step<"one", &ThreeSteps::step, &ThreeSteps::undo>,
                              boong::Step<"two", &ThreeSteps::step, &ThreeSteps::undo>,
                              boong::Step<"three", &ThreeSteps::step, &ThreeSteps::undo>>;

void saga_in_memory(benchmark::State& state) {
    spdlog::set_level(spdlog::level::warn);
    const auto batch = static_cast<std::size_t>(state.range(0));  // sagas in flight at once
    boost::asio::io_context ioc(1);
    ThreeSteps def;
    // The store is replaced every ~10,000 sagas, outside the timing: an
    // in-memory store is a test tool, and its growth to millions of events
    // (page faults, rehashing) is not the engine's cost.
    const std::size_t batches_per_store = std::max<std::size_t>(1, 10000 / batch);
    std::unique_ptr<boong::MemoryEventStore> store;
    std::unique_ptr<boong::SagaRunner<BenchSaga, boong::MemoryEventStore>> runner;
    std::uint64_t sagas = 0, allocations = 0;
    std::size_t failures = 0, batches = 0;
    for (auto _ : state) {
        if (batches++ % batches_per_store == 0) {
            state.PauseTiming();
            runner.reset();
            store = std::make_unique<boong::MemoryEventStore>(ioc.get_executor());
            runner = std::make_unique<boong::SagaRunner<BenchSaga, boong::MemoryEventStore>>(def, *store);
            state.ResumeTiming();
        }
        const auto before = g_allocations.load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < batch; ++i) {
            runner->async_run(Noop{}, {}, [&](std::exception_ptr e, boong::SagaOutcome<Noop> o) {
                if (e || o.status != boong::SagaStatus::completed) ++failures;
            });
        }
        ioc.run();
        ioc.restart();
        allocations += g_allocations.load(std::memory_order_relaxed) - before;
        sagas += batch;
    }
    if (failures != 0) state.SkipWithError("some sagas did not complete");
    state.counters["sagas_per_s"] = benchmark::Counter(static_cast<double>(sagas), benchmark::Counter::kIsRate);
    state.counters["steps_per_s"] =
        benchmark::Counter(static_cast<double>(sagas * BenchSaga::step_count), benchmark::Counter::kIsRate);
    // kIsRate | kInvert yields seconds / value: counting steps in billions
    // makes it nanoseconds per step (of the timed real time).
    state.counters["ns_per_step"] = benchmark::Counter(
        static_cast<double>(sagas * BenchSaga::step_count) * 1e-9,
        benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    state.counters["allocs_per_saga"] = static_cast<double>(allocations) / static_cast<double>(sagas);
}

}  // namespace

BENCHMARK(saga_in_memory)->Name("saga_in_memory")->Arg(1)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
