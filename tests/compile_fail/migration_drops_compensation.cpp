// expect: a step of From that has a compensation must keep one in To
#include "common.hpp"

#include <boong/saga_migration.hpp>

// "reserve" is renamed "hold", and loses its compensation on the way: sagas
// that reserved before the move could no longer release.
class OrderStepsV2 {
public:
    static constexpr std::string_view name = "orders";
    static constexpr std::int64_t version = 2;
    boost::asio::awaitable<void> hold(boong::StepContext<OrderData>&) { co_return; }
};
using OrdersV1 = boong::Saga<boong::Step<"reserve", &OrderSteps::reserve, &OrderSteps::release>>;
using OrdersV2 = boong::Saga<boong::Step<"hold", &OrderStepsV2::hold>>;
using Move = boong::SagaMigration<OrdersV1, OrdersV2, boong::Rename<"reserve", "hold">>;

int main() { return Move::rules().renamed.size() == 1 ? 0 : 1; }
