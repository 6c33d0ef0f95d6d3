// One orchestrator process of the chaos test: runs its share of the order
// sagas, takes over the sagas of dead processes, and relays the outbox to
// Redis or RabbitMQ, until SIGTERM (graceful) or SIGKILL (the point of the test).
//
//   chaos_node --dsn DSN --broker redis|rabbitmq --at HOST:PORT --table T --run RUN --name NAME
//              --first N --count N
// For RabbitMQ, the user and password are BOONG_TEST_RABBITMQ_USER and
// BOONG_TEST_RABBITMQ_PASSWORD; the topic `saga` has the group `chaos`.
#include "chaos_saga.hpp"

#include <boong/backends.hpp>
#include <boong/outbox_relay.hpp>
#include <boong/saga_orchestrator.hpp>
#include <boong/postgres/outbox.hpp>
#include <boong/postgres/sagas.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

std::map<std::string, std::string> parse(int argc, char** argv) {
    std::map<std::string, std::string> a;
    for (int i = 1; i + 1 < argc; i += 2) a[argv[i]] = argv[i + 1];
    for (const char* k : {"--dsn", "--broker", "--at", "--table", "--run", "--name", "--first", "--count"}) {
        if (!a.count(k)) throw std::runtime_error(std::string("missing ") + k);
    }
    return a;
}

using Orchestrator = boong::SagaOrchestrator<chaos::OrderSaga, boong::PostgresEventStore, boong::PostgresSagaIndex>;
using Relay = boong::OutboxRelay<boong::PostgresEventStore, boong::PostgresOutbox, boong::AnyBroker>;

// Starts sagas first..first+count-1 (those not started by an earlier life of
// this node), at most `width` at once.
asio::awaitable<void> start_sagas(Orchestrator& orch, std::string run, int first, int count, int width) {
    auto ex = co_await asio::this_coro::executor;
    int next = first, in_flight = 0;
    std::vector<int> retry;  // starts the store could not take
    asio::steady_timer slot(ex, asio::steady_timer::time_point::max());
    while (next < first + count || in_flight > 0 || !retry.empty()) {
        if (!retry.empty() && in_flight == 0) {
            asio::steady_timer pause(ex, 200ms);
            co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        while ((next < first + count || !retry.empty()) && in_flight < width) {
            int n;
            if (!retry.empty()) {
                n = retry.back();
                retry.pop_back();
            } else {
                n = next++;
            }
            ++in_flight;
            boong::RunOptions o;
            o.saga_id = run + "-" + std::to_string(n);
            orch.runner().async_run(chaos::OrderData{n}, o, [&, n](std::exception_ptr e, auto) {
                // Already started in an earlier life (ConcurrencyConflict),
                // interrupted (a shutdown) or finished: the orchestrators see
                // to every saga that is stored and not finished. Not stored
                // because the store was unavailable: as a client would, start
                // it again (the same id: a start that was stored after all is
                // a ConcurrencyConflict the second time).
                --in_flight;
                if (boong::is_unavailable(e)) retry.push_back(n);
                slot.cancel();
            });
        }
        co_await slot.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

}  // namespace

int main(int argc, char** argv) try {
    auto a = parse(argc, argv);
    spdlog::set_level(spdlog::level::warn);
    spdlog::set_pattern("[%H:%M:%S.%e] [" + a["--name"] + " %P] [%l] %v");
    asio::io_context ioc;

    boong::PostgresStoreConfig pc;
    pc.connection = a["--dsn"];
    pc.table_name = a["--table"];
    pc.snapshot_table_name = a["--table"] + "_snapshots";
    pc.pool_size = 6;
    pc.connect_timeout = 3s;
    pc.command_timeout = 10s;
    // PostgreSQL may be restarting when this node is (re)started, as Redis may
    // be below: a service's supervisor would start it again, so the node
    // waits for the server (a failed open needs a new store) instead of
    // exiting, for up to 60 s.
    std::optional<boong::PostgresEventStore> opened;
    const auto give_up = std::chrono::steady_clock::now() + 60s;
    for (;;) {
        opened.emplace(ioc.get_executor(), pc);
        try {
            opened->open();
            break;
        } catch (const boong::Error& e) {
            if (e.code() != boong::errc::store_unavailable || std::chrono::steady_clock::now() > give_up) throw;
            spdlog::warn("postgres not reachable yet: {}", e.what());
        }
        opened.reset();
        std::this_thread::sleep_for(200ms);
    }
    boong::PostgresEventStore& store = *opened;
    boong::PostgresSagaIndex index(store);
    boong::PostgresOutbox outbox(store);

    boong::AnyBroker broker = boong::make_broker(ioc.get_executor(), chaos::broker_config(a["--broker"], a["--at"]));

    chaos::Services services(store, chaos::Tables(a["--table"]));
    boong::OrchestratorOptions oo;
    oo.name = a["--name"];
    oo.lease = 2s;
    oo.scan_interval = 200ms;
    Orchestrator orch(services, store, index, chaos::saga_options(), oo);
    orch.on_outcome([](const std::string&, std::exception_ptr, const auto&) {});
    boong::OutboxRelayOptions ro;
    ro.relay = "chaos";
    ro.owner = boong::make_owner(a["--name"]);
    ro.lease = 2s;
    Relay relay(store, outbox, broker, ro);

    orch.start();
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            // The broker may be restarting: the relay starts once it answers.
            for (;;) {
                try {
                    co_await broker.async_open(asio::use_awaitable);
                    break;
                } catch (const std::exception& e) {
                    spdlog::warn("{} not reachable yet: {}", broker.describe(), e.what());
                }
                asio::steady_timer t(ioc, 200ms);
                co_await t.async_wait(asio::use_awaitable);
            }
            relay.start();
        },
        asio::detached);
    asio::co_spawn(ioc, start_sagas(orch, a["--run"], std::stoi(a["--first"]), std::stoi(a["--count"]), 20),
                   asio::detached);

    asio::signal_set signals(ioc, SIGTERM, SIGINT);
    signals.async_wait([&](const boost::system::error_code&, int) {
        asio::co_spawn(
            ioc,
            [&]() -> asio::awaitable<void> {
                co_await relay.stop();
                co_await orch.stop();
            },
            [&](std::exception_ptr) { ioc.stop(); });
    });
    ioc.run();
    std::cout << "chaos_node " << a["--name"] << ": stopped (claimed " << orch.stats().claimed << ", relayed "
              << relay.stats().published << ")\n";
    return 0;
} catch (const std::exception& e) {
    std::cerr << "chaos_node: " << e.what() << "\n";
    return 2;
}
