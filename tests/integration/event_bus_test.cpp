// The event bus on a real PostgreSQL (BOONG_TEST_PG_DSN) with the in-memory
// broker: typed handlers in consumer groups, reactions committed with the
// inbox, correlation across services, dead letters for unreadable events.
#include <boong/memory/broker.hpp>
#include <boong/event_bus.hpp>
#include <boong/outbox_relay.hpp>
#include <boong/postgres/outbox.hpp>
#include <boong/postgres/transaction.hpp>

#include "support/async.hpp"
#include "support/postgres.hpp"
#include "support/order_events.hpp"

#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

using boong::test::OrderCreated;
using boong::test::PaymentFailed;
using boong::test::PaymentProcessed;

struct Unknown {
    static constexpr std::string_view event_name = "Unknown";
    static constexpr int event_version = 1;
    int x = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Unknown, x)

using boong::test::test_dsn;

struct World {
    asio::io_context ioc;
    std::string table = "bus_" + boong::IdGenerator().next().substr(24, 12);
    boong::PostgresEventStore store{ioc.get_executor(), config(table)};
    boong::MemoryBroker broker{ioc.get_executor()};
    boong::EventRegistry registry;
    std::unique_ptr<boong::PostgresOutbox> outbox;
    using Relay = boong::OutboxRelay<boong::PostgresEventStore, boong::PostgresOutbox, boong::MemoryBroker>;
    std::unique_ptr<Relay> relay;

    World() {
        store.open();
        registry.add<OrderCreated>();
        registry.add<PaymentProcessed>();
        registry.add<PaymentFailed>();
        outbox = std::make_unique<boong::PostgresOutbox>(store);
        boong::OutboxRelayOptions o;
        o.relay = "bus";
        o.topic = boong::topic_by_type;
        o.poll_interval = 5ms;
        relay = std::make_unique<Relay>(store, *outbox, broker, o);
        sql("CREATE TABLE " + table + "_payments (order_id text PRIMARY KEY, amount bigint)");
    }
    static boong::PostgresStoreConfig config(const std::string& t) {
        boong::PostgresStoreConfig c;
        c.connection = test_dsn();
        c.table_name = t;
        c.snapshot_table_name = t + "_snapshots";
        c.pool_size = 4;
        return c;
    }
    pqxx::result sql(const std::string& q) {
        pqxx::connection c(test_dsn());
        pqxx::work tx(c);
        auto r = tx.exec(q);
        tx.commit();
        return r;
    }
    bool until(const std::function<bool()>& done, std::chrono::milliseconds limit = 15s) {
        return boong::test::run_until(ioc, done, limit);
    }
    template <class Make>
    void wait(Make make) {
        bool done = false;
        std::exception_ptr error;
        asio::co_spawn(ioc, make(), [&](std::exception_ptr e, auto...) {
            error = e;
            done = true;
        });
        REQUIRE(until([&] { return done; }));
        if (error) std::rethrow_exception(error);
    }
};

using Bus = boong::EventBus<boong::PostgresEventStore, boong::MemoryBroker>;
using Context = Bus::context_type;
using Reaction = boong::Reaction<pqxx::transaction_base>;

boong::EventBusOptions options(std::string service) {
    boong::EventBusOptions o;
    o.service = std::move(service);
    o.consumers.visibility_timeout = 300ms;
    o.consumers.shutdown_grace = 1s;
    return o;
}

}  // namespace

TEST_CASE("event bus: services react through typed handlers, once per event, with the flow's correlation",
          "[bus]") {
    World w;
    Bus payment(w.store, w.broker, w.registry, options("payment"));
    Bus orders(w.store, w.broker, w.registry, options("orders"));
    const std::string payments = w.table + "_payments";
    std::atomic<int> handled{0}, flaky_failures{0};
    payment.on<OrderCreated>([&](const OrderCreated& o, Context& ctx) -> asio::awaitable<void> {
        ++handled;
        auto decide = [&o, &flaky_failures, payments](pqxx::transaction_base&, Reaction& r) {
            if (o.amount > 100) {
                r.emit("payment-" + o.order_id, PaymentFailed{o.order_id, "over the limit"});
                return;
            }
            r.emit("payment-" + o.order_id, PaymentProcessed{o.order_id, o.amount});
            r.then([&o, &flaky_failures, payments](pqxx::transaction_base& tx) {
                tx.exec_params("INSERT INTO " + payments + " VALUES ($1, $2)", o.order_id, o.amount);
                // Fails after writing, once: everything rolls back, the message comes again.
                if (o.order_id == "o-flaky" && flaky_failures++ == 0) throw std::runtime_error("card network timeout");
            });
        };
        co_await ctx.react(std::move(decide));
    });
    std::vector<boong::EventData> outcomes;
    orders.on<PaymentProcessed>([&](const PaymentProcessed&, Context& ctx) -> asio::awaitable<void> {
        outcomes.push_back(ctx.event());
        co_return;
    });
    orders.on<PaymentFailed>([&](const PaymentFailed&, Context& ctx) -> asio::awaitable<void> {
        outcomes.push_back(ctx.event());
        co_return;
    });
    w.relay->start();
    payment.start();
    orders.start();

    std::vector<std::string> created_ids;
    w.wait([&]() -> asio::awaitable<void> {
        for (const auto& [id, amount] : std::vector<std::pair<std::string, int>>{{"o-1", 40}, {"o-2", 500}, {"o-flaky", 7}}) {
            // Arguments as locals: g++ 12 mishandles class temporaries inside co_await.
            OrderCreated e{id, amount};
            std::string stream = "order-" + id;
            boong::EventMetadata none;
            auto r = co_await orders.publish(std::move(stream), e, boong::ExpectedVersion::no_stream(), std::move(none));
            (void)r;
        }
    });
    REQUIRE(w.until([&] { return outcomes.size() == 3; }));
    CHECK(flaky_failures == 2);  // failed once after writing, rolled back, then succeeded
    // Correlation: each outcome is caused by its order's event and carries its flow id.
    auto created = w.sql("SELECT stream_id, event_id::text, metadata ->> 'correlation_id' FROM " + w.table +
                         " WHERE type = 'OrderCreated'");
    REQUIRE(created.size() == 3);
    for (const auto& row : created) {
        const std::string order = row[0].as<std::string>().substr(6);
        const std::string id = row[1].as<std::string>();
        CHECK(row[2].as<std::string>() == id);  // a new flow is correlated by its first event
        int matches = 0;
        for (const auto& o : outcomes) {
            if (o.payload.at("order_id") != order) continue;
            ++matches;
            CHECK(o.metadata.causation_id == id);
            CHECK(o.metadata.correlation_id == id);
            CHECK(o.type == (order == "o-2" ? "PaymentFailed" : "PaymentProcessed"));
        }
        CHECK(matches == 1);
    }

    // The same event delivered again (a broker redelivery, a relay republishing):
    // no second reaction, no second write.
    auto first = w.broker.read_topic("OrderCreated");
    REQUIRE_FALSE(first.empty());
    const int before = handled;
    w.wait([&]() -> asio::awaitable<void> {
        auto again = first.front().event;
        co_await w.broker.async_publish("OrderCreated", std::move(again), asio::use_awaitable);
    });
    REQUIRE(w.until([&] { return handled > before; }));
    w.until([] { return false; }, 300ms);
    CHECK(outcomes.size() == 3);
    CHECK(w.sql("SELECT count(*) FROM " + payments)[0][0].as<int>() == 2);
    CHECK(w.sql("SELECT count(*) FROM " + w.table + " WHERE type LIKE 'Payment%'")[0][0].as<int>() == 3);

    // An event this service cannot read goes to the dead letters with the
    // reason, and the consumer carries on.
    w.wait([&]() -> asio::awaitable<void> {
        auto future = boong::EventRegistry::encode(OrderCreated{"o-future", 1});
        future.schema_version = 9;
        co_await w.broker.async_publish("OrderCreated", std::move(future), asio::use_awaitable);
        auto broken = boong::EventRegistry::encode(OrderCreated{"o-broken", 1});
        broken.payload = boong::json{{"order_id", 42}};
        co_await w.broker.async_publish("OrderCreated", std::move(broken), asio::use_awaitable);
        OrderCreated next{"o-3", 5};
        std::string stream = "order-o-3";
        boong::EventMetadata none;
        co_await orders.publish(std::move(stream), next, boong::ExpectedVersion::no_stream(), std::move(none));
    });
    REQUIRE(w.until([&] { return outcomes.size() == 4; }));
    const auto dead = w.broker.read_topic(boong::dead_letter_topic("OrderCreated"));
    REQUIRE(dead.size() == 2);
    const auto reason0 = dead[0].event.metadata.extra.at("dead_letter").at("reason").get<std::string>();
    const auto reason1 = dead[1].event.metadata.extra.at("dead_letter").at("reason").get<std::string>();
    CHECK_THAT(reason0 + reason1, Catch::Contains("newer than this service knows") && Catch::Contains("does not decode"));

    w.wait([&]() -> asio::awaitable<void> {
        co_await payment.stop();
        co_await orders.stop();
        co_await w.relay->stop();
    });
}

TEST_CASE("event bus: bad setup is refused clearly", "[bus]") {
    World w;
    CHECK_THROWS_AS(Bus(w.store, w.broker, w.registry, options("")), boong::Error);
    Bus bus(w.store, w.broker, w.registry, options("svc"));
    CHECK_THROWS_WITH(bus.on<Unknown>([](const Unknown&, Context&) -> asio::awaitable<void> { co_return; }),
                      Catch::Contains("registry does not know"));
    Reaction r{boong::EventMetadata{}};
    r.emit("a-1", OrderCreated{"x", 1});
    CHECK_THROWS_WITH(r.emit("b-1", OrderCreated{"y", 1}), Catch::Contains("one stream"));
}
