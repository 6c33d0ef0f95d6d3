// The event bus with no server: the memory store, outbox and broker. The
// same flow runs on PostgreSQL in tests/integration/event_bus_test.cpp; here
// the reaction protocol itself: effects that roll back with their events, a
// decision taken again when its stream moved, duplicates with no effect.
#include <boong/event_bus.hpp>
#include <boong/memory/broker.hpp>
#include <boong/memory/outbox.hpp>
#include <boong/memory/store.hpp>
#include <boong/outbox_relay.hpp>

#include "support/async.hpp"
#include "support/order_events.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

using boong::test::OrderCreated;
using boong::test::PaymentProcessed;

using Bus = boong::EventBus<boong::MemoryEventStore, boong::MemoryBroker>;
using Context = Bus::context_type;
using Tx = boong::MemoryEventStore::Transaction;
using Reaction = boong::Reaction<Tx>;

struct World {
    asio::io_context ioc;
    boong::MemoryEventStore store{ioc.get_executor()};
    boong::MemoryBroker broker{ioc.get_executor()};
    boong::MemoryOutbox outbox{store};
    boong::EventRegistry registry;
    using Relay = boong::OutboxRelay<boong::MemoryEventStore, boong::MemoryOutbox, boong::MemoryBroker>;
    std::unique_ptr<Relay> relay;

    World() {
        registry.add<OrderCreated>();
        registry.add<PaymentProcessed>();
        boong::OutboxRelayOptions o;
        o.relay = "bus";
        o.topic = boong::topic_by_type;
        o.poll_interval = 2ms;
        relay = std::make_unique<Relay>(store, outbox, broker, o);
    }
    bool until(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
        return boong::test::run_until(ioc, done, limit);
    }
    void place(const std::string& id, std::int64_t amount, Bus& bus) {
        boong::test::run_until_done(ioc, [&]() -> asio::awaitable<void> {
            OrderCreated e{id, amount};
            std::string stream = "order-" + id;
            boong::EventMetadata none;
            co_await bus.publish(std::move(stream), e, boong::ExpectedVersion::no_stream(), std::move(none));
        });
    }
    // Places the orders before the bus starts, so that its consumer finds
    // them waiting (and batches them), then starts the relay and the bus.
    void place_then_start(const std::vector<std::string>& ids, Bus& bus) {
        for (std::size_t i = 0; i < ids.size(); ++i) place(ids[i], static_cast<std::int64_t>(i) + 1, bus);
        relay->start();
        REQUIRE(until([&] { return broker.read_topic("OrderCreated").size() == ids.size(); }));
        bus.start();
    }
    std::vector<std::string> types(const std::string& stream) {
        std::vector<std::string> t;
        for (const auto& e : store.read_stream(stream, 1, 100)) t.push_back(e.event.type);
        return t;
    }
};

boong::EventBusOptions options(std::string service, int conflict_attempts = 4) {
    boong::EventBusOptions o;
    o.service = std::move(service);
    o.conflict_attempts = conflict_attempts;
    o.consumers.visibility_timeout = 200ms;
    o.consumers.shutdown_grace = 500ms;
    return o;
}

}  // namespace

TEST_CASE("event bus on memory: a reaction's effect rolls back with its events, and commits once",
          "[bus][memory]") {
    World w;
    Bus payment(w.store, w.broker, w.registry, options("payment"));
    std::map<std::string, std::int64_t> charged;  // the service's own state, beside its events
    std::atomic<int> handled{0}, failures{0};
    payment.on<OrderCreated>([&](const OrderCreated& o, Context& ctx) -> asio::awaitable<void> {
        ++handled;
        auto decide = [&](Tx& tx, Reaction& r) {
            const auto stream = "payment-" + o.order_id;
            if (!ctx.store().read_stream_in(tx, stream).empty()) return;
            r.emit(stream, PaymentProcessed{o.order_id, o.amount}, boong::ExpectedVersion::no_stream());
            r.then([&, id = o.order_id, amount = o.amount](Tx& t) {
                charged[id] += amount;
                t.on_rollback([&, id] { charged.erase(id); });
                // Fails after its write, once: all of it rolls back; the message comes again.
                if (id == "flaky" && failures++ == 0) throw std::runtime_error("card network timeout");
            });
        };
        co_await ctx.react(std::move(decide));
    });
    w.relay->start();
    payment.start();
    w.place("o-1", 40, payment);
    w.place("flaky", 7, payment);
    REQUIRE(w.until([&] { return charged.size() == 2 && w.types("payment-flaky").size() == 1; }));
    CHECK(failures == 2);
    CHECK(charged == std::map<std::string, std::int64_t>{{"flaky", 7}, {"o-1", 40}});
    // The outcome carries the flow's correlation and its cause.
    const auto order = w.store.read_stream("order-o-1", 1, 1).at(0).event;
    const auto paid = w.store.read_stream("payment-o-1", 1, 1).at(0).event;
    CHECK(paid.metadata.correlation_id == order.event_id);
    CHECK(paid.metadata.causation_id == order.event_id);

    // Delivered again: the inbox has it, the handler's decision never runs.
    const int before = handled;
    boong::test::run_until_done(w.ioc, [&]() -> asio::awaitable<void> {
        auto again = w.broker.read_topic("OrderCreated").front().event;
        co_await w.broker.async_publish("OrderCreated", std::move(again), asio::use_awaitable);
    });
    REQUIRE(w.until([&] { return handled > before; }));
    w.until([] { return false; }, 100ms);
    CHECK(charged == std::map<std::string, std::int64_t>{{"flaky", 7}, {"o-1", 40}});
    CHECK(w.types("payment-o-1").size() == 1);

    boong::test::run_until_done(w.ioc, [&]() -> asio::awaitable<void> {
        co_await payment.stop();
        co_await w.relay->stop();
    });
}

TEST_CASE("event bus on memory: a decision whose stream moved is taken again, up to conflict_attempts",
          "[bus][memory]") {
    World w;
    std::atomic<int> decisions{0};
    std::vector<std::int64_t> seen_versions;
    // The stream "moves" between reading and appending on the first two
    // decisions: they append at a version that is no longer the head.
    auto handler = [&](const OrderCreated& o, Context& ctx) -> asio::awaitable<void> {
        auto decide = [&](Tx& tx, Reaction& r) {
            const int n = ++decisions;
            const auto stream = "ledger-" + o.order_id;
            const auto version = static_cast<std::int64_t>(ctx.store().read_stream_in(tx, stream).size());
            seen_versions.push_back(version);
            const auto expected = n <= 2 ? boong::ExpectedVersion::exactly(version + 7)
                                         : boong::ExpectedVersion::exactly(version);
            r.emit(stream, PaymentProcessed{o.order_id, o.amount}, expected);
        };
        co_await ctx.react(std::move(decide));
    };
    SECTION("three attempts: the third decision commits") {
        Bus bus(w.store, w.broker, w.registry, options("ledger", 3));
        bus.on<OrderCreated>(handler);
        w.relay->start();
        bus.start();
        w.place("o-1", 5, bus);
        REQUIRE(w.until([&] { return w.types("ledger-o-1").size() == 1; }));
        CHECK(decisions == 3);
        CHECK(w.broker.read_topic(boong::dead_letter_topic("OrderCreated")).empty());
        boong::test::run_until_done(w.ioc, [&]() -> asio::awaitable<void> {
            co_await bus.stop();
            co_await w.relay->stop();
        });
    }
    SECTION("one attempt: the conflict fails the delivery, and a redelivery decides afresh") {
        Bus bus(w.store, w.broker, w.registry, options("ledger", 1));
        bus.on<OrderCreated>(handler);
        w.relay->start();
        bus.start();
        w.place("o-1", 5, bus);
        REQUIRE(w.until([&] { return w.types("ledger-o-1").size() == 1; }));
        CHECK(decisions == 3);  // one per delivery: two failed deliveries, then the third commits
        boong::test::run_until_done(w.ioc, [&]() -> asio::awaitable<void> {
            co_await bus.stop();
            co_await w.relay->stop();
        });
    }
    CHECK(seen_versions == std::vector<std::int64_t>{0, 0, 0});  // nothing half-written by a failed one
}

TEST_CASE("event bus on memory: bad options are refused clearly", "[bus][memory]") {
    World w;
    CHECK_THROWS_WITH(Bus(w.store, w.broker, w.registry, options("")), Catch::Contains("service name"));
    CHECK_THROWS_WITH(Bus(w.store, w.broker, w.registry, options(std::string(256, 's'))),
                      Catch::Contains("service name"));
    CHECK_THROWS_WITH(Bus(w.store, w.broker, w.registry, options("svc", 0)), Catch::Contains("conflict_attempts"));
    auto no_batch = options("svc");
    no_batch.max_batch = 0;
    CHECK_THROWS_WITH(Bus(w.store, w.broker, w.registry, no_batch), Catch::Contains("max_batch"));
    auto no_flight = options("svc");
    no_flight.max_in_flight = 0;
    CHECK_THROWS_WITH(Bus(w.store, w.broker, w.registry, no_flight), Catch::Contains("max_in_flight"));
}

// Group commit: the reactions of deliveries handled together share
// transactions, and each ends as it would alone: a failing one runs alone,
// two that append to one stream both land, in order, none twice.
TEST_CASE("event bus on memory: reactions share transactions and each ends as it would alone", "[bus][memory]") {
    World w;
    const bool batched = GENERATE(true, false);
    auto o = options("payment");
    o.max_batch = batched ? 8 : 1;
    o.max_in_flight = 1;
    Bus bus(w.store, w.broker, w.registry, o);
    std::map<std::string, std::int64_t> charged;
    std::atomic<int> flaky_failures{0};
    bus.on<OrderCreated>([&](const OrderCreated& order, Context& ctx) -> asio::awaitable<void> {
        auto decide = [&](Tx& tx, Reaction& r) {
            // Every order is entered in one ledger stream, at the version read.
            const auto version = static_cast<std::int64_t>(ctx.store().read_stream_in(tx, "ledger").size());
            r.emit("ledger", PaymentProcessed{order.order_id, order.amount},
                   version == 0 ? boong::ExpectedVersion::no_stream() : boong::ExpectedVersion::exactly(version));
            r.then([&, id = order.order_id, amount = order.amount](Tx& t) {
                if (id == "flaky" && flaky_failures++ < 2) throw std::runtime_error("card network timeout");
                charged[id] += amount;
                t.on_rollback([&, id] { charged.erase(id); });
            });
        };
        co_await ctx.react(std::move(decide));
    });
    constexpr int orders = 40;
    std::vector<std::string> ids;
    for (int i = 0; i < orders; ++i) ids.push_back(i == 17 ? "flaky" : "o-" + std::to_string(i));
    w.place_then_start(ids, bus);
    REQUIRE(w.until([&] { return charged.size() == orders; }));
    w.until([] { return false; }, 100ms);
    CHECK(charged.size() == orders);
    for (const auto& [id, amount] : charged) CHECK(amount > 0);
    const auto ledger = w.store.read_stream("ledger", 1, 1000);
    REQUIRE(ledger.size() == orders);  // each order once: no reaction lost, none twice
    for (std::size_t i = 0; i < ledger.size(); ++i) CHECK(ledger[i].version == static_cast<std::int64_t>(i) + 1);
    CHECK(flaky_failures == 3);
    CHECK(w.broker.read_topic(boong::dead_letter_topic("OrderCreated")).empty());
    const auto stats = bus.stats();
    if (batched) {
        // Forty deliveries, handled sixteen at a time, in fewer transactions
        // than reactions; the flaky one split a shared transaction.
        CHECK(stats.reactions >= orders);
        CHECK(stats.transactions < stats.reactions);
        CHECK(stats.splits >= 1);
    } else {
        CHECK(stats.transactions == 0);
    }
    boong::test::run_until_done(w.ioc, [&]() -> asio::awaitable<void> {
        co_await bus.stop();
        co_await w.relay->stop();
    });
}

TEST_CASE("event bus on memory: react_on gives decide the stream it names, as it is when the reaction decides",
          "[bus][memory]") {
    World w;
    const bool batched = GENERATE(true, false);
    auto o = options("ledger");
    o.max_batch = batched ? 8 : 1;
    o.max_in_flight = 1;
    Bus ledger(w.store, w.broker, w.registry, o);
    o.service = "payment";
    Bus payment(w.store, w.broker, w.registry, o);
    // Every order is entered in one ledger stream, at the version decide was
    // given; the entry's amount is how many entries decide saw. Reactions of
    // one shared transaction read the ledger once and all but the first
    // decide again on what the first wrote.
    ledger.on<OrderCreated>([&](const OrderCreated& order, Context& ctx) -> asio::awaitable<void> {
        auto decide = [&](Tx&, Reaction& r, const std::vector<boong::RecordedEvent>& seen) {
            const auto n = static_cast<std::int64_t>(seen.size());
            r.emit("ledger", PaymentProcessed{order.order_id, n},
                   n == 0 ? boong::ExpectedVersion::no_stream() : boong::ExpectedVersion::exactly(n));
        };
        co_await ctx.react_on("ledger", std::move(decide));
    });
    // Reads one stream and emits into another: the order's own stream holds
    // the order the message carries.
    std::map<std::string, std::string> read_back;
    payment.on<OrderCreated>([&](const OrderCreated& order, Context& ctx) -> asio::awaitable<void> {
        auto decide = [&](Tx&, Reaction& r, const std::vector<boong::RecordedEvent>& seen) {
            std::string what;
            for (const auto& e : seen) what += e.stream_id + " " + e.event.type + " " + e.event.payload.dump() + ";";
            r.then([&, id = order.order_id, what](Tx& t) {
                read_back[id] = what;
                t.on_rollback([&, id] { read_back.erase(id); });
            });
            r.emit("payment-" + order.order_id, PaymentProcessed{order.order_id, order.amount});
        };
        co_await ctx.react_on("order-" + order.order_id, std::move(decide));
    });
    constexpr int orders = 30;
    std::vector<std::string> ids;
    for (int i = 0; i < orders; ++i) ids.push_back("o-" + std::to_string(i));
    for (std::size_t i = 0; i < ids.size(); ++i) w.place(ids[i], static_cast<std::int64_t>(i) + 1, ledger);
    w.relay->start();
    REQUIRE(w.until([&] { return w.broker.read_topic("OrderCreated").size() == ids.size(); }));
    ledger.start();
    payment.start();
    REQUIRE(w.until([&] {
        return w.store.read_stream("ledger", 1, 1000).size() == orders && read_back.size() == orders;
    }));

    const auto entries = w.store.read_stream("ledger", 1, 1000);
    std::set<std::string> entered;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        CHECK(entries[i].event.payload.at("amount") == static_cast<std::int64_t>(i));  // it saw the i before it
        entered.insert(entries[i].event.payload.at("order_id").get<std::string>());
    }
    CHECK(entered.size() == orders);  // each order once
    for (std::size_t i = 0; i < ids.size(); ++i) {
        CHECK(read_back[ids[i]] == "order-" + ids[i] + " OrderCreated " +
                                       boong::json{{"order_id", ids[i]}, {"amount", i + 1}}.dump() + ";");
    }
    if (batched) CHECK(ledger.stats().transactions < ledger.stats().reactions);

    // A name the store refuses fails the delivery, not its neighbours' transaction.
    std::string refused;
    boong::test::run_until_done(w.ioc, [&]() -> asio::awaitable<void> {
        const std::string service = "ledger";
        const boong::Delivery delivery;
        Context ctx(w.store, service, 1, *spdlog::default_logger(), delivery, nullptr);
        auto nothing = [](Tx&, Reaction&, const std::vector<boong::RecordedEvent>&) {};
        try {
            co_await ctx.react_on("", std::move(nothing));
        } catch (const boong::Error& e) {
            refused = e.what();
        }
        co_await ledger.stop();
        co_await payment.stop();
        co_await w.relay->stop();
    });
    CHECK(refused.find("stream") != std::string::npos);
}

TEST_CASE("event bus on memory: a reaction whose transaction the store aborted for contention decides again, "
          "within its delivery",
          "[bus][memory]") {
    World w;
    const bool batched = GENERATE(true, false);
    auto o = options("payment", 4);
    o.max_batch = batched ? 8 : 1;
    o.max_in_flight = 1;
    Bus bus(w.store, w.broker, w.registry, o);
    std::map<std::string, std::int64_t> charged;
    std::map<std::string, int> decisions;
    std::map<std::string, int> committed_delivery;  // delivery_count of the run that committed
    int aborts = 0;
    bus.on<OrderCreated>([&](const OrderCreated& order, Context& ctx) -> asio::awaitable<void> {
        auto decide = [&](Tx&, Reaction& r) {
            ++decisions[order.order_id];
            r.emit("payment-" + order.order_id, PaymentProcessed{order.order_id, order.amount},
                   boong::ExpectedVersion::no_stream());
            r.then([&, id = order.order_id, amount = order.amount, delivery = ctx.delivery().delivery_count](Tx& t) {
                // The deadlock detector picks this one's transaction twice.
                if (id == "contended" && aborts < 2) {
                    ++aborts;
                    throw boong::Error(boong::errc::transaction_aborted, "deadlock detected (test)");
                }
                charged[id] += amount;
                committed_delivery[id] = delivery;
                t.on_rollback([&, id] {
                    charged.erase(id);
                    committed_delivery.erase(id);
                });
            });
        };
        co_await ctx.react(std::move(decide));
    });
    constexpr int orders = 12;
    std::vector<std::string> ids;
    for (int i = 0; i < orders; ++i) ids.push_back(i == 5 ? "contended" : "o-" + std::to_string(i));
    w.place_then_start(ids, bus);
    REQUIRE(w.until([&] { return charged.size() == orders; }));
    w.until([] { return false; }, 100ms);
    CHECK(aborts == 2);
    CHECK(charged.size() == orders);
    CHECK(charged["contended"] == 6);  // once
    CHECK(decisions["contended"] == 3);  // aborted twice, decided again each time
    CHECK(committed_delivery["contended"] == 1);  // within its first delivery: no wait for a redelivery
    CHECK(w.types("payment-contended") == std::vector<std::string>{"PaymentProcessed"});
    CHECK(w.broker.read_topic(boong::dead_letter_topic("OrderCreated")).empty());
    boong::test::run_until_done(w.ioc, [&]() -> asio::awaitable<void> {
        co_await bus.stop();
        co_await w.relay->stop();
    });
}

TEST_CASE("event bus on memory: named writes run in key order across a shared transaction, after the unnamed ones",
          "[bus][memory]") {
    World w;
    auto o = options("inventory");
    o.max_batch = 8;
    o.max_in_flight = 1;
    Bus bus(w.store, w.broker, w.registry, o);
    std::vector<std::pair<char, std::string>> log;  // (what ran: 'u' unnamed, 'a'/'b' by key, order id)
    bus.on<OrderCreated>([&](const OrderCreated& order, Context& ctx) -> asio::awaitable<void> {
        auto decide = [&](Tx&, Reaction& r) {
            r.emit("reserved-" + order.order_id, PaymentProcessed{order.order_id, order.amount},
                   boong::ExpectedVersion::no_stream());
            // Named in the order a handler would meet them ("b" first), with an unnamed one last.
            r.then("stock/b", [&, id = order.order_id](Tx&) { log.emplace_back('b', id); });
            r.then("stock/a", [&, id = order.order_id](Tx&) { log.emplace_back('a', id); });
            r.then([&, id = order.order_id](Tx&) { log.emplace_back('u', id); });
        };
        co_await ctx.react(std::move(decide));
    });
    constexpr int orders = 24;
    std::vector<std::string> ids;
    for (int i = 0; i < orders; ++i) ids.push_back("o-" + std::to_string(i));
    w.place_then_start(ids, bus);
    REQUIRE(w.until([&] { return log.size() == 3 * orders; }));
    // One transaction at a time, none failed: the log is the transactions'
    // writes one after another, each "u...u a...a b...b" over the same orders.
    std::vector<std::vector<std::pair<char, std::string>>> transactions;
    for (const auto& entry : log) {
        if (transactions.empty() || (entry.first == 'u' && transactions.back().back().first != 'u'))
            transactions.emplace_back();
        transactions.back().push_back(entry);
    }
    CHECK(transactions.size() == bus.stats().transactions);
    CHECK(transactions.size() < static_cast<std::size_t>(orders));  // some carried several orders
    for (const auto& t : transactions) {
        REQUIRE(t.size() % 3 == 0);
        const std::size_t n = t.size() / 3;
        for (std::size_t k = 0; k < n; ++k) {
            CHECK(t[k].first == 'u');
            CHECK(t[n + k].first == 'a');
            CHECK(t[2 * n + k].first == 'b');
            CHECK(t[n + k].second == t[k].second);  // each key's writes in the reactions' order
            CHECK(t[2 * n + k].second == t[k].second);
        }
    }
    boong::test::run_until_done(w.ioc, [&]() -> asio::awaitable<void> {
        co_await bus.stop();
        co_await w.relay->stop();
    });
}
