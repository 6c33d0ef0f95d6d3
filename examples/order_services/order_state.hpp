// The order as its stream tells it: a fold of order-<id>.
#pragma once

#include "events.hpp"

#include <string>
#include <vector>

namespace shop {

struct OrderState {
    bool exists = false;
    std::string status = "pending";  // pending | confirmed | cancelled
    std::string reason;              // cancelled: why
    bool paid = false, declined = false, reserved = false, unavailable = false;
    std::string declined_reason, unavailable_reason;

    void apply(const boong::EventData& e) {
        const auto reason_of = [&e] { return e.payload.value("reason", std::string()); };
        if (e.type == OrderCreated::event_name) exists = true;
        else if (e.type == OrderPaid::event_name) paid = true;
        else if (e.type == OrderPaymentDeclined::event_name) declined = true, declined_reason = reason_of();
        else if (e.type == OrderItemsReserved::event_name) reserved = true;
        else if (e.type == OrderItemsUnavailable::event_name) unavailable = true, unavailable_reason = reason_of();
        else if (e.type == OrderConfirmed::event_name) status = "confirmed";
        else if (e.type == OrderCancelled::event_name) status = "cancelled", reason = reason_of();
    }

    // What follows from what is known, once: nothing while pending with
    // outcomes missing; a cancellation as soon as one outcome is negative; a
    // confirmation when both are positive.
    bool decided() const { return status != "pending"; }
    bool should_cancel() const { return !decided() && (declined || unavailable); }
    std::string cancel_reason() const {
        return declined ? "payment declined: " + declined_reason : "items not available: " + unavailable_reason;
    }
    bool should_confirm() const { return !decided() && paid && reserved; }
};

inline OrderState fold_order(const std::vector<boong::EventData>& events) {
    OrderState s;
    for (const auto& e : events) s.apply(e);
    return s;
}

}  // namespace shop
