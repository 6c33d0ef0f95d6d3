// Context of doc blocks about the event bus on PostgreSQL and Redis.
#pragma once

#include "contexts/minimal.hpp"

#include <boong/postgres/transaction.hpp>
#include <boong/redis/broker.hpp>

struct OrderCreated {
    static constexpr std::string_view event_name = "OrderCreated";
    static constexpr int event_version = 1;
    std::string order_id;
    std::int64_t amount_cents = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OrderCreated, order_id, amount_cents)

struct PaymentProcessed {
    static constexpr std::string_view event_name = "PaymentProcessed";
    static constexpr int event_version = 1;
    std::string order_id;
    std::int64_t amount_cents = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PaymentProcessed, order_id, amount_cents)

struct PaymentFailed {
    static constexpr std::string_view event_name = "PaymentFailed";
    static constexpr int event_version = 1;
    std::string order_id;
    std::string reason;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PaymentFailed, order_id, reason)

bool over_limit(pqxx::transaction_base& tx, const OrderCreated& order);
void record_charge(pqxx::transaction_base& tx, const OrderCreated& order);

#undef DOC_FRAGMENT_PARAMS
#define DOC_FRAGMENT_PARAMS \
    boong::PostgresEventStore &store, boong::RedisBroker &broker, const boong::EventRegistry &registry
