// The Redis Streams broker against redis-server, each figure next to a
// raw-client baseline that scripts/bench.sh measured with redis-benchmark in
// the same run (XADD of a 200-byte field, 50 clients, pipeline 16).
//
//   redis_publish    pipelined publishes of ~200-byte events from many coroutines
//   any_redis_publish  the same through AnyBroker (make_broker): the erasure's cost
//   redis_roundtrip  publish -> handler -> XACK through a consumer group:
//                    messages/s, and p50/p99 from publish to handler start
//
// Environment: BOONG_BENCH_REDIS_HOST, BOONG_BENCH_REDIS_PORT (required);
// BOONG_BENCH_REDIS_XADD_BASELINE (XADD/s from redis-benchmark, optional).
// Everything runs on one io_context thread: the client's cost is what shows.
#include <boong/backends.hpp>
#include <boong/redis/broker.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "report.hpp"

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;

using boong::bench::env_number;
using boong::bench::report;

std::optional<boong::RedisBrokerConfig> config() {
    const char* host = std::getenv("BOONG_BENCH_REDIS_HOST");
    const char* port = std::getenv("BOONG_BENCH_REDIS_PORT");
    if (!host || !port || !*host || !*port) return std::nullopt;
    boong::RedisBrokerConfig c;
    c.host = host;
    c.port = std::atoi(port);
    c.block_timeout = std::chrono::milliseconds(200);
    return c;
}

// About 200 bytes of JSON payload, like the redis-benchmark field.
boong::EventData bench_event(boong::IdGenerator& ids) {
    boong::EventData e;
    e.event_id = ids.next();
    e.type = "OrderCreated";
    e.payload = boong::json::parse(
        R"({"order_id":"ord-0000000001","customer":"cust-42","amount_cents":12345,"currency":"EUR",)"
        R"("items":[{"sku":"sku-1","qty":2},{"sku":"sku-2","qty":1}],"note":"benchmark payload of about two hundred bytes."})");
    e.metadata.correlation_id = "order-1";
    e.metadata.timestamp = boong::Clock::now();
    return e;
}

std::string unique_topic(const char* base) {
    return std::string("bench:") + base + ":" + boong::IdGenerator().next().substr(24);
}

// Publishes from 256 coroutines on one thread through `broker`, on `ioc`:
// publishes per second (failed: how many coroutines saw an error).
template <class Broker>
double publish_rate(benchmark::State& state, asio::io_context& ioc, Broker& broker, const std::string& topic,
                    std::size_t& failed) {
    constexpr int coroutines = 256;
    constexpr int per_coroutine = 800;
    boong::IdGenerator ids;
    const auto event = bench_event(ids);
    double seconds = 0;
    std::size_t published = 0;
    for (auto _ : state) {
        asio::co_spawn(ioc, broker.async_open(asio::use_awaitable), asio::detached);
        ioc.run();
        ioc.restart();
        const auto start = steady::now();
        for (int i = 0; i < coroutines; ++i) {
            asio::co_spawn(
                ioc,
                [&]() -> asio::awaitable<void> {
                    for (int n = 0; n < per_coroutine; ++n) {
                        co_await broker.async_publish(topic, event, asio::use_awaitable);
                        ++published;
                    }
                },
                [&](std::exception_ptr e) { failed += e != nullptr; });
        }
        ioc.run();
        seconds += std::chrono::duration<double>(steady::now() - start).count();
        ioc.restart();
    }
    return static_cast<double>(published) / seconds;
}

void delete_topic(asio::io_context& ioc, boong::RedisBroker& broker, const std::string& topic) {
    std::vector<std::string> del{"DEL", topic};
    asio::co_spawn(ioc, broker.async_command(del, asio::use_awaitable), asio::detached);
    ioc.run();
    ioc.restart();
}

void redis_publish(benchmark::State& state) {
    spdlog::set_level(spdlog::level::warn);
    auto c = config();
    if (!c) {
        state.SkipWithError("BOONG_BENCH_REDIS_HOST / BOONG_BENCH_REDIS_PORT not set (run scripts/bench.sh)");
        return;
    }
    asio::io_context ioc(1);  // one thread: no locking in the scheduler
    boong::RedisBroker broker(ioc.get_executor(), *c);
    const auto topic = unique_topic("publish");
    std::size_t failed = 0;
    const double rate = publish_rate(state, ioc, broker, topic, failed);
    delete_topic(ioc, broker, topic);
    if (failed) state.SkipWithError("some publishes failed");
    report(state, "publishes_per_s", rate, "BOONG_BENCH_REDIS_XADD_BASELINE");
}

// The same, through AnyBroker made by make_broker: what the erasure costs
// (compare with redis_publish of the same run).
void any_redis_publish(benchmark::State& state) {
    spdlog::set_level(spdlog::level::warn);
    auto c = config();
    if (!c) {
        state.SkipWithError("BOONG_BENCH_REDIS_HOST / BOONG_BENCH_REDIS_PORT not set (run scripts/bench.sh)");
        return;
    }
    asio::io_context ioc(1);
    boong::MessageBrokerConfig mc;
    mc.type = boong::MessageBrokerConfig::Type::redis_streams;
    mc.redis = *c;
    boong::AnyBroker broker = boong::make_broker(ioc.get_executor(), mc);
    const auto topic = unique_topic("any-publish");
    std::size_t failed = 0;
    const double rate = publish_rate(state, ioc, broker, topic, failed);
    boong::RedisBroker cleaner(ioc.get_executor(), *c);
    delete_topic(ioc, cleaner, topic);
    if (failed) state.SkipWithError("some publishes failed");
    report(state, "publishes_per_s", rate, "BOONG_BENCH_REDIS_XADD_BASELINE");
}

void redis_roundtrip(benchmark::State& state) {
    spdlog::set_level(spdlog::level::warn);
    auto c = config();
    if (!c) {
        state.SkipWithError("BOONG_BENCH_REDIS_HOST / BOONG_BENCH_REDIS_PORT not set (run scripts/bench.sh)");
        return;
    }
    constexpr int publishers = 32;
    constexpr int per_publisher = 1500;
    constexpr std::size_t total = publishers * per_publisher;
    asio::io_context ioc(1);  // one thread: no locking in the scheduler
    boong::RedisBroker broker(ioc.get_executor(), *c);
    boong::IdGenerator ids;
    auto event = bench_event(ids);
    const auto topic = unique_topic("roundtrip");
    std::vector<double> latencies_us;
    latencies_us.reserve(total);
    double seconds = 0;
    for (auto _ : state) {
        boong::ConsumerOptions o;
        o.topic = topic;
        o.group = "bench";
        o.consumer = "c1";
        o.settings.concurrency = 64;
        asio::cancellation_signal stop;
        bool consumer_done = false;
        // Publish time travels in the payload, as a steady-clock count.
        boong::MessageHandler handler = [&](const boong::Delivery& d) -> asio::awaitable<void> {
            const auto sent = steady::time_point(steady::duration(d.event.payload.at("sent").get<std::int64_t>()));
            latencies_us.push_back(std::chrono::duration<double, std::micro>(steady::now() - sent).count());
            if (latencies_us.size() == total) stop.emit(asio::cancellation_type::terminal);
            co_return;
        };
        const auto start = steady::now();
        asio::co_spawn(ioc, broker.async_consume(o, handler, asio::use_awaitable),
                       asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr) { consumer_done = true; }));
        for (int p = 0; p < publishers; ++p) {
            asio::co_spawn(
                ioc,
                [&]() -> asio::awaitable<void> {
                    auto e = event;
                    for (int n = 0; n < per_publisher; ++n) {
                        e.payload["sent"] = steady::now().time_since_epoch().count();
                        co_await broker.async_publish(topic, e, asio::use_awaitable);
                    }
                },
                asio::detached);
        }
        ioc.run();
        seconds += std::chrono::duration<double>(steady::now() - start).count();
        ioc.restart();
        if (!consumer_done) state.SkipWithError("the consumer did not finish");
    }
    std::vector<std::string> del{"DEL", topic};
    asio::co_spawn(ioc, broker.async_command(del, asio::use_awaitable), asio::detached);
    ioc.run();
    std::sort(latencies_us.begin(), latencies_us.end());
    auto pct = [&](double p) {
        return latencies_us.empty() ? 0.0 : latencies_us[static_cast<std::size_t>(p * (latencies_us.size() - 1))];
    };
    state.counters["messages_per_s"] = static_cast<double>(latencies_us.size()) / seconds;
    state.counters["p50_latency_us"] = pct(0.50);
    state.counters["p99_latency_us"] = pct(0.99);
}

}  // namespace

BENCHMARK(redis_publish)->Name("redis_publish")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(any_redis_publish)->Name("any_redis_publish")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(redis_roundtrip)->Name("redis_roundtrip")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
