// A consumer process for the poison test (redis_broker_test): consumes a
// topic with the Redis broker and aborts the whole process, as a crashing
// handler would, on any event whose payload says {"crash": true}. Others it
// acknowledges. Runs until SIGTERM.
//
//   poison_consumer HOST PORT TOPIC GROUP CONSUMER MAX_DELIVERIES VISIBILITY_MS
#include <boong/redis/broker.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <iostream>
#include <string>

namespace asio = boost::asio;

int main(int argc, char** argv) try {
    if (argc != 8) {
        std::cerr << "usage: poison_consumer HOST PORT TOPIC GROUP CONSUMER MAX_DELIVERIES VISIBILITY_MS\n";
        return 2;
    }
    spdlog::set_level(spdlog::level::warn);
    asio::io_context ioc;
    boong::RedisBrokerConfig rc;
    rc.host = argv[1];
    rc.port = std::stoi(argv[2]);
    rc.block_timeout = std::chrono::milliseconds(100);
    boong::RedisBroker broker(ioc.get_executor(), rc);
    boong::ConsumerOptions o;
    o.topic = argv[3];
    o.group = argv[4];
    o.consumer = argv[5];
    o.settings.max_deliveries = std::stoi(argv[6]);
    o.settings.visibility_timeout = std::chrono::milliseconds(std::stoi(argv[7]));
    asio::cancellation_signal stop;
    broker.async_consume(
        o,
        [](const boong::Delivery& d) -> asio::awaitable<void> {
            if (d.event.payload.value("crash", false)) std::abort();  // the handler takes the process down
            co_return;
        },
        asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr e) {
            if (e) std::cerr << "poison_consumer: " << boong::describe(e) << "\n";
            ioc.stop();
        }));
    asio::signal_set signals(ioc, SIGTERM, SIGINT);
    signals.async_wait([&](const boost::system::error_code&, int) { stop.emit(asio::cancellation_type::terminal); });
    ioc.run();
    return 0;
} catch (const std::exception& e) {
    std::cerr << "poison_consumer: " << e.what() << "\n";
    return 2;
}
