// The order services' handlers, written against the library's concepts only:
// any TransactionalStore (PostgreSQL in the services, the memory store in
// tests/unit/order_handlers_test.cpp) and the services' own tables behind two
// small seams (StockTable, PaymentsTable), so the flows are tested with no
// server and run unchanged on PostgreSQL.
#pragma once

#include "events.hpp"
#include "order_state.hpp"

#include <boong/event_bus.hpp>
#include <boong/transactional_store.hpp>

#include <boost/asio/awaitable.hpp>

#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace shop {

// What is available per SKU, written in the reaction's transaction (so it
// commits or rolls back with the events that justify it).
//  - available(tx, sku): nullopt for an unknown SKU
//  - take(tx, sku, n): false (nothing taken) when fewer than n are left
//  - put_back(tx, sku, n)
template <class T, class Tx>
concept StockTable = requires(T& t, Tx& tx, const std::string& sku, std::int64_t n) {
    { t.available(tx, sku) } -> std::same_as<std::optional<std::int64_t>>;
    { t.take(tx, sku, n) } -> std::same_as<bool>;
    t.put_back(tx, sku, n);
};

// One row per charged order.
//  - charge(tx, order_id, customer, amount_cents)
//  - refund(tx, order_id): false when the order is not charged (or refunded)
template <class T, class Tx>
concept PaymentsTable = requires(T& t, Tx& tx, const std::string& s, std::int64_t n) {
    t.charge(tx, s, s, n);
    { t.refund(tx, s) } -> std::same_as<bool>;
};

// A stream as read inside a reaction's transaction (decide may only read).
struct StreamView {
    std::int64_t version = 0;  // 0: no stream
    std::vector<boong::EventData> events;

    bool has(std::string_view type) const { return find(type) != nullptr; }
    const boong::EventData* find(std::string_view type) const {
        for (const auto& e : events)
            if (e.type == type) return &e;
        return nullptr;
    }
    boong::ExpectedVersion expected() const {
        return version == 0 ? boong::ExpectedVersion::no_stream() : boong::ExpectedVersion::exactly(version);
    }
};

// A stream as HandlerContext::react_on gives it to decide.
inline StreamView view_of(const std::vector<boong::RecordedEvent>& stream) {
    StreamView v;
    for (const auto& e : stream) {
        v.version = e.version;
        v.events.push_back(e.event);
    }
    return v;
}

inline std::string money(std::int64_t cents) {
    const std::string frac = std::to_string(cents % 100);
    return std::to_string(cents / 100) + "." + (frac.size() == 1 ? "0" + frac : frac);
}

// One line per SKU (an order may name a SKU twice), sorted by SKU.
inline std::vector<Item> merged(const std::vector<Item>& items) {
    std::map<std::string, std::int64_t> by_sku;
    for (const auto& i : items) by_sku[i.sku] += i.quantity;
    std::vector<Item> out;
    for (const auto& [sku, q] : by_sku) out.push_back(Item{sku, q});
    return out;
}

// The payment service: charges orders (OrderCreated -> PaymentProcessed, or
// PaymentFailed over the limit) and refunds them when their items turn out to
// be unavailable (ItemsNotAvailable -> PaymentRefunded, only if it charged).
template <class Bus, class Payments>
    requires PaymentsTable<Payments, typename Bus::store_type::transaction_type>
class PaymentHandlers {
public:
    using Context = typename Bus::context_type;
    using Tx = typename Bus::store_type::transaction_type;
    using Reaction = boong::Reaction<Tx>;

    explicit PaymentHandlers(Payments& payments) : payments_(payments) {}

    void subscribe(Bus& bus) {
        bus.template on<OrderCreated>([this](const OrderCreated& o, Context& ctx) { return on_order_created(o, ctx); });
        bus.template on<ItemsNotAvailable>(
            [this](const ItemsNotAvailable& e, Context& ctx) { return on_items_not_available(e, ctx); });
    }

private:
    boost::asio::awaitable<void> on_order_created(const OrderCreated& o, Context& ctx) {
        const auto stream = payment_stream(o.order_id);
        auto decide = [this, &o, &stream](Tx&, Reaction& r, const std::vector<boong::RecordedEvent>& read) {
            const auto payment = view_of(read);
            // Already decided, or cancelled before we saw the order: nothing to do.
            if (payment.version > 0) return;
            if (o.amount_cents > kPaymentLimitCents) {
                r.emit(stream,
                       PaymentFailed{o.order_id, "amount " + money(o.amount_cents) + " is over the limit of " +
                                                     money(kPaymentLimitCents)},
                       payment.expected());
                return;
            }
            r.emit(stream, PaymentProcessed{o.order_id, "pay-" + o.order_id, o.amount_cents}, payment.expected());
            r.then([this, &o](Tx& t) { payments_.charge(t, o.order_id, o.customer, o.amount_cents); });
        };
        co_await ctx.react_on(stream, std::move(decide));
    }

    boost::asio::awaitable<void> on_items_not_available(const ItemsNotAvailable& e, Context& ctx) {
        const auto stream = payment_stream(e.order_id);
        auto decide = [this, &e, &stream](Tx&, Reaction& r, const std::vector<boong::RecordedEvent>& read) {
            const auto payment = view_of(read);
            const std::string reason = "items not available: " + e.reason;
            if (payment.version == 0) {
                // The order has not reached us yet: make sure it is never charged.
                r.emit(stream, PaymentCancelled{e.order_id, reason}, payment.expected());
                return;
            }
            const auto* charged = payment.find(PaymentProcessed::event_name);
            if (!charged || payment.has(PaymentRefunded::event_name)) return;  // nothing (more) to refund
            const auto paid = charged->payload.template get<PaymentProcessed>();
            r.emit(stream, PaymentRefunded{e.order_id, paid.payment_id, paid.amount_cents, reason},
                   payment.expected());
            r.then([this, order_id = e.order_id](Tx& t) {
                if (!payments_.refund(t, order_id))
                    throw std::runtime_error("payment of order " + order_id + " is not charged");
            });
        };
        co_await ctx.react_on(stream, std::move(decide));
    }

    Payments& payments_;
};

// The inventory service: reserves the items of new orders (OrderCreated ->
// ItemsReserved, or ItemsNotAvailable when a SKU's stock is short) and
// releases them when the payment failed (PaymentFailed -> ItemsReleased, only
// if it reserved them).
template <class Bus, class Stock>
    requires StockTable<Stock, typename Bus::store_type::transaction_type>
class InventoryHandlers {
public:
    using Context = typename Bus::context_type;
    using Tx = typename Bus::store_type::transaction_type;
    using Reaction = boong::Reaction<Tx>;

    explicit InventoryHandlers(Stock& stock) : stock_(stock) {}

    void subscribe(Bus& bus) {
        bus.template on<OrderCreated>([this](const OrderCreated& o, Context& ctx) { return on_order_created(o, ctx); });
        bus.template on<PaymentFailed>([this](const PaymentFailed& e, Context& ctx) { return on_payment_failed(e, ctx); });
    }

private:
    boost::asio::awaitable<void> on_order_created(const OrderCreated& o, Context& ctx) {
        const auto stream = inventory_stream(o.order_id);
        auto decide = [this, &o, &stream](Tx& tx, Reaction& r, const std::vector<boong::RecordedEvent>& read) {
            const auto inventory = view_of(read);
            if (inventory.version > 0) return;  // decided already, or the payment failed first
            auto items = merged(o.items);
            for (const auto& i : items) {
                const auto available = stock_.available(tx, i.sku);
                if (!available || *available < i.quantity) {
                    const std::int64_t have = available.value_or(0);
                    const std::string reason = !available ? "unknown sku '" + i.sku + "'"
                                                          : "sku '" + i.sku + "': " + std::to_string(i.quantity) +
                                                                " requested, " + std::to_string(have) + " in stock";
                    r.emit(stream, ItemsNotAvailable{o.order_id, i.sku, i.quantity, have, reason},
                           inventory.expected());
                    return;
                }
            }
            r.emit(stream, ItemsReserved{o.order_id, items}, inventory.expected());
            // The stock may have moved since we read it: take it only if it
            // is still there, or roll everything back (the message comes again).
            // Each SKU's row is named, so that transactions lock them in one
            // order (see Reaction::then), also when they carry many orders.
            for (const auto& i : items) {
                r.then(stock_lock(i.sku), [this, i](Tx& t) {
                    if (!stock_.take(t, i.sku, i.quantity))
                        throw std::runtime_error("stock of '" + i.sku + "' changed while reserving; again");
                });
            }
        };
        co_await ctx.react_on(stream, std::move(decide));
    }

    boost::asio::awaitable<void> on_payment_failed(const PaymentFailed& e, Context& ctx) {
        const auto stream = inventory_stream(e.order_id);
        auto decide = [this, &e, &stream](Tx&, Reaction& r, const std::vector<boong::RecordedEvent>& read) {
            const auto inventory = view_of(read);
            const std::string reason = "payment failed: " + e.reason;
            if (inventory.version == 0) {
                // The order has not reached us yet: make sure nothing is ever reserved for it.
                r.emit(stream, ReservationCancelled{e.order_id, reason}, inventory.expected());
                return;
            }
            const auto* reserved = inventory.find(ItemsReserved::event_name);
            if (!reserved || inventory.has(ItemsReleased::event_name)) return;  // nothing (more) to release
            auto items = reserved->payload.template get<ItemsReserved>().items;
            r.emit(stream, ItemsReleased{e.order_id, items, reason}, inventory.expected());
            for (const auto& i : items) {
                r.then(stock_lock(i.sku), [this, i](Tx& t) { stock_.put_back(t, i.sku, i.quantity); });
            }
        };
        co_await ctx.react_on(stream, std::move(decide));
    }

    static std::string stock_lock(const std::string& sku) { return "stock/" + sku; }

    Stock& stock_;
};

// The order service in events mode: records in the order's stream what the
// payment and the inventory decided and, folding that stream, emits
// OrderConfirmed or OrderCancelled exactly once (the appends expect the
// version it read, so two outcomes handled at once cannot both decide).
// `on_unknown(event_name, order_id)` hears of outcomes for orders never placed.
template <class Bus>
class OrderHandlers {
public:
    using Context = typename Bus::context_type;
    using Tx = typename Bus::store_type::transaction_type;
    using Reaction = boong::Reaction<Tx>;
    using UnknownOrder = std::function<void(std::string_view event_name, const std::string& order_id)>;

    explicit OrderHandlers(UnknownOrder on_unknown = {}) : on_unknown_(std::move(on_unknown)) {}

    void subscribe(Bus& bus) {
        bus.template on<PaymentProcessed>([this](const PaymentProcessed& e, Context& ctx) {
            return learn(ctx, e.order_id, OrderPaid{e.order_id, e.payment_id});
        });
        bus.template on<PaymentFailed>([this](const PaymentFailed& e, Context& ctx) {
            return learn(ctx, e.order_id, OrderPaymentDeclined{e.order_id, e.reason});
        });
        bus.template on<ItemsReserved>([this](const ItemsReserved& e, Context& ctx) {
            return learn(ctx, e.order_id, OrderItemsReserved{e.order_id});
        });
        bus.template on<ItemsNotAvailable>([this](const ItemsNotAvailable& e, Context& ctx) {
            return learn(ctx, e.order_id, OrderItemsUnavailable{e.order_id, e.reason});
        });
    }

private:
    template <class Learned>
    boost::asio::awaitable<void> learn(Context& ctx, std::string order_id, Learned learned) {
        const auto stream = order_stream(order_id);
        auto decide = [this, &order_id, &learned, &stream](Tx&, Reaction& r,
                                                           const std::vector<boong::RecordedEvent>& read) {
            const auto order = view_of(read);
            if (order.version == 0) {
                if (on_unknown_) on_unknown_(Learned::event_name, order_id);
                return;
            }
            if (order.has(Learned::event_name)) return;  // learned already
            auto state = fold_order(order.events);
            const bool decided = state.decided();
            r.emit(stream, learned, order.expected());  // fails if the stream moved since we read it
            auto as_event = boong::EventRegistry::encode(learned);
            state.apply(as_event);
            if (decided) return;
            if (state.should_cancel()) {
                r.emit(stream, OrderCancelled{order_id, state.cancel_reason()});
            } else if (state.should_confirm()) {
                r.emit(stream, OrderConfirmed{order_id});
            }
        };
        co_await ctx.react_on(stream, std::move(decide));
    }

    UnknownOrder on_unknown_;
};

}  // namespace shop
