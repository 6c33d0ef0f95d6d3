// The RabbitMQ broker against a raw rabbitmq-c client on the same node, in
// the same process.
//
//   rabbitmq_publish    confirmed publishes/s of ~200-byte events (a 386-byte
//                       body) through RabbitMqBroker::async_publish, issued in
//                       order from one place with many in flight, against a
//                       raw rabbitmq-c publisher with the same confirm window
//                       (publisher confirms, mandatory, persistent, at most
//                       max_unconfirmed unconfirmed) and the same body. Four
//                       phases of each alternate, raw first and last, so that
//                       both see the same moments of a noisy machine:
//                       publishes_per_s (baseline: raw, ratio: ours / raw), and
//                       client_cpu_per_publish_us, the process's CPU (every
//                       thread) per publish on each side.
//   rabbitmq_roundtrip  publish -> handler -> ack through a consumer group:
//                       messages/s, and p50/p99 from publish to handler start
//                       (the same load as redis_roundtrip in bench_redis.cpp).
//
// Environment: BOONG_BENCH_RABBITMQ_HOST, _PORT, _USER, _PASSWORD (required;
// scripts/bench.sh starts a private node and sets them);
// BOONG_BENCH_RABBITMQ_MESSAGES (rabbitmq_publish's publishes on each side,
// default 40000). Each benchmark declares a fresh topic with one group (a
// quorum queue, so that mandatory publishes are routed), purges it between
// phases and deletes it at the end. The broker's completions run on one
// io_context thread.
#include <boong/rabbitmq/broker.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "report.hpp"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;

constexpr const char* password_variable = "BOONG_BENCH_RABBITMQ_PASSWORD";
constexpr const char* missing_server =
    "BOONG_BENCH_RABBITMQ_HOST / _PORT / _USER / _PASSWORD not set (run scripts/bench.sh)";
constexpr const char* group = "bench";

struct Server {
    std::string host;
    int port = 0;
    std::string user;
    std::string password;
};

std::optional<Server> server() {
    const char* host = std::getenv("BOONG_BENCH_RABBITMQ_HOST");
    const char* port = std::getenv("BOONG_BENCH_RABBITMQ_PORT");
    const char* user = std::getenv("BOONG_BENCH_RABBITMQ_USER");
    const char* password = std::getenv(password_variable);
    if (!host || !port || !user || !password || !*host || !*port || !*user) return std::nullopt;
    return Server{host, std::atoi(port), user, password};
}

// The broker's configuration for `s`, with `topic`'s group declared at open.
boong::RabbitMqBrokerConfig config(const Server& s, const std::string& topic) {
    boong::RabbitMqBrokerConfig c;
    c.host = s.host;
    c.port = s.port;
    c.username = s.user;
    c.password_env = password_variable;
    c.groups = {{topic, {group}}};
    return c;  // max_unconfirmed: the default (1024), the raw publisher's window too
}

// About 200 bytes of JSON payload, as in bench_redis.cpp.
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
    return std::string("bench.") + base + "." + boong::IdGenerator().next().substr(24);
}

std::string text(amqp_bytes_t b) { return b.len ? std::string(static_cast<const char*>(b.bytes), b.len) : std::string(); }
amqp_bytes_t bytes(const std::string& s) { return amqp_bytes_t{s.size(), const_cast<char*>(s.data())}; }

// A rabbitmq-c connection of its own, blocking, on the calling thread: the
// raw publisher, and the housekeeping the broker has no call for (purge,
// delete). Throws std::runtime_error on any failure.
class RawClient {
public:
    explicit RawClient(const Server& s) : conn_(amqp_new_connection()) {
        if (!conn_) fail("out of memory");
        try {
            amqp_socket_t* socket = amqp_tcp_socket_new(conn_);
            if (!socket) fail("cannot create a socket");
            if (const int st = amqp_socket_open(socket, s.host.c_str(), s.port); st != AMQP_STATUS_OK)
                fail(std::string("cannot connect: ") + amqp_error_string2(st));
            check(amqp_login(conn_, "/", 0, AMQP_DEFAULT_FRAME_SIZE, 0, AMQP_SASL_METHOD_PLAIN, s.user.c_str(),
                             s.password.c_str()),
                  "login");
            amqp_channel_open(conn_, admin_);
            check(amqp_get_rpc_reply(conn_), "opening a channel");
        } catch (...) {
            amqp_destroy_connection(conn_);  // no destructor for a half-made object
            throw;
        }
    }
    ~RawClient() {
        amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(conn_);
    }
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;

    void purge(const std::string& queue) {
        amqp_queue_purge(conn_, admin_, bytes(queue));
        check(amqp_get_rpc_reply(conn_), "purging " + queue);
    }
    // A topic as the broker lays it out: the exchange, its group's queue, and
    // the dead letters' exchange and queue.
    void delete_topic(const std::string& topic) {
        for (const auto& q : {topic + "." + group, topic + ".dlq"}) {
            amqp_queue_delete(conn_, admin_, bytes(q), 0, 0);
            check(amqp_get_rpc_reply(conn_), "deleting queue " + q);
        }
        for (const auto& x : {topic, topic + ".dlq"}) {
            amqp_exchange_delete(conn_, admin_, bytes(x), 0);
            check(amqp_get_rpc_reply(conn_), "deleting exchange " + x);
        }
    }
    // The body of the first message of `queue` (left there: purge it).
    std::optional<std::string> peek(const std::string& queue) {
        const auto r = amqp_basic_get(conn_, admin_, bytes(queue), /*no_ack*/ 0);
        check(r, "basic.get on " + queue);
        if (r.reply.id != AMQP_BASIC_GET_OK_METHOD) return std::nullopt;
        amqp_message_t m{};
        check(amqp_read_message(conn_, admin_, &m, 0), "reading a message");
        auto body = text(m.body);
        amqp_destroy_message(&m);
        amqp_basic_reject(conn_, admin_, static_cast<const amqp_basic_get_ok_t*>(r.reply.decoded)->delivery_tag, 1);
        return body;
    }

    // Publishes `count` copies of `body` to `exchange` (mandatory, persistent,
    // a message_id and a timestamp, as the broker does) on a channel in
    // confirm mode, with at most `window` unconfirmed; returns publishes/s
    // from the first publish to the last confirm. Unroutable or nacked
    // messages are errors.
    double publish(const std::string& exchange, const std::string& body, std::size_t count, std::size_t window) {
        const amqp_channel_t ch = ++publish_channel_;
        amqp_channel_open(conn_, ch);
        check(amqp_get_rpc_reply(conn_), "opening the publishing channel");
        amqp_confirm_select(conn_, ch);
        check(amqp_get_rpc_reply(conn_), "confirm.select");
        std::vector<char> settled(count + 1, 0);  // by delivery tag (1-based)
        std::uint64_t sent = 0, done = 0, lowest = 1, problems = 0;
        char id[48];  // 36 in practice: a UUID-shaped id, as long as the broker's
        const auto start = steady::now();
        // Acks (and nacks) may settle every tag up to theirs (multiple).
        auto settle = [&](std::uint64_t tag, bool multiple, bool ack) {
            if (tag > sent) fail("a confirm for a tag never sent");
            const std::uint64_t from = multiple ? lowest : tag;
            for (std::uint64_t t = from; t <= tag; ++t) {
                if (settled[t]) continue;
                settled[t] = 1;
                ++done;
                problems += !ack;
            }
            while (lowest <= sent && settled[lowest]) ++lowest;
        };
        while (done < count) {
            while (sent < count && sent - done < window) {
                std::snprintf(id, sizeof id, "00000000-0000-7000-8000-%012llu",
                              static_cast<unsigned long long>(sent));
                amqp_basic_properties_t props{};
                props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                               AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
                props.content_type = amqp_cstring_bytes("application/json");
                props.delivery_mode = 2;  // persistent
                props.message_id = amqp_cstring_bytes(id);
                props.timestamp = static_cast<std::uint64_t>(
                    std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count());
                const int st = amqp_basic_publish(conn_, ch, bytes(exchange), amqp_empty_bytes, /*mandatory*/ 1, 0,
                                                  &props, bytes(body));
                if (st != AMQP_STATUS_OK) fail(std::string("publishing: ") + amqp_error_string2(st));
                ++sent;
            }
            // Wait for a frame, then take whatever else has arrived.
            timeval zero{};
            for (bool first = true;; first = false) {
                amqp_frame_t frame{};
                const int st = first ? amqp_simple_wait_frame(conn_, &frame)
                                     : amqp_simple_wait_frame_noblock(conn_, &frame, &zero);
                if (st == AMQP_STATUS_TIMEOUT) break;
                if (st != AMQP_STATUS_OK) fail(std::string("waiting for confirms: ") + amqp_error_string2(st));
                if (frame.frame_type != AMQP_FRAME_METHOD) continue;
                switch (frame.payload.method.id) {
                    case AMQP_BASIC_ACK_METHOD: {
                        const auto* a = static_cast<const amqp_basic_ack_t*>(frame.payload.method.decoded);
                        settle(a->delivery_tag, a->multiple != 0, true);
                        break;
                    }
                    case AMQP_BASIC_NACK_METHOD: {
                        const auto* n = static_cast<const amqp_basic_nack_t*>(frame.payload.method.decoded);
                        settle(n->delivery_tag, n->multiple != 0, false);
                        break;
                    }
                    case AMQP_BASIC_RETURN_METHOD: {  // unroutable: its confirm follows
                        amqp_message_t m{};
                        check(amqp_read_message(conn_, frame.channel, &m, 0), "reading a returned message");
                        amqp_destroy_message(&m);
                        ++problems;
                        break;
                    }
                    case AMQP_CHANNEL_CLOSE_METHOD:
                    case AMQP_CONNECTION_CLOSE_METHOD: fail("the server closed the publishing channel");
                    default: break;
                }
            }
            amqp_maybe_release_buffers(conn_);
        }
        const double seconds = std::chrono::duration<double>(steady::now() - start).count();
        check(amqp_channel_close(conn_, ch, AMQP_REPLY_SUCCESS), "closing the publishing channel");
        if (problems) fail(std::to_string(problems) + " raw publishes were returned or nacked");
        return static_cast<double>(count) / seconds;
    }

private:
    [[noreturn]] static void fail(const std::string& what) { throw std::runtime_error("raw rabbitmq-c client: " + what); }
    void check(const amqp_rpc_reply_t& r, const std::string& what) {
        if (r.reply_type == AMQP_RESPONSE_NORMAL) return;
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) fail(what + ": " + amqp_error_string2(r.library_error));
        fail(what + ": refused by the server (method " + std::to_string(r.reply.id) + ")");
    }

    amqp_connection_state_t conn_;
    const amqp_channel_t admin_ = 1;
    amqp_channel_t publish_channel_ = 1;  // a new one per run
};

// CPU time of the whole process (every thread: the broker's links too), in
// microseconds.
double process_cpu_us() {
    timespec t{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_nsec) / 1e3;
}

// Runs `ioc` until it has nothing left to do, ready to run again.
void drain(asio::io_context& ioc) {
    ioc.run();
    ioc.restart();
}

// Connects and declares the configured groups; throws what async_open failed with.
void open(asio::io_context& ioc, boong::RabbitMqBroker& broker) {
    std::exception_ptr error;
    asio::co_spawn(ioc, broker.async_open(asio::use_awaitable), [&](std::exception_ptr e) { error = e; });
    drain(ioc);
    if (error) std::rethrow_exception(error);
}

// Publishes `count` copies of `event` through `broker`, issued in order from
// one place with up to `in_flight` incomplete (the next is issued as one
// completes); publishes/s. `failed` counts errors.
double broker_publish(asio::io_context& ioc, boong::RabbitMqBroker& broker, const std::string& topic,
                      const boong::EventData& event, std::size_t count, std::size_t in_flight, std::size_t& failed) {
    std::size_t issued = 0, completed = 0;
    std::function<void()> issue = [&] {
        while (issued < count && issued - completed < in_flight) {
            ++issued;
            broker.async_publish(topic, event, [&](std::exception_ptr e, std::string) {
                ++completed;
                failed += e != nullptr;
                issue();
            });
        }
    };
    const auto start = steady::now();
    issue();
    ioc.run();
    const double seconds = std::chrono::duration<double>(steady::now() - start).count();
    ioc.restart();
    return static_cast<double>(completed) / seconds;
}

// One side's phases of rabbitmq_publish: messages, seconds, process CPU.
struct Side {
    std::size_t messages = 0;
    double seconds = 0;
    double cpu_us = 0;
    std::string rates;  // each phase's rate in k/s, for the label

    void add(std::size_t n, double rate, double cpu) {
        messages += n;
        seconds += static_cast<double>(n) / rate;
        cpu_us += cpu;
        char r[32];
        std::snprintf(r, sizeof r, "%s%.1f", rates.empty() ? "" : " ", rate / 1000);
        rates += r;
    }
    double rate() const { return static_cast<double>(messages) / seconds; }
    double cpu_per_message_us() const { return cpu_us / static_cast<double>(messages); }
};

void rabbitmq_publish(benchmark::State& state) {
    spdlog::set_level(spdlog::level::warn);
    const auto s = server();
    if (!s) {
        state.SkipWithError(missing_server);
        return;
    }
    // The broker's phases alternate with the raw publisher's (raw first and
    // last), so that both see the same moments of a noisy machine.
    constexpr std::size_t rounds = 4;
    const auto count = static_cast<std::size_t>(boong::bench::env_number("BOONG_BENCH_RABBITMQ_MESSAGES").value_or(40000));
    const std::size_t per_phase = std::max<std::size_t>(count / rounds, 1);
    const auto topic = unique_topic("publish");
    const auto queue = topic + "." + group;
    auto c = config(*s, topic);
    const std::size_t window = c.max_unconfirmed;
    boong::IdGenerator ids;
    const auto event = bench_event(ids);
    Side boong_side, raw_side;
    std::size_t failed = 0;
    std::string error;
    std::size_t body_size = 0;
    try {
        RawClient raw(*s);
        asio::io_context ioc(1);
        boong::RabbitMqBroker broker(ioc.get_executor(), c);
        for (auto _ : state) {
            // Connects, declares the topic and its group; one publish warms the
            // path (the exchange is declared once per connection), and the raw
            // publisher sends the very body it stored.
            open(ioc, broker);
            broker_publish(ioc, broker, topic, event, 1, 1, failed);
            const auto body = raw.peek(queue);
            if (!body) throw std::runtime_error("the warm-up publish is not in " + queue);
            body_size = body->size();
            raw.purge(queue);

            auto raw_phase = [&] {
                const auto cpu = process_cpu_us();
                const double rate = raw.publish(topic, *body, per_phase, window);
                raw_side.add(per_phase, rate, process_cpu_us() - cpu);
                raw.purge(queue);
            };
            raw_phase();
            for (std::size_t round = 0; round < rounds; ++round) {
                const auto cpu = process_cpu_us();
                // Up to twice the window incomplete: the link always has the next ones queued.
                const double rate = broker_publish(ioc, broker, topic, event, per_phase, 2 * window, failed);
                boong_side.add(per_phase, rate, process_cpu_us() - cpu);
                raw.purge(queue);
                raw_phase();
            }
        }
    } catch (const std::exception& e) {
        error = e.what();
    }
    try {
        RawClient(*s).delete_topic(topic);
    } catch (const std::exception& e) {
        if (error.empty()) error = e.what();
    }
    if (!error.empty()) {
        state.SkipWithError(error.c_str());
        return;
    }
    if (failed) {
        state.SkipWithError("some publishes through the broker failed");
        return;
    }
    state.counters["publishes_per_s"] = boong_side.rate();
    state.counters["publishes_per_s_baseline"] = raw_side.rate();
    state.counters["publishes_per_s_ratio"] = boong_side.rate() / raw_side.rate();
    // What the client costs, all threads: the node shares the machine's cores.
    state.counters["client_cpu_per_publish_us"] = boong_side.cpu_per_message_us();
    state.counters["client_cpu_per_publish_us_baseline"] = raw_side.cpu_per_message_us();
    state.counters["client_cpu_per_publish_us_ratio"] = boong_side.cpu_per_message_us() / raw_side.cpu_per_message_us();
    state.SetLabel("k/s by phase: raw " + raw_side.rates + "; boong " + boong_side.rates + "; window " +
                   std::to_string(window) + ", " + std::to_string(per_phase) + " x " + std::to_string(body_size) +
                   " bytes a phase");
}

void rabbitmq_roundtrip(benchmark::State& state) {
    spdlog::set_level(spdlog::level::warn);
    const auto s = server();
    if (!s) {
        state.SkipWithError(missing_server);
        return;
    }
    constexpr int publishers = 32;
    constexpr int per_publisher = 1500;
    constexpr std::size_t total = publishers * per_publisher;
    const auto topic = unique_topic("roundtrip");
    boong::IdGenerator ids;
    auto event = bench_event(ids);
    std::vector<double> latencies_us;
    latencies_us.reserve(total);
    double seconds = 0;
    std::size_t failed = 0;
    bool consumer_done = false;
    std::string error;
    try {
        asio::io_context ioc(1);  // one thread: no locking in the scheduler
        boong::RabbitMqBroker broker(ioc.get_executor(), config(*s, topic));
        open(ioc, broker);  // declares the group
        for (auto _ : state) {
            boong::ConsumerOptions o;
            o.topic = topic;
            o.group = group;
            o.consumer = "c1";
            o.settings.concurrency = 64;
            asio::cancellation_signal stop;
            // Publish time travels in the payload, as a steady-clock count.
            boong::MessageHandler handler = [&](const boong::Delivery& d) -> asio::awaitable<void> {
                const auto sent =
                    steady::time_point(steady::duration(d.event.payload.at("sent").get<std::int64_t>()));
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
                    [&](std::exception_ptr e) {
                        if (!e) return;
                        ++failed;
                        stop.emit(asio::cancellation_type::terminal);  // or the consumer waits for ever
                    });
            }
            ioc.run();
            seconds += std::chrono::duration<double>(steady::now() - start).count();
            ioc.restart();
        }
    } catch (const std::exception& e) {
        error = e.what();
    }
    try {
        RawClient(*s).delete_topic(topic);
    } catch (const std::exception& e) {
        if (error.empty()) error = e.what();
    }
    if (!error.empty()) {
        state.SkipWithError(error.c_str());
        return;
    }
    if (failed) {
        state.SkipWithError("some publishes failed");
        return;
    }
    if (!consumer_done) {
        state.SkipWithError("the consumer did not finish");
        return;
    }
    std::sort(latencies_us.begin(), latencies_us.end());
    auto pct = [&](double p) {
        return latencies_us.empty() ? 0.0 : latencies_us[static_cast<std::size_t>(p * (latencies_us.size() - 1))];
    };
    state.counters["messages_per_s"] = static_cast<double>(latencies_us.size()) / seconds;
    state.counters["p50_latency_us"] = pct(0.50);
    state.counters["p99_latency_us"] = pct(0.99);
}

}  // namespace

BENCHMARK(rabbitmq_publish)->Name("rabbitmq_publish")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(rabbitmq_roundtrip)->Name("rabbitmq_roundtrip")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
