// expect: every step of From must be in To (same name), renamed (Rename) or removed
#include "common.hpp"

#include <boong/saga_migration.hpp>

// Version 2 drops "charge" without saying so: the migration must name it.
class OrderStepsV2 {
public:
    static constexpr std::string_view name = "orders";
    static constexpr std::int64_t version = 2;
    boost::asio::awaitable<void> reserve(boong::StepContext<OrderData>&) { co_return; }
    boost::asio::awaitable<void> release(boong::StepContext<OrderData>&) { co_return; }
};
using OrdersV1 = boong::Saga<boong::Step<"reserve", &OrderSteps::reserve, &OrderSteps::release>,
                             boong::Step<"charge", &OrderSteps::charge>>;
using OrdersV2 = boong::Saga<boong::Step<"reserve", &OrderStepsV2::reserve, &OrderStepsV2::release>>;
using Move = boong::SagaMigration<OrdersV1, OrdersV2>;

int main() { return Move::rules().renamed.size() == 0 ? 0 : 1; }
