// expect: only versions older than the newest
#include "common.hpp"

#include <boong/memory/sagas.hpp>
#include <boong/saga_orchestrator.hpp>

// Version 2 registered as an earlier version of version 1: the newest
// definition is the orchestrator's own, never one passed to serve().
class OrderStepsV2 {
public:
    static constexpr std::string_view name = "orders";
    static constexpr std::int64_t version = 2;
    boost::asio::awaitable<void> reserve(boong::StepContext<OrderData>&) { co_return; }
};
using OrdersV1 = boong::Saga<boong::Step<"reserve", &OrderSteps::reserve, &OrderSteps::release>>;
using OrdersV2 = boong::Saga<boong::Step<"reserve", &OrderStepsV2::reserve>>;

int main() {
    boost::asio::io_context ioc;
    boong::MemoryEventStore store(ioc.get_executor());
    boong::MemorySagaIndex index(store);
    OrderSteps v1;
    OrderStepsV2 v2;
    boong::SagaOrchestrator<OrdersV1, boong::MemoryEventStore, boong::MemorySagaIndex> orch(v1, store, index);
    orch.serve<OrdersV2>(v2);
}
