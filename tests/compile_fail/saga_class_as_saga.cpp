// expect: SagaT must be a boong::Saga<...> type
// The class of step functions where the Saga<...> type is expected.
#include "common.hpp"

int main() {
    boost::asio::io_context ioc;
    boong::MemoryEventStore store(ioc.get_executor());
    OrderSteps steps;
    boong::SagaRunner<OrderSteps, boong::MemoryEventStore> runner(steps, store);
}
