// Context of doc blocks about the design's order saga: the saga class the
// README's Saga<...> names, and what a fragment has at hand.
#pragma once

#include "contexts/minimal.hpp"

#undef DOC_FRAGMENT_PARAMS

struct OrderData {
    std::string order_id;
    std::int64_t amount_cents = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OrderData, order_id, amount_cents)

class OrderSaga {
public:
    static constexpr std::string_view name = "order_processing";
    using Ctx = boong::StepContext<OrderData>;
    asio::awaitable<void> create_order(Ctx&) { co_return; }
    asio::awaitable<void> cancel_order(Ctx&) { co_return; }
    asio::awaitable<void> process_payment(Ctx&) { co_return; }
    asio::awaitable<void> refund_payment(Ctx&) { co_return; }
    asio::awaitable<void> reserve_items(Ctx&) { co_return; }
    asio::awaitable<void> release_items(Ctx&) { co_return; }
    asio::awaitable<void> confirm_order(Ctx&) { co_return; }
};

#define DOC_FRAGMENT_PARAMS \
    OrderSaga &definition, boong::MemoryEventStore &store, boong::SagaOptions options, OrderData order
