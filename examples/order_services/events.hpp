// The domain events of the order services (order_service, payment_service,
// inventory_service), shared by the three and by their integration test, and
// the few business constants the flows depend on.
//
// Streams (one shared events table):
//   order-<id>      OrderCreated, then what the order service learned
//                   (OrderPaid / OrderPaymentDeclined, OrderItemsReserved /
//                   OrderItemsUnavailable) and its decision (OrderConfirmed /
//                   OrderCancelled, exactly once)
//   payment-<id>    PaymentProcessed | PaymentFailed, then PaymentRefunded;
//                   or PaymentCancelled (items were unavailable before the
//                   payment service saw the order: nothing is ever charged)
//   inventory-<id>  ItemsReserved | ItemsNotAvailable, then ItemsReleased;
//                   or ReservationCancelled (payment failed before the
//                   inventory saw the order: nothing is ever reserved)
#pragma once

#include <boong/domain_event.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shop {

// The payment limit: an order whose amount is above it is declined.
inline constexpr std::int64_t kPaymentLimitCents = 100000;  // 1,000.00

// The stock each SKU starts with (seeded at the inventory service's first
// start; later starts keep what is there).
inline const std::vector<std::pair<std::string, std::int64_t>>& seed_stock() {
    static const std::vector<std::pair<std::string, std::int64_t>> s{
        {"widget", 1000000}, {"gadget", 1000000}, {"rare", 3}};
    return s;
}

struct Item {
    std::string sku;
    std::int64_t quantity = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Item, sku, quantity)

// ---- the order service

struct OrderCreated {
    static constexpr std::string_view event_name = "OrderCreated";
    static constexpr int event_version = 1;
    std::string order_id;
    std::string customer;
    std::vector<Item> items;
    std::int64_t amount_cents = 0;
    std::string payment_method;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OrderCreated, order_id, customer, items, amount_cents, payment_method)

// What the order service learned from the others, recorded in the order's
// stream (so that its decision is a fold of that one stream).
struct OrderPaid {
    static constexpr std::string_view event_name = "OrderPaid";
    static constexpr int event_version = 1;
    std::string order_id;
    std::string payment_id;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OrderPaid, order_id, payment_id)

struct OrderPaymentDeclined {
    static constexpr std::string_view event_name = "OrderPaymentDeclined";
    static constexpr int event_version = 1;
    std::string order_id;
    std::string reason;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OrderPaymentDeclined, order_id, reason)

struct OrderItemsReserved {
    static constexpr std::string_view event_name = "OrderItemsReserved";
    static constexpr int event_version = 1;
    std::string order_id;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OrderItemsReserved, order_id)

struct OrderItemsUnavailable {
    static constexpr std::string_view event_name = "OrderItemsUnavailable";
    static constexpr int event_version = 1;
    std::string order_id;
    std::string reason;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OrderItemsUnavailable, order_id, reason)

struct OrderConfirmed {
    static constexpr std::string_view event_name = "OrderConfirmed";
    static constexpr int event_version = 1;
    std::string order_id;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OrderConfirmed, order_id)

struct OrderCancelled {
    static constexpr std::string_view event_name = "OrderCancelled";
    static constexpr int event_version = 1;
    std::string order_id;
    std::string reason;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OrderCancelled, order_id, reason)

// ---- the payment service

struct PaymentProcessed {
    static constexpr std::string_view event_name = "PaymentProcessed";
    static constexpr int event_version = 1;
    std::string order_id;
    std::string payment_id;
    std::int64_t amount_cents = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PaymentProcessed, order_id, payment_id, amount_cents)

struct PaymentFailed {
    static constexpr std::string_view event_name = "PaymentFailed";
    static constexpr int event_version = 1;
    std::string order_id;
    std::string reason;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PaymentFailed, order_id, reason)

struct PaymentRefunded {
    static constexpr std::string_view event_name = "PaymentRefunded";
    static constexpr int event_version = 1;
    std::string order_id;
    std::string payment_id;
    std::int64_t amount_cents = 0;
    std::string reason;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PaymentRefunded, order_id, payment_id, amount_cents, reason)

struct PaymentCancelled {
    static constexpr std::string_view event_name = "PaymentCancelled";
    static constexpr int event_version = 1;
    std::string order_id;
    std::string reason;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PaymentCancelled, order_id, reason)

// ---- the inventory service

struct ItemsReserved {
    static constexpr std::string_view event_name = "ItemsReserved";
    static constexpr int event_version = 1;
    std::string order_id;
    std::vector<Item> items;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ItemsReserved, order_id, items)

struct ItemsNotAvailable {
    static constexpr std::string_view event_name = "ItemsNotAvailable";
    static constexpr int event_version = 1;
    std::string order_id;
    std::string sku;
    std::int64_t requested = 0;
    std::int64_t available = 0;
    std::string reason;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ItemsNotAvailable, order_id, sku, requested, available, reason)

struct ItemsReleased {
    static constexpr std::string_view event_name = "ItemsReleased";
    static constexpr int event_version = 1;
    std::string order_id;
    std::vector<Item> items;
    std::string reason;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ItemsReleased, order_id, items, reason)

struct ReservationCancelled {
    static constexpr std::string_view event_name = "ReservationCancelled";
    static constexpr int event_version = 1;
    std::string order_id;
    std::string reason;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ReservationCancelled, order_id, reason)

// Every event of the three services: each service decodes what it handles
// and what it folds.
inline boong::EventRegistry make_registry() {
    boong::EventRegistry r;
    r.add<OrderCreated>();
    r.add<OrderPaid>();
    r.add<OrderPaymentDeclined>();
    r.add<OrderItemsReserved>();
    r.add<OrderItemsUnavailable>();
    r.add<OrderConfirmed>();
    r.add<OrderCancelled>();
    r.add<PaymentProcessed>();
    r.add<PaymentFailed>();
    r.add<PaymentRefunded>();
    r.add<PaymentCancelled>();
    r.add<ItemsReserved>();
    r.add<ItemsNotAvailable>();
    r.add<ItemsReleased>();
    r.add<ReservationCancelled>();
    return r;
}

inline std::string order_stream(const std::string& id) { return "order-" + id; }

// An order placed with an Idempotency-Key gets a name-based id
// (boong::name_based_id): the same key, the same order id, however often the
// request is retried, across restarts and crashes. Its OrderCreated event's id
// is derived from the key and the order itself, so a retry of the same
// request is a replay of the stored append, and a different request under the
// same key is told apart (and refused).
inline constexpr std::string_view kOrderKeyNamespace = "3f0c5a1e-8d2b-5c47-9e61-0b7a2d4c8e15";
inline std::string order_id_for_key(std::string_view key) { return boong::name_based_id(kOrderKeyNamespace, key); }
inline std::string order_created_id_for_key(std::string_view key, const boong::json& order) {
    return boong::name_based_id(kOrderKeyNamespace, std::string(key) + "\n" + order.dump());
}
// Which consumer groups (services) take which events: what handlers.hpp
// subscribes, for brokers that route when a message is published (RabbitMQ
// declares these queues up front). In saga mode only the order service runs,
// and takes OrderCreated.
inline std::vector<std::pair<std::string, std::vector<std::string>>> flow_groups(bool saga_mode) {
    if (saga_mode) return {{"OrderCreated", {"order"}}};
    return {{"OrderCreated", {"payment", "inventory"}},
            {"PaymentProcessed", {"order"}},
            {"PaymentFailed", {"order", "inventory"}},
            {"ItemsReserved", {"order"}},
            {"ItemsNotAvailable", {"order", "payment"}}};
}

inline std::string payment_stream(const std::string& id) { return "payment-" + id; }
inline std::string inventory_stream(const std::string& id) { return "inventory-" + id; }

}  // namespace shop
