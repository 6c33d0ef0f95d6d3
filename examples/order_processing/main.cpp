// Order processing as an orchestrated saga, on the in-memory store and broker.
//
// create order (compensation: cancel it)
//   -> in parallel: process payment (refund it) | reserve items (release them)
//   -> confirm order
//
// Three orders run: one that succeeds, one whose payment is declined (the
// reserved items are released, the order cancelled) and one whose items are
// out of stock (the payment is refunded, the order cancelled). Each step
// publishes the design's domain events to the "orders" topic; a notification
// consumer prints them. The program checks every outcome and exits non-zero
// if one is not what the design says.
#include <boong/boong.hpp>
#include <boong/memory/broker.hpp>
#include <boong/memory/store.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <set>

namespace asio = boost::asio;
using asio::awaitable;
using namespace std::chrono_literals;

namespace shop {

struct Item {
    std::string sku;
    int quantity = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Item, sku, quantity)

// The saga's data: what the order is, and what the steps learned on the way.
struct OrderData {
    std::string order_id;
    std::string customer;
    std::vector<Item> items;
    std::int64_t amount_cents = 0;
    std::string payment_id;      // set by process_payment, needed by refund_payment
    std::string reservation_id;  // set by reserve_items, needed by release_items
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OrderData, order_id, customer, items, amount_cents, payment_id, reservation_id)

// Waits like a remote call would; a cancelled saga interrupts it.
awaitable<void> network_latency(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable);
}

// Three toy services. Each effect is keyed by the step's idempotency key, so a
// retried or resumed step never applies it twice.
struct Services {
    std::map<std::string, std::string> orders;              // order id -> status
    std::map<std::string, std::int64_t> credit_cents;       // customer -> available credit
    std::map<std::string, int> stock;                       // sku -> units
    std::map<std::string, std::int64_t> charges;            // idempotency key -> amount charged
    std::map<std::string, std::vector<Item>> reservations;  // idempotency key -> items held
};

class OrderSaga {
public:
    static constexpr std::string_view name = "order_processing";

    OrderSaga(Services& services, boong::MemoryBroker& broker) : svc_(services), broker_(broker) {}

    awaitable<void> create_order(boong::StepContext<OrderData>& ctx) {
        svc_.orders[ctx.data().order_id] = "pending";
        const boong::json created = {{"order_id", ctx.data().order_id},
                                     {"customer", ctx.data().customer},
                                     {"amount_cents", ctx.data().amount_cents}};
        co_await publish(ctx, "OrderCreated", created);
    }
    awaitable<void> cancel_order(boong::StepContext<OrderData>& ctx) {
        svc_.orders[ctx.data().order_id] = "cancelled";
        const boong::json cancelled = {{"order_id", ctx.data().order_id}};
        co_await publish(ctx, "OrderCancelled", cancelled);
    }

    awaitable<void> process_payment(boong::StepContext<OrderData>& ctx) {
        co_await network_latency(20ms);
        auto& d = ctx.data();
        if (!svc_.charges.contains(ctx.idempotency_key())) {
            auto& credit = svc_.credit_cents[d.customer];
            if (credit < d.amount_cents) {
                const boong::json failed = {{"order_id", d.order_id}, {"reason", "insufficient funds"}};
                co_await publish(ctx, "PaymentFailed", failed);
                throw boong::Rejection("insufficient funds: " + d.customer + " has " + std::to_string(credit) +
                                       " cents, the order costs " + std::to_string(d.amount_cents));
            }
            credit -= d.amount_cents;
            svc_.charges[ctx.idempotency_key()] = d.amount_cents;
        }
        d.payment_id = "pay-" + d.order_id;
        const boong::json processed = {{"order_id", d.order_id}, {"payment_id", d.payment_id}};
        co_await publish(ctx, "PaymentProcessed", processed);
    }
    awaitable<void> refund_payment(boong::StepContext<OrderData>& ctx) {
        // The charge is looked up by the action's key: compensations run once
        // per charge, however often they are retried.
        const std::string charge_key = ctx.saga_id() + ":process_payment";
        if (auto it = svc_.charges.find(charge_key); it != svc_.charges.end()) {
            svc_.credit_cents[ctx.data().customer] += it->second;
            svc_.charges.erase(it);
            const boong::json refunded = {{"order_id", ctx.data().order_id}};
            co_await publish(ctx, "PaymentRefunded", refunded);
        }
    }

    awaitable<void> reserve_items(boong::StepContext<OrderData>& ctx) {
        auto& d = ctx.data();
        int units = 0;
        for (const auto& item : d.items) units += item.quantity;
        co_await network_latency(units * 10ms);  // the warehouse checks unit by unit
        if (!svc_.reservations.contains(ctx.idempotency_key())) {
            for (const auto& item : d.items) {
                if (svc_.stock[item.sku] < item.quantity) {
                    const boong::json unavailable = {{"order_id", d.order_id}, {"sku", item.sku}};
                    co_await publish(ctx, "ItemsNotAvailable", unavailable);
                    throw boong::Rejection("out of stock: " + item.sku + " (" + std::to_string(svc_.stock[item.sku]) +
                                           " left, " + std::to_string(item.quantity) + " wanted)");
                }
            }
            for (const auto& item : d.items) svc_.stock[item.sku] -= item.quantity;
            svc_.reservations[ctx.idempotency_key()] = d.items;
        }
        d.reservation_id = "res-" + d.order_id;
        const boong::json reserved = {{"order_id", d.order_id}, {"reservation_id", d.reservation_id}};
        co_await publish(ctx, "ItemsReserved", reserved);
    }
    awaitable<void> release_items(boong::StepContext<OrderData>& ctx) {
        const std::string reservation_key = ctx.saga_id() + ":reserve_items";
        if (auto it = svc_.reservations.find(reservation_key); it != svc_.reservations.end()) {
            for (const auto& item : it->second) svc_.stock[item.sku] += item.quantity;
            svc_.reservations.erase(it);
            const boong::json released = {{"order_id", ctx.data().order_id}};
            co_await publish(ctx, "ItemsReleased", released);
        }
    }

    awaitable<void> confirm_order(boong::StepContext<OrderData>& ctx) {
        svc_.orders[ctx.data().order_id] = "confirmed";
        const boong::json confirmed = {{"order_id", ctx.data().order_id}};
        co_await publish(ctx, "OrderConfirmed", confirmed);
    }

private:
    // (payloads are built before the co_await: g++ 12 rejects braced initializers inside one)
    awaitable<void> publish(boong::StepContext<OrderData>& ctx, const char* type, boong::json payload) {
        boong::EventData e;
        e.event_id = ids_.next();
        e.type = type;
        e.payload = std::move(payload);
        e.metadata.correlation_id = ctx.correlation_id();
        e.metadata.causation_id = ctx.idempotency_key();
        e.metadata.timestamp = boong::Clock::now();
        co_await broker_.async_publish("orders", std::move(e), asio::use_awaitable);
    }

    Services& svc_;
    boong::MemoryBroker& broker_;
    boong::IdGenerator ids_;
};

using OrderProcessing =
    boong::Saga<boong::Step<"create_order", &OrderSaga::create_order, &OrderSaga::cancel_order>,
                boong::Parallel<boong::Step<"process_payment", &OrderSaga::process_payment, &OrderSaga::refund_payment>,
                                boong::Step<"reserve_items", &OrderSaga::reserve_items, &OrderSaga::release_items>>,
                boong::Step<"confirm_order", &OrderSaga::confirm_order>>;

}  // namespace shop

namespace {

struct Scenario {
    std::string title;
    shop::OrderData order;
    boong::SagaStatus expected;
    std::string expected_order_status;
    std::set<std::string> expected_events;  // domain events this order must publish
};

void print_history(const std::vector<boong::RecordedEvent>& events) {
    for (const auto& e : events) {
        std::string detail;
        const auto& p = e.event.payload;
        if (p.contains("step")) detail += " step=" + p["step"].get<std::string>();
        if (p.contains("attempt")) detail += " attempt=" + std::to_string(p["attempt"].get<int>());
        if (p.contains("kind") && p["kind"] != "none") detail += " kind=" + p["kind"].get<std::string>();
        if (p.contains("error") && !p["error"].get<std::string>().empty())
            detail += " error=\"" + p["error"].get<std::string>() + "\"";
        std::printf("    %2lld  %-20s%s\n", static_cast<long long>(e.version), e.event.type.c_str(), detail.c_str());
    }
}

}  // namespace

int main(int argc, char** argv) {
    spdlog::set_pattern("%H:%M:%S.%e %^%-5l%$ %v");
    // A config file may be given; its saga policy is used (see docs/configuration.md).
    boong::SagaOptions options;
    options.defaults.retry.initial_delay = 100ms;  // the demo should not sit out the design's 1 s default
    // A payment or reservation cut short by its sibling's failure may still
    // have happened at the service: undo it too (refund and release are no-ops
    // when there is nothing to undo).
    for (auto step : {"process_payment", "reserve_items"}) {
        options.steps[step] = options.defaults;
        options.steps[step].compensate_uncertain = true;
    }
    if (argc > 1) {
        try {
            options = boong::load_config(argv[1]).saga;
        } catch (const boong::Error& e) {
            std::fprintf(stderr, "%s\n", e.what());
            return 2;
        }
    }

    asio::io_context ioc;
    boong::MemoryEventStore store(ioc.get_executor());
    boong::MemoryBroker broker(ioc.get_executor());
    shop::Services services;
    services.credit_cents = {{"alice", 100'00}, {"bob", 5'00}, {"carol", 100'00}};
    services.stock = {{"book", 10}, {"lamp", 1}};
    shop::OrderSaga definition(services, broker);
    boong::SagaRunner<shop::OrderProcessing, boong::MemoryEventStore> runner(definition, store, options);

    const std::vector<Scenario> scenarios{
        {"happy path",
         {"order-1", "alice", {{"book", 2}}, 30'00, {}, {}},
         boong::SagaStatus::completed,
         "confirmed",
         {"OrderCreated", "PaymentProcessed", "ItemsReserved", "OrderConfirmed"}},
        {"payment declined",
         {"order-2", "bob", {{"book", 1}}, 15'00, {}, {}},
         boong::SagaStatus::compensated,
         "cancelled",
         {"OrderCreated", "PaymentFailed", "ItemsReserved", "ItemsReleased", "OrderCancelled"}},
        {"items out of stock",
         {"order-3", "carol", {{"lamp", 3}}, 45'00, {}, {}},
         boong::SagaStatus::compensated,
         "cancelled",
         {"OrderCreated", "PaymentProcessed", "ItemsNotAvailable", "PaymentRefunded", "OrderCancelled"}},
    };

    // A notification service: its own consumer group on the "orders" topic.
    std::map<std::string, std::vector<std::string>> notified;  // order id -> event types
    asio::cancellation_signal stop_consumer;
    bool consumer_stopped = false;
    boong::ConsumerOptions consumer{"orders", "notifications", "notifier-1"};
    asio::co_spawn(ioc,
                   broker.async_consume(
                       consumer,
                       [&](const boong::Delivery& d) -> awaitable<void> {
                           notified[d.event.payload.at("order_id").get<std::string>()].push_back(d.event.type);
                           co_return;
                       },
                       asio::use_awaitable),
                   asio::bind_cancellation_slot(stop_consumer.slot(), [&](std::exception_ptr e) {
                       consumer_stopped = true;
                       if (e) std::rethrow_exception(e);
                   }));

    int failures = 0;
    auto check = [&](bool ok, const std::string& what) {
        if (!ok) {
            ++failures;
            std::printf("  !! %s\n", what.c_str());
        }
    };

    asio::co_spawn(
        ioc,
        [&]() -> awaitable<void> {
            for (const auto& s : scenarios) {
                std::printf("\n== %s: %s buys", s.title.c_str(), s.order.customer.c_str());
                for (const auto& i : s.order.items) std::printf(" %dx %s", i.quantity, i.sku.c_str());
                std::printf(" for %.2f\n", static_cast<double>(s.order.amount_cents) / 100.0);

                boong::RunOptions run_options;  // (not braced inside co_await: g++ 12 miscompiles that)
                run_options.saga_id = s.order.order_id;
                auto out = co_await runner.run(s.order, run_options);
                std::printf("  outcome: %s", std::string(boong::to_string(out.status)).c_str());
                if (out.status != boong::SagaStatus::completed) {
                    std::printf(" (step %s failed: %s; compensated:", out.failed_step.c_str(), out.error.c_str());
                    for (const auto& c : out.compensated_steps) std::printf(" %s", c.c_str());
                    std::printf(")");
                }
                std::printf("\n  order status: %s\n", services.orders[s.order.order_id].c_str());
                std::printf("  saga history (stream %s):\n", boong::saga_stream(out.saga_id).c_str());
                print_history(
                    co_await store.async_read_stream(boong::saga_stream(out.saga_id), 1, 1000, asio::use_awaitable));
                check(out.status == s.expected, "unexpected outcome for " + s.title);
                check(services.orders[s.order.order_id] == s.expected_order_status, "unexpected order status");
            }
            // Let the notifier catch up, then stop it gracefully.
            for (int i = 0; i < 200 && broker.pending_count("orders", "notifications") > 0; ++i) {
                co_await shop::network_latency(5ms);
            }
            co_await shop::network_latency(20ms);
            stop_consumer.emit(asio::cancellation_type::terminal);
        },
        [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
        });

    try {
        ioc.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "demo failed: %s\n", e.what());
        return 1;
    }

    std::printf("\n== notifications received (consumer group \"notifications\" on topic \"orders\")\n");
    for (const auto& s : scenarios) {
        const auto& got = notified[s.order.order_id];
        std::printf("  %s:", s.order.order_id.c_str());
        for (const auto& t : got) std::printf(" %s", t.c_str());
        std::printf("\n");
        check(std::set<std::string>(got.begin(), got.end()) == s.expected_events,
              "unexpected domain events for " + s.order.order_id);
    }
    std::printf("\n== money and stock are back where they must be\n");
    std::printf("  alice %.2f  bob %.2f  carol %.2f | book %d  lamp %d\n",
                static_cast<double>(services.credit_cents["alice"]) / 100.0,
                static_cast<double>(services.credit_cents["bob"]) / 100.0,
                static_cast<double>(services.credit_cents["carol"]) / 100.0, services.stock["book"],
                services.stock["lamp"]);
    check(services.credit_cents["alice"] == 70'00 && services.credit_cents["bob"] == 5'00 &&
              services.credit_cents["carol"] == 100'00,
          "credit balances are wrong");
    check(services.stock["book"] == 8 && services.stock["lamp"] == 1, "stock levels are wrong");
    check(consumer_stopped, "the notification consumer did not stop");

    std::printf("\n%s\n", failures == 0 ? "demo OK: every saga ended as the design says"
                                        : "demo FAILED: see the lines marked !!");
    return failures == 0 ? 0 : 1;
}
