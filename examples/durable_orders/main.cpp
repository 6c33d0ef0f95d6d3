// A complete durable program: the order saga on PostgreSQL, run by a
// SagaOrchestrator, with an outbox relay publishing every stored event to
// Redis. Kill it at any moment and start it again: every order ends
// completed or compensated, and every event reaches Redis.
//
//   durable_orders --dsn postgresql://... --redis 127.0.0.1:6379 [--table orders] [--orders 200] [--topic orders]
#include <boong/boong.hpp>
#include <boong/postgres/outbox.hpp>
#include <boong/postgres/sagas.hpp>
#include <boong/postgres/store.hpp>
#include <boong/redis/broker.hpp>

#include <boost/asio.hpp>

#include <iostream>
#include <map>

namespace asio = boost::asio;
using namespace std::chrono_literals;

struct Order {
    int number = 0;
    std::int64_t amount_cents = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Order, number, amount_cents)

// The steps stand in for calls to other services: each takes a little
// while, and is safe to repeat (a resumed saga repeats the step it was in).
class OrderSaga {
public:
    static constexpr std::string_view name = "order";
    using Ctx = boong::StepContext<Order>;

    asio::awaitable<void> reserve(Ctx& ctx) { co_await call(ctx, "reserved"); }
    asio::awaitable<void> release(Ctx& ctx) { co_await call(ctx, "released"); }
    asio::awaitable<void> charge(Ctx& ctx) {
        if (ctx.data().amount_cents > 50'000) throw boong::Rejection("the card was declined");
        co_await call(ctx, "charged");
    }
    asio::awaitable<void> refund(Ctx& ctx) { co_await call(ctx, "refunded"); }
    asio::awaitable<void> confirm(Ctx& ctx) { co_await call(ctx, "confirmed"); }

private:
    static asio::awaitable<void> call(Ctx& ctx, const char* what) {
        asio::steady_timer t(co_await asio::this_coro::executor, 20ms);
        co_await t.async_wait(asio::use_awaitable);
        ctx.log().debug("{}", what);
    }
};

using OrderProcessing = boong::Saga<boong::Step<"reserve", &OrderSaga::reserve, &OrderSaga::release>,
                                    boong::Step<"charge", &OrderSaga::charge, &OrderSaga::refund>,
                                    boong::Step<"confirm", &OrderSaga::confirm>>;
using Orchestrator = boong::SagaOrchestrator<OrderProcessing, boong::PostgresEventStore, boong::PostgresSagaIndex>;
using Relay = boong::OutboxRelay<boong::PostgresEventStore, boong::PostgresOutbox, boong::RedisBroker>;

// Places orders 1..count; one stored by an earlier run is left to the
// orchestrator, which resumes it (its start is then a conflict).
asio::awaitable<void> place_orders(Orchestrator& orchestrator, int count) {
    for (int n = 1; n <= count; ++n) {
        boong::RunOptions options;
        options.saga_id = "order-" + std::to_string(n);
        const Order order{n, n % 7 == 0 ? 90'000 : 1'000 + n};
        orchestrator.runner().async_run(order, options, [](std::exception_ptr, auto) {});
        asio::steady_timer pace(co_await asio::this_coro::executor, 2ms);
        co_await pace.async_wait(asio::use_awaitable);
    }
}

// Waits until every order has ended and every event is published.
asio::awaitable<void> settle(boong::PostgresSagaIndex& index, boong::PostgresOutbox& outbox, int count) {
    for (;;) {
        const auto phases = co_await index.async_count_by_phase(asio::use_awaitable);
        std::map<boong::SagaPhase, std::int64_t> by_phase(phases.begin(), phases.end());
        const auto ended = by_phase[boong::SagaPhase::completed] + by_phase[boong::SagaPhase::compensated] +
                           by_phase[boong::SagaPhase::failed];
        const auto relay = co_await outbox.async_status("orders", asio::use_awaitable);
        if (ended == count && relay.pending == 0) {
            std::cout << "durable_orders: " << count << " orders: " << by_phase[boong::SagaPhase::completed]
                      << " completed, " << by_phase[boong::SagaPhase::compensated] << " compensated, "
                      << by_phase[boong::SagaPhase::failed] << " failed; every event published (position "
                      << relay.position << ")\n";
            co_return;
        }
        asio::steady_timer t(co_await asio::this_coro::executor, 100ms);
        co_await t.async_wait(asio::use_awaitable);
    }
}

int main(int argc, char** argv) try {
    std::map<std::string, std::string> args{{"--table", "orders"}, {"--orders", "200"}, {"--topic", "orders"}};
    for (int i = 1; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
    if (!args.count("--dsn") || !args.count("--redis")) {
        std::cerr << "usage: durable_orders --dsn DSN --redis HOST:PORT [--table T] [--orders N] [--topic T]\n";
        return 2;
    }
    const int count = std::stoi(args["--orders"]);
    asio::io_context ioc;

    boong::PostgresStoreConfig pg;
    pg.connection = args["--dsn"];
    pg.table_name = args["--table"];
    pg.snapshot_table_name = args["--table"] + "_snapshots";
    boong::PostgresEventStore store(ioc.get_executor(), pg);
    store.open();  // before the loop runs: connects the pool, creates the schema
    boong::PostgresSagaIndex index(store);
    boong::PostgresOutbox outbox(store);

    const auto redis_at = boong::parse_endpoint(args["--redis"]);
    if (!redis_at) {
        std::cerr << "durable_orders: --redis must be HOST:PORT, not '" << args["--redis"] << "'\n";
        return 2;
    }
    boong::RedisBrokerConfig redis;
    redis.host = redis_at->host;
    redis.port = redis_at->port;
    boong::RedisBroker broker(ioc.get_executor(), redis);

    OrderSaga saga;
    boong::SagaOptions options;
    options.defaults.retry.initial_delay = 50ms;
    // One name across restarts: a restarted process takes its sagas back at
    // once, instead of waiting for their leases to expire.
    boong::OrchestratorOptions oo;
    oo.name = "durable-orders";
    Orchestrator orchestrator(saga, store, index, options, oo);
    boong::OutboxRelayOptions ro;
    ro.relay = "orders";
    ro.topic = [topic = args["--topic"]](const boong::RecordedEvent&) { return topic; };  // one Redis stream
    Relay relay(store, outbox, broker, ro);

    orchestrator.start();  // resumes what an earlier run left in flight
    relay.start();
    asio::co_spawn(ioc, place_orders(orchestrator, count), asio::detached);
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            co_await settle(index, outbox, count);
            co_await relay.stop();
            co_await orchestrator.stop();
        },
        [&](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
        });
    ioc.run();
    return 0;
} catch (const std::exception& e) {
    std::cerr << "durable_orders: " << e.what() << "\n";
    return 1;
}
