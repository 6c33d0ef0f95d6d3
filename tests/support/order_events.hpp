// Test support: the domain events of a small order flow, for event bus tests.
#pragma once

#include <boong/domain_event.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace boong::test {

struct OrderCreated {
    static constexpr std::string_view event_name = "OrderCreated";
    static constexpr int event_version = 1;
    std::string order_id;
    std::int64_t amount = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OrderCreated, order_id, amount)

struct PaymentProcessed {
    static constexpr std::string_view event_name = "PaymentProcessed";
    static constexpr int event_version = 1;
    std::string order_id;
    std::int64_t amount = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PaymentProcessed, order_id, amount)

struct PaymentFailed {
    static constexpr std::string_view event_name = "PaymentFailed";
    static constexpr int event_version = 1;
    std::string order_id;
    std::string reason;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PaymentFailed, order_id, reason)

}  // namespace boong::test
