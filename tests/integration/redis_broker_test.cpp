// RedisBroker against a real redis-server (7.0): the Broker conformance suite,
// plus what only a Redis backend can show (unreachable server, undecodable
// entries, a consumer that dies, a server restart while messages flow).
//
// scripts/test.sh starts a private server and exports BOONG_TEST_REDIS_HOST
// and BOONG_TEST_REDIS_PORT; without them the tests fail (they are never
// skipped silently).
#include <boong/backends.hpp>
#include <boong/redis/broker.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

boong::RedisBrokerConfig test_config() {
    const char* host = std::getenv("BOONG_TEST_REDIS_HOST");
    const char* port = std::getenv("BOONG_TEST_REDIS_PORT");
    if (!host || !port || !*host || !*port)
        throw std::runtime_error("BOONG_TEST_REDIS_HOST / BOONG_TEST_REDIS_PORT are not set: run scripts/test.sh, "
                                 "or source scripts/lib/servers.sh and call boong_start_redis");
    boong::RedisBrokerConfig c;
    c.host = host;
    c.port = std::stoi(port);
    c.connect_timeout = std::chrono::milliseconds(2000);
    c.command_timeout = std::chrono::milliseconds(3000);
    c.block_timeout = std::chrono::milliseconds(200);
    return c;
}

// Names unique per process run too: the server outlives the test binary.
std::string run_prefix() {
    static const std::string prefix = "t" + boong::IdGenerator().next().substr(24);
    return prefix;
}

struct RedisBrokerFixture {
    boost::asio::io_context ioc_;
    boong::RedisBroker broker_{ioc_.get_executor(), test_config()};

    boost::asio::io_context& ioc() { return ioc_; }
    boong::RedisBroker& broker() { return broker_; }
    // Counted across fixtures: two fixture types share the server and the prefix.
    std::string unique(std::string_view base) {
        static int names = 0;
        return run_prefix() + ":" + std::string(base) + "-" + std::to_string(++names);
    }
    // Redelivery is found by XAUTOCLAIM every quarter of this: room for a
    // loaded machine, short enough for the suite's 5 s waits.
    std::chrono::milliseconds short_timeout() { return std::chrono::milliseconds(250); }
};

// The same backend made from configuration, behind AnyBroker: the erasure
// passes the suite too.
struct AnyRedisBrokerFixture : RedisBrokerFixture {
    boong::AnyBroker any_ = make_any();
    boong::AnyBroker& broker() { return any_; }
    boong::AnyBroker make_any() {
        boong::MessageBrokerConfig c;
        c.type = boong::MessageBrokerConfig::Type::redis_streams;
        c.redis = test_config();
        return boong::make_broker(ioc_.get_executor(), c);
    }
};

}  // namespace

#define BOONG_BROKER_FIXTURES RedisBrokerFixture, AnyRedisBrokerFixture
#include "conformance/broker_conformance.hpp"

#include <boost/asio/co_spawn.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

extern char** environ;

namespace {

namespace asio = boost::asio;
namespace bc = boong::test::conformance;
using namespace std::chrono_literals;

// A TCP socket bound to a free port on 127.0.0.1; `port` is set to it.
int bound_loopback_socket(int& port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
    return fd;
}

// A TCP port on 127.0.0.1 that nothing listens on (bound, read, released).
int free_port() {
    int port = 0;
    ::close(bound_loopback_socket(port));
    return port;
}

// A redis-server of the test's own (appendonly, fsync on every write), so the
// test may kill and restart it without disturbing the shared one.
class OwnRedis {
public:
    OwnRedis() : port_(free_port()) {
        char tmpl[] = "/tmp/boong-redis-restart.XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir_ = tmpl;
        REQUIRE(start());
    }
    ~OwnRedis() {
        stop();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    int port() const { return port_; }

    // False when the server did not answer PING in time (see its redis.log).
    // Catch assertions stay out of it: the test calls it from a thread too.
    bool start() {
        const std::string port = std::to_string(port_);
        std::vector<std::string> args{"redis-server", "--port",         port,       "--bind", "127.0.0.1",
                                      "--dir",        dir_.string(),   "--appendonly", "yes", "--appendfsync",
                                      "always",       "--save",        "",         "--logfile",
                                      (dir_ / "redis.log").string()};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        if (::posix_spawnp(&pid_, "redis-server", nullptr, nullptr, argv.data(), environ) != 0) return false;
        // Ready when PING answers (a blocking wait: called outside the io_context).
        const std::string ping = "redis-cli -p " + port + " ping >/dev/null 2>&1";
        for (int i = 0; i < 200; ++i) {
            if (std::system(ping.c_str()) == 0) return true;
            std::this_thread::sleep_for(25ms);
        }
        return false;
    }
    // SIGKILL: nothing is flushed but what appendfsync always already wrote.
    void kill() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

private:
    int port_;
    std::filesystem::path dir_;
    pid_t pid_ = -1;
};

std::string error_text(std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        return ex.what();
    }
}

}  // namespace

TEST_CASE("redis broker: an unreachable server is a clear broker_unavailable naming it, within connect_timeout",
          "[broker][redis]") {
    asio::io_context ioc;
    auto config = test_config();
    config.port = free_port();
    config.connect_timeout = 1000ms;
    config.command_timeout = 1500ms;
    boong::RedisBroker broker(ioc.get_executor(), config);
    boong::IdGenerator ids;
    std::optional<boong::Error> open_error, publish_error;
    auto started = std::chrono::steady_clock::now();
    std::chrono::steady_clock::duration open_took{}, publish_took{};
    boong::test::run(ioc, [&]() -> asio::awaitable<void> {
        try {
            co_await broker.async_open(asio::use_awaitable);
        } catch (const boong::Error& e) {
            open_error = e;
        }
        open_took = std::chrono::steady_clock::now() - started;
        started = std::chrono::steady_clock::now();
        try {
            co_await broker.async_publish("t", bc::make_event(ids, "E", {}), asio::use_awaitable);
        } catch (const boong::Error& e) {
            publish_error = e;
        }
        publish_took = std::chrono::steady_clock::now() - started;
    });
    REQUIRE(open_error.has_value());
    CHECK(open_error->code() == boong::errc::broker_unavailable);
    CHECK_THAT(std::string(open_error->what()), Catch::Contains("127.0.0.1:" + std::to_string(config.port)));
    CHECK(open_took < 1500ms);
    // A publish retries (reconnecting) for the command timeout, then gives up.
    REQUIRE(publish_error.has_value());
    CHECK(publish_error->code() == boong::errc::broker_unavailable);
    CHECK_THAT(std::string(publish_error->what()), Catch::Contains("127.0.0.1:" + std::to_string(config.port)));
    CHECK(publish_took < 3000ms);
}

// A server that goes away from under an idle connection the way a
// restarting Redis does: it closes its end (FIN), then resets (RST) what
// the client sends after it. The client's socket, which read nothing since
// (an idle connection waits for nothing), is then in CLOSE_WAIT with EPIPE
// pending, and the next write(2) raises SIGPIPE. Under the default
// disposition that ends the process: the command must fail instead.
TEST_CASE("redis broker: a server gone from under an idle connection fails the next command and never raises SIGPIPE",
          "[broker][redis]") {
    ::signal(SIGPIPE, SIG_DFL);  // as in a service that did not ignore it
    int port = 0;
    const int listener = bound_loopback_socket(port);
    REQUIRE(::listen(listener, 4) == 0);

    // Answers PINGs until told to leave, then goes away: FIN, a pause, RST.
    std::atomic<bool> leave{false}, gone{false};
    std::jthread server([&] {
        const int c = ::accept(listener, nullptr, nullptr);
        if (c < 0) return;
        std::string got;
        while (!leave) {
            pollfd p{c, POLLIN, 0};
            if (::poll(&p, 1, 20) <= 0) continue;
            char buf[256];
            const auto n = ::read(c, buf, sizeof buf);
            if (n <= 0) break;
            got.append(buf, static_cast<std::size_t>(n));
            for (std::size_t at; (at = got.find("PING\r\n")) != std::string::npos;) {
                got.erase(0, at + 6);
                (void)!::write(c, "+PONG\r\n", 7);
            }
        }
        ::shutdown(c, SHUT_WR);
        std::this_thread::sleep_for(100ms);
        const linger reset{1, 0};
        ::setsockopt(c, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        ::close(c);
        gone = true;
    });

    asio::io_context ioc;
    auto config = test_config();
    config.port = port;
    boong::RedisBroker broker(ioc.get_executor(), config);
    std::optional<boong::Error> error;
    bool opened = false;
    boong::test::run(ioc, [&]() -> asio::awaitable<void> {
        co_await broker.async_open(asio::use_awaitable);
        opened = true;
        leave = true;
        asio::steady_timer t(co_await asio::this_coro::executor);
        for (int i = 0; i < 100 && !gone; ++i) {
            t.expires_after(20ms);
            co_await t.async_wait(asio::use_awaitable);
        }
        t.expires_after(100ms);  // the RST arrives
        co_await t.async_wait(asio::use_awaitable);
        std::vector<std::string> ping{"PING"};  // a named argument: GCC 12 and temporaries in co_await
        try {
            co_await broker.async_command(std::move(ping), asio::use_awaitable);
        } catch (const boong::Error& e) {
            error = e;
        }
    });
    server.join();
    ::close(listener);
    REQUIRE(opened);
    REQUIRE(gone);
    REQUIRE(error.has_value());
    CHECK(error->code() == boong::errc::broker_unavailable);
    CHECK_THAT(std::string(error->what()), Catch::Contains("127.0.0.1:" + std::to_string(config.port)));
    sigset_t pending;
    REQUIRE(::sigpending(&pending) == 0);
    CHECK(!sigismember(&pending, SIGPIPE));  // consumed, not left to strike later
}

TEST_CASE("redis broker: undecodable entries go to the dead letters as they arrived, with the reason; the consumer "
          "keeps going",
          "[broker][redis]") {
    RedisBrokerFixture fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("garbage");
    const auto group = fx.unique("g");
    const auto good = bc::make_event(ids, "Good", {{"n", 1}});
    std::vector<std::string> handled;
    std::vector<boong::DeadLetter> dead;
    boong::json dlq_entries;
    std::string good_id;
    boong::json pending;
    bool stopped = false;
    // Raw entries, as another producer (or a bug) might write them.
    const std::vector<std::vector<std::string>> raw = {
        {"hello", "world"},
        {"event_id", ids.next(), "type", "T", "schema_version", "1", "payload", "{}", "metadata", "{}"},
        {"bytes", std::string("\xff\xfe\0z", 4)},
        // The parser's message quotes the bad byte: the reason must stay writable.
        {"event", "{\"payload\":\"\xff\"}"},
    };
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            auto& b = fx.broker();
            for (const auto& fields : raw) {
                std::vector<std::string> argv{"XADD", topic, "*"};
                argv.insert(argv.end(), fields.begin(), fields.end());
                co_await b.async_command(std::move(argv), asio::use_awaitable);
            }
            good_id = co_await bc::publish(b, topic, good);
            auto o = bc::consumer_options(topic, group, "c1");
            o.settings.visibility_timeout = fx.short_timeout();
            auto c = bc::start_consumer(fx, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                handled.push_back(d.message_id);
                co_return;
            });
            for (int i = 0; i < 500 && dead.size() < raw.size(); ++i) {
                dead = co_await b.async_dead_letters(topic, "", 100, asio::use_awaitable);
                co_await boong::test::sleep_for(10ms);
            }
            co_await bc::until([&] { return !handled.empty(); });
            co_await boong::test::sleep_for(4 * fx.short_timeout());  // nothing loops
            stopped = co_await c->stop();
            dead = co_await b.async_dead_letters(topic, "", 100, asio::use_awaitable);
            std::vector<std::string> argv{"XPENDING", topic, group};
            pending = co_await b.async_command(std::move(argv), asio::use_awaitable);
            std::vector<std::string> range{"XRANGE", boong::dead_letter_topic(topic), "-", "+"};
            dlq_entries = co_await b.async_command(std::move(range), asio::use_awaitable);
        },
        std::chrono::seconds(30));
    CHECK(stopped);
    CHECK(handled == std::vector<std::string>{good_id});
    REQUIRE(dead.size() == raw.size());
    for (const auto& d : dead) {
        CHECK(d.source_topic == topic);
        CHECK(d.group == group);
        CHECK(d.delivery_count == 1);
        CHECK_FALSE(d.event);
        CHECK_FALSE(d.raw.empty());
        CHECK_THAT(d.reason, Catch::StartsWith("undecodable message: "));
        CHECK(d.at > boong::Clock::now() - std::chrono::minutes(5));
    }
    CHECK_THAT(dead[0].reason, Catch::Contains("the field 'event' is missing"));
    CHECK_THAT(dead[0].raw, Catch::Contains("\"hello\":\"world\""));
    CHECK_THAT(dead[1].reason, Catch::Contains("the field 'event' is missing"));
    CHECK_THAT(dead[3].reason, Catch::Contains("not valid JSON"));
    // Kept as they arrived, byte for byte, with the record as one more field.
    REQUIRE(dlq_entries.is_array());
    REQUIRE(dlq_entries.size() == raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i) {
        INFO("entry " << i);
        const auto& fields = dlq_entries[i].at(1);
        REQUIRE(fields.size() == raw[i].size() + 2);
        for (std::size_t k = 0; k < raw[i].size(); ++k) {
            // async_command replaces bytes that are not UTF-8 (entry 2 and 3): compare what it can show.
            if (i < 2) CHECK(fields[k] == raw[i][k]);
        }
        CHECK(fields[raw[i].size()] == "dead_letter");
    }
    REQUIRE(pending.is_array());
    CHECK(pending.at(0) == 0);  // everything acknowledged on the source stream
}

TEST_CASE("redis broker: a consumer that dies without acking loses nothing: another reclaims after the "
          "visibility timeout",
          "[broker][redis]") {
    RedisBrokerFixture fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("die");
    const auto group = fx.unique("g");
    constexpr int count = 10;
    std::set<std::string> published, by_a, by_b;
    std::vector<int> b_counts;
    bool stopped = false;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            for (int i = 0; i < count; ++i)
                published.insert(co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "Job", i)));
            // "a" takes five messages and hangs on them: its process "dies"
            // (a stop with no grace leaves them unacked).
            auto o = bc::consumer_options(topic, group, "a");
            o.settings.visibility_timeout = 600ms;
            o.settings.concurrency = 5;
            o.settings.shutdown_grace = 0ms;
            auto a = bc::start_consumer(fx, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                by_a.insert(d.message_id);
                co_await boong::test::sleep_for(std::chrono::hours(1));
            });
            co_await bc::until([&] { return by_a.size() >= 5; });
            co_await a->stop();
            o.consumer = "b";
            o.settings.concurrency = 2;
            auto b = bc::start_consumer(fx, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                by_b.insert(d.message_id);
                b_counts.push_back(d.delivery_count);
                co_return;
            });
            co_await bc::until([&] { return by_b.size() >= count; }, 10s);
            stopped = co_await b->stop();
        },
        std::chrono::seconds(30));
    CHECK(stopped);
    CHECK(by_a.size() == 5);
    CHECK(by_b == published);  // the five "a" held, reclaimed, and the five it never took
    CHECK(std::count(b_counts.begin(), b_counts.end(), 2) == 5);
}

TEST_CASE("redis broker: a Redis restart while messages flow loses no published message and redelivers no "
          "acknowledged one",
          "[broker][redis][restart]") {
    OwnRedis server;
    asio::io_context ioc;
    auto config = test_config();
    config.port = server.port();
    config.connect_timeout = 1000ms;
    config.command_timeout = 5000ms;  // publishes retry through the restart for this long
    boong::RedisBroker broker(ioc.get_executor(), config);
    boong::IdGenerator ids;
    const std::string topic = "restart", group = "g";
    std::vector<std::string> phase1, phase2;  // ids publish returned
    std::vector<std::string> publish_errors;
    std::map<std::string, int> handled;  // message id -> times handled
    boong::json pending_before;
    std::atomic<bool> restarted{false}, restart_ok{false};
    std::thread restarter;
    std::optional<std::size_t> published_at_restart;  // phase-2 publishes done when the server was back
    std::atomic<std::size_t> published_so_far{0};  // phase-2 publishes done, for the restarter
    std::atomic<std::size_t> killed_after{0};           // how many had gone through when it killed the server
    bool stopped = false;
    boong::test::run(
        ioc,
        [&]() -> asio::awaitable<void> {
            auto o = bc::consumer_options(topic, group, "c1");
            o.settings.visibility_timeout = 1000ms;
            o.settings.concurrency = 4;
            auto c = std::make_unique<bc::BackgroundConsumer>(ioc, broker, o,
                                                              [&](const boong::Delivery& d) -> asio::awaitable<void> {
                                                                  ++handled[d.message_id];
                                                                  co_return;
                                                              });
            // Phase 1: published, handled and acknowledged before the restart.
            for (int i = 0; i < 100; ++i) phase1.push_back(co_await bc::publish(broker, topic, bc::numbered_event(ids, "P1", i)));
            co_await bc::until([&] { return handled.size() >= phase1.size(); }, 10s);
            for (int i = 0; i < 100; ++i) {
                std::vector<std::string> argv{"XPENDING", topic, group};
                pending_before = co_await broker.async_command(std::move(argv), asio::use_awaitable);
                if (pending_before.at(0) == 0) break;
                co_await boong::test::sleep_for(20ms);
            }
            // Phase 2: publish continuously while the server is killed and
            // restarted, once some have gone through (by count, not by time:
            // a loaded machine publishes slowly).
            restarter = std::thread([&] {
                const auto give_up = std::chrono::steady_clock::now() + 10s;
                while (published_so_far < 20 && std::chrono::steady_clock::now() < give_up) {
                    std::this_thread::sleep_for(5ms);
                }
                killed_after = published_so_far.load();
                server.kill();
                std::this_thread::sleep_for(300ms);
                restart_ok = server.start();
                restarted = true;
            });
            for (int i = 0; i < 300 && !(restarted && i >= 200); ++i) {
                if (restarted && !published_at_restart) published_at_restart = phase2.size();
                try {
                    phase2.push_back(co_await bc::publish(broker, topic, bc::numbered_event(ids, "P2", i)));
                    ++published_so_far;
                } catch (...) {
                    publish_errors.push_back(error_text(std::current_exception()));
                }
                co_await boong::test::sleep_for(2ms);
            }
            co_await bc::until([&] { return restarted.load(); }, 10s);
            std::function<bool()> all_handled = [&] {
                for (const auto& id : phase2)
                    if (!handled.contains(id)) return false;
                return true;
            };
            co_await bc::until(all_handled, 20s);
            stopped = co_await c->stop();
        },
        std::chrono::seconds(60));
    if (restarter.joinable()) restarter.join();
    REQUIRE(restart_ok);
    CHECK(stopped);
    REQUIRE(pending_before.is_array());
    CHECK(pending_before.at(0) == 0);  // phase 1 fully acknowledged before the kill
    CHECK(phase1.size() == 100);
    CHECK(phase2.size() >= 150);
    // The restart happened while publishing: some went before, some after.
    REQUIRE(published_at_restart.has_value());
    CHECK(killed_after >= 20);  // else publishing stalled for 10 s before the kill
    CHECK(*published_at_restart < phase2.size());
    INFO("publish errors: " << publish_errors.size() << (publish_errors.empty() ? "" : ", first: " + publish_errors[0]));
    CHECK(publish_errors.empty());  // retried through the restart
    std::size_t lost = 0;
    for (const auto& id : phase2) lost += !handled.contains(id);
    CHECK(lost == 0);
    std::size_t again = 0;
    for (const auto& id : phase1) again += handled[id] != 1;
    CHECK(again == 0);
}

namespace {

// Events whose payload and metadata exercise every corner of JSON text:
// escapes, control characters, UTF-8 of every length, numbers at their
// limits, keys around and equal to the typed metadata fields, timestamps
// before 1970 and at the clock's limits, values longer than any buffer on the way.
std::vector<boong::EventData> tricky_events(boong::IdGenerator& ids) {
    using boong::json;
    std::string controls;
    for (int c = 0; c < 0x20; ++c) controls += static_cast<char>(c);
    const std::string texts[] = {"",
                                 "plain",
                                 controls,
                                 "quote \" backslash \\ slash / del \x7f",
                                 "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf \xed\x9f\xbf",
                                 std::string(3000, 'x') + "\n" + std::string(1500, '"'),
                                 "eight by\"eight by\\eight by"};
    std::vector<json> payloads;
    for (const auto& t : texts) payloads.push_back(json{{"text", t}, {t, t}});
    payloads.push_back(json::object());
    payloads.push_back(json::array());
    payloads.push_back(json(nullptr));
    payloads.push_back(json("just a string"));
    payloads.push_back(json{{"min", std::numeric_limits<std::int64_t>::min()},
                            {"max", std::numeric_limits<std::int64_t>::max()},
                            {"umax", std::numeric_limits<std::uint64_t>::max()},
                            {"zero", 0},
                            {"neg", -1}});
    payloads.push_back(json{{"floats", {0.1, 1.0, -0.0, 1e300, 5e-324, 123456789.125, std::nan(""), HUGE_VAL}}});
    payloads.push_back(
        json{{"nested", {{"a", {1, {2, {3, json::object(), json::array()}}}}, {"b", {true, false, nullptr}}}}});
    // Random documents (a fixed seed: a failure reproduces).
    const std::string words[] = {"",           "plain",           "q\"b\\s/",         "caf\xc3\xa9",
                                 "\xf0\x9f\x98\x80", std::string(1, '\0'), "\x01\x1f\n\t\x7f", "eight by\"eight by"};
    std::mt19937_64 rng(20240611);
    std::function<json(int)> random_json = [&](int depth) -> json {
        switch (rng() % (depth > 3 ? 5 : 7)) {
        case 0: return nullptr;
        case 1: return rng() % 2 == 0;
        case 2: return static_cast<std::int64_t>(rng()) >> (rng() % 64);
        case 3: return static_cast<double>(static_cast<std::int64_t>(rng() % 2000000) - 1000000) / 64;
        case 4: return words[rng() % std::size(words)] + words[rng() % std::size(words)];
        case 5: {
            json a = json::array();
            for (int i = static_cast<int>(rng() % 4); i > 0; --i) a.push_back(random_json(depth + 1));
            return a;
        }
        default: {
            json o = json::object();
            for (int i = static_cast<int>(rng() % 5); i > 0; --i)
                o[words[rng() % std::size(words)]] = random_json(depth + 1);
            return o;
        }
        }
    };
    for (int i = 0; i < 200; ++i) payloads.push_back(random_json(0));

    const boong::Clock::time_point stamps[] = {
        boong::Clock::time_point{},
        boong::Clock::time_point(std::chrono::microseconds(-1)),
        boong::Clock::time_point(std::chrono::microseconds(-315'619'200'000'001)),  // 1960
        boong::Clock::time_point::min(),  // 1677 with nanosecond clocks
        boong::Clock::time_point::max(),  // 2262
        boong::Clock::time_point(std::chrono::nanoseconds(1'700'000'000'123'456'789)),
        boong::Clock::now()};
    const json extras[] = {json(nullptr),
                           json::object(),
                           json{{"a", 1}, {"correlation_id", "dropped"}, {"d", {{"x", texts[3]}}}, {"timestamp", 0},
                                {"zz", texts[4]}, {"causation_id", 2}, {"causation", "kept"}, {"correlation_idx", 3}},
                           json{{controls, texts[5]}}};
    std::vector<boong::EventData> events;
    for (std::size_t i = 0; i < payloads.size(); ++i) {
        boong::EventData e;
        e.event_id = ids.next();
        e.type = "Tricky" + std::to_string(i);
        e.schema_version = static_cast<int>(1 + i * 7919 % 100000);
        e.payload = payloads[i];
        e.metadata.correlation_id = i % 3 == 0 ? std::string() : texts[i % std::size(texts)];
        e.metadata.causation_id = i % 4 == 0 ? std::string() : texts[(i + 1) % std::size(texts)];
        e.metadata.timestamp = stamps[i % std::size(stamps)];
        e.metadata.extra = extras[i % std::size(extras)];
        events.push_back(std::move(e));
    }
    return events;
}

}  // namespace

// The `event` field the broker writes for `e`: its envelope as one JSON object,
// keys in a fixed order, each value byte for byte what nlohmann::json writes.
std::string expected_event_field(const boong::EventData& e) {
    using boong::json;
    return R"({"event_id":)" + json(e.event_id).dump() + R"(,"type":)" + json(e.type).dump() +
           R"(,"schema_version":)" + std::to_string(e.schema_version) + R"(,"metadata":)" + json(e.metadata).dump() +
           R"(,"payload":)" + e.payload.dump() + "}";
}

TEST_CASE("redis broker: the envelope is one field, 'event', exactly what nlohmann::json writes; text that is not "
          "UTF-8 is refused",
          "[broker][redis]") {
    RedisBrokerFixture fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("envelope");
    const auto events = tricky_events(ids);
    // Invalid UTF-8 anywhere the envelope holds JSON text: refused, nothing written.
    std::vector<boong::EventData> invalid;
    for (std::string bad : {std::string("\xff"), std::string("a\xc3("), std::string("\xed\xa0\x80"),
                            std::string("\xc0\xaf"), std::string("\xf4\x90\x80\x80"), std::string("end\xe2\x82"),
                            std::string("0123456789\xff"), std::string("01234567\xe2\x82")}) {
        auto e = bc::make_event(ids, "Bad", boong::json{{"ok", bad}});
        invalid.push_back(e);
        e.payload = boong::json{{bad, 1}};
        invalid.push_back(e);
        e.payload = boong::json::object();
        e.metadata.correlation_id = bad;
        invalid.push_back(e);
        e.metadata.correlation_id.clear();
        e.metadata.extra = boong::json{{"k", {bad}}};
        invalid.push_back(e);
        e.metadata.extra = nullptr;
        e.type = "Bad" + bad;  // the type is a JSON string in the envelope too
        invalid.push_back(e);
    }
    std::vector<std::string> refusals;
    boong::json entries;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            for (const auto& e : events) co_await fx.broker().async_publish(topic, e, asio::use_awaitable);
            for (const auto& e : invalid) {
                try {
                    co_await fx.broker().async_publish(topic, e, asio::use_awaitable);
                    refusals.push_back("accepted");
                } catch (const boong::Error& err) {
                    refusals.push_back(err.code() == boong::errc::invalid_argument ? std::string(err.what())
                                                                                  : "wrong code");
                }
            }
            std::vector<std::string> argv{"XRANGE", topic, "-", "+"};
            entries = co_await fx.broker().async_command(std::move(argv), asio::use_awaitable);
        },
        std::chrono::seconds(30));
    for (const auto& r : refusals) CHECK_THAT(r, Catch::Contains("cannot be written as JSON"));
    REQUIRE(entries.is_array());
    REQUIRE(entries.size() == events.size());
    for (std::size_t i = 0; i < events.size(); ++i) {
        const auto& e = events[i];
        INFO("event " << i << ": " << e.payload.dump() << " / " << boong::json(e.metadata).dump());
        const auto& fields = entries[i].at(1);
        REQUIRE(fields.size() == 2);
        CHECK(fields[0] == "event");
        CHECK(fields[1] == expected_event_field(e));
        // The same object the library's own EventData JSON form gives.
        CHECK(boong::json::parse(fields[1].get<std::string>()) == boong::json::parse(boong::json(e).dump()));
    }
}

TEST_CASE("redis broker: every tricky event comes back from the one-field envelope as it was written",
          "[broker][redis]") {
    RedisBrokerFixture fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("roundtrip");
    const auto events = tricky_events(ids);
    std::vector<boong::EventData> got;
    bool stopped = false;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            for (const auto& e : events) co_await fx.broker().async_publish(topic, e, asio::use_awaitable);
            auto c = bc::start_consumer(fx, bc::consumer_options(topic, fx.unique("g"), "c1"),
                                        [&](const boong::Delivery& d) -> asio::awaitable<void> {
                                            got.push_back(d.event);
                                            co_return;
                                        });
            co_await bc::until([&] { return got.size() >= events.size(); }, std::chrono::seconds(20));
            stopped = co_await c->stop();
        },
        std::chrono::seconds(60));
    CHECK(stopped);
    REQUIRE(got.size() == events.size());
    std::sort(got.begin(), got.end(), [](const auto& a, const auto& b) { return a.event_id < b.event_id; });
    auto sent = events;
    std::sort(sent.begin(), sent.end(), [](const auto& a, const auto& b) { return a.event_id < b.event_id; });
    for (std::size_t i = 0; i < sent.size(); ++i) {
        const auto& e = sent[i];
        INFO("event " << e.type << ": " << e.payload.dump() << " / " << boong::json(e.metadata).dump());
        CHECK(got[i].event_id == e.event_id);
        CHECK(got[i].type == e.type);
        CHECK(got[i].schema_version == e.schema_version);
        // JSON text keeps no NaN or infinity (they are written as null).
        CHECK(got[i].payload == boong::json::parse(e.payload.dump()));
        CHECK(boong::json(got[i].metadata) == boong::json::parse(boong::json(e.metadata).dump()));
    }
}

TEST_CASE("redis broker: a dead letter is the entry as it arrived plus its record; a consumer of the dead-letter "
          "topic sees the record in metadata.extra",
          "[broker][redis]") {
    RedisBrokerFixture fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("refused");
    const auto group = fx.unique("g");
    auto rejected = bc::make_event(ids, "Refused", boong::json::array({1, 2}));
    rejected.metadata.correlation_id.clear();
    rejected.metadata.extra = nullptr;
    std::vector<boong::Delivery> dead;
    boong::json source_entries, dlq_entries;
    bool stopped = false;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            auto& b = fx.broker();
            co_await bc::publish(b, topic, rejected);
            std::vector<std::string> source_range{"XRANGE", topic, "-", "+"};
            source_entries = co_await b.async_command(std::move(source_range), asio::use_awaitable);
            auto c = bc::start_consumer(fx, bc::consumer_options(topic, group, "c1"),
                                        [&](const boong::Delivery&) -> asio::awaitable<void> {
                                            throw boong::Rejection("refused");
                                        });
            auto reader = bc::start_consumer(
                fx, bc::consumer_options(boong::dead_letter_topic(topic), fx.unique("dlq"), "r"),
                [&](const boong::Delivery& d) -> asio::awaitable<void> {
                    dead.push_back(d);
                    co_return;
                });
            co_await bc::until([&] { return !dead.empty(); });
            stopped = co_await c->stop();
            stopped = co_await reader->stop() && stopped;
            std::vector<std::string> argv{"XRANGE", boong::dead_letter_topic(topic), "-", "+"};
            dlq_entries = co_await b.async_command(std::move(argv), asio::use_awaitable);
        },
        std::chrono::seconds(30));
    CHECK(stopped);
    REQUIRE(dead.size() == 1);
    bc::check_same_event(dead[0].event, rejected);
    const auto& dl = dead[0].event.metadata.extra.at("dead_letter");
    CHECK(dl.value("reason", "") == "refused");
    CHECK(dl.value("source_topic", "") == topic);
    CHECK(dl.value("group", "") == group);
    REQUIRE(dlq_entries.is_array());
    REQUIRE(dlq_entries.size() == 1);
    const auto& fields = dlq_entries[0].at(1);
    REQUIRE(fields.size() == 4);
    CHECK(fields[0] == "event");
    CHECK(fields[1] == source_entries.at(0).at(1).at(1));  // byte for byte what was published
    CHECK(fields[2] == "dead_letter");
    CHECK(boong::json::parse(fields[3].get<std::string>()) == dl);
}

TEST_CASE("redis broker: malformed one-field envelopes go to the dead letters with a reason naming what is wrong",
          "[broker][redis]") {
    RedisBrokerFixture fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("bad-event");
    const auto group = fx.unique("g");
    const auto good = bc::make_event(ids, "Good", {{"n", 1}});
    const std::string id = ids.next();
    const std::string meta = R"("metadata":{"timestamp":"2025-01-02T03:04:05.000006Z"})";
    // Each malformed `event` value, and what its reason must mention.
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"{not json", "the field 'event' is not valid JSON"},
        {"[1,2]", "the field 'event' is a JSON array, not an object"},
        {std::string("{\"event_id\":\"\xff\"}"), "the field 'event' is not valid JSON"},
        {R"({"event_id":")" + id + R"(","type":"T","schema_version":1,)" + meta + "}", "has no key 'payload'"},
        {R"({"type":"T","schema_version":1,"payload":{},)" + meta + "}", "has no key 'event_id'"},
        {R"({"event_id":7,"type":"T","schema_version":1,"payload":{},)" + meta + "}",
         "event_id in the field 'event' is a JSON number, not a string"},
        {R"({"event_id":"not-a-uuid","type":"T","schema_version":1,"payload":{},)" + meta + "}",
         "event_id 'not-a-uuid' is not a UUID"},
        {R"({"event_id":")" + id + R"(","type":"","schema_version":1,"payload":{},)" + meta + "}", "type is empty"},
        {R"({"event_id":")" + id + R"(","type":["T"],"schema_version":1,"payload":{},)" + meta + "}",
         "type in the field 'event' is a JSON array, not a string"},
        {R"({"event_id":")" + id + R"(","type":"T","schema_version":0,"payload":{},)" + meta + "}",
         "schema_version 0 is not an integer >= 1"},
        {R"({"event_id":")" + id + R"(","type":"T","schema_version":"1","payload":{},)" + meta + "}",
         "schema_version \"1\" is not an integer >= 1"},
        {R"({"event_id":")" + id + R"(","type":"T","schema_version":1.5,"payload":{},)" + meta + "}",
         "schema_version 1.5 is not an integer >= 1"},
        {R"({"event_id":")" + id + R"(","type":"T","schema_version":4294967297,"payload":{},)" + meta + "}",
         "schema_version 4294967297 is not an integer >= 1"},
        {R"({"event_id":")" + id + R"(","type":"T","schema_version":1,"payload":{},"metadata":[]})",
         "metadata is not valid"},
        {R"({"event_id":")" + id + R"(","type":"T","schema_version":1,"payload":{},"metadata":{"timestamp":"x"}})",
         "metadata is not valid"},
    };
    std::vector<std::string> handled;
    std::vector<boong::DeadLetter> dead;
    std::string good_id;
    boong::json pending;
    bool stopped = false;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            auto& b = fx.broker();
            for (const auto& [value, reason] : cases) {
                std::vector<std::string> argv{"XADD", topic, "*", "event", value};
                co_await b.async_command(std::move(argv), asio::use_awaitable);
            }
            std::vector<std::string> unrelated{"XADD", topic, "*", "hello", "world"};
            co_await b.async_command(std::move(unrelated), asio::use_awaitable);
            good_id = co_await bc::publish(b, topic, good);
            auto c = bc::start_consumer(fx, bc::consumer_options(topic, group, "c1"),
                                        [&](const boong::Delivery& d) -> asio::awaitable<void> {
                                            handled.push_back(d.message_id);
                                            co_return;
                                        });
            for (int i = 0; i < 1000 && dead.size() < cases.size() + 1; ++i) {
                dead = co_await b.async_dead_letters(topic, "", 100, asio::use_awaitable);
                co_await boong::test::sleep_for(10ms);
            }
            co_await bc::until([&] { return !handled.empty(); });
            stopped = co_await c->stop();
            std::vector<std::string> argv{"XPENDING", topic, group};
            pending = co_await b.async_command(std::move(argv), asio::use_awaitable);
        },
        std::chrono::seconds(30));
    CHECK(stopped);
    CHECK(handled == std::vector<std::string>{good_id});
    REQUIRE(dead.size() == cases.size() + 1);
    for (std::size_t i = 0; i < dead.size(); ++i) {
        const auto& d = dead[i];
        INFO("entry " << i << ": " << d.reason);
        CHECK_FALSE(d.event);
        CHECK_THAT(d.reason, Catch::StartsWith("undecodable message: "));
        if (i < cases.size()) {
            CHECK_THAT(d.reason, Catch::Contains(cases[i].second));
            // The raw value, for whoever repairs it (bytes that are not UTF-8 replaced).
            if (i != 2) CHECK(d.raw == cases[i].first);
        } else {
            CHECK_THAT(d.reason, Catch::Contains("the field 'event' is missing"));
        }
    }
    REQUIRE(pending.is_array());
    CHECK(pending.at(0) == 0);
}

TEST_CASE("redis broker: a message that kills its consumer's process is quarantined after max_deliveries crashes",
          "[broker][redis][poison]") {
    RedisBrokerFixture fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("crashing");
    const auto group = fx.unique("g");
    const int max_deliveries = 3;
    std::string poison_id, good_id;
    const auto poison = bc::make_event(ids, "Poison", {{"crash", true}});
    const auto good = bc::make_event(ids, "Good", {{"crash", false}});
    boong::test::run(fx.ioc(), [&]() -> asio::awaitable<void> {
        poison_id = co_await bc::publish(fx.broker(), topic, poison);
        good_id = co_await bc::publish(fx.broker(), topic, good);
    });
    const auto config = test_config();
    int crashes = 0;
    bool survived = false;
    for (int life = 0; life < 10 && !survived; ++life) {
        const pid_t pid = fork();
        if (pid == 0) {
            const std::string port = std::to_string(config.port), max = std::to_string(max_deliveries);
            execl(POISON_CONSUMER_PATH, POISON_CONSUMER_PATH, config.host.c_str(), port.c_str(), topic.c_str(),
                  group.c_str(), "c1", max.c_str(), "200", static_cast<char*>(nullptr));
            _exit(127);
        }
        // A crash comes within a redelivery or two; a process alive after
        // 3 s has got past the poison.
        int status = 0;
        const auto until = std::chrono::steady_clock::now() + 3s;
        while (::waitpid(pid, &status, WNOHANG) == 0 && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(20ms);
        if (std::chrono::steady_clock::now() >= until) {
            survived = true;
            ::kill(pid, SIGTERM);
            ::waitpid(pid, &status, 0);
            CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
        } else {
            REQUIRE(WIFSIGNALED(status));
            CHECK(WTERMSIG(status) == SIGABRT);
            ++crashes;
        }
    }
    CHECK(survived);
    CHECK(crashes == max_deliveries);  // each delivery crashed once; the next reclaim quarantined it
    std::vector<boong::DeadLetter> dead;
    boong::json pending;
    boong::test::run(fx.ioc(), [&]() -> asio::awaitable<void> {
        dead = co_await fx.broker().async_dead_letters(topic, "", 10, asio::use_awaitable);
        std::vector<std::string> argv{"XPENDING", topic, group};
        pending = co_await fx.broker().async_command(std::move(argv), asio::use_awaitable);
    });
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].source_message_id == poison_id);
    CHECK(dead[0].delivery_count == max_deliveries);
    CHECK_THAT(dead[0].reason, Catch::StartsWith("quarantined: 3 deliveries never settled"));
    REQUIRE(dead[0].event.has_value());
    CHECK(dead[0].event->payload == boong::json{{"crash", true}});
    REQUIRE(pending.is_array());
    CHECK(pending.at(0) == 0);  // the good message after it was handled and acknowledged
}

namespace {

// A broker whose streams keep about 10 entries (MAXLEN ~ trims whole nodes
// of 100 entries, so a stream holds up to a few hundred).
struct TrimmingFixture : RedisBrokerFixture {
    boong::RedisBroker limited_{ioc_.get_executor(), limited_config()};
    boong::RedisBroker& broker() { return limited_; }
    static boong::RedisBrokerConfig limited_config() {
        auto c = test_config();
        c.max_len = 10;
        return c;
    }
};

// What the consumers told about trimmed messages.
struct TrimmedObserver : boong::Observer {
    std::vector<std::size_t> unread;  // consumer_trimmed_unread, in order
    std::size_t pending = 0;          // consumer_trimmed_pending, summed
    void consumer_trimmed_unread(std::string_view, std::string_view, std::size_t n) override { unread.push_back(n); }
    void consumer_trimmed_pending(std::string_view, std::string_view, std::size_t n) override { pending += n; }
};

asio::awaitable<boong::ConsumerGroupStatus> group_status(boong::RedisBroker& broker, const std::string& topic,
                                                         const std::string& group) {
    auto groups = co_await broker.async_consumer_groups(topic, asio::use_awaitable);
    for (auto& g : groups)
        if (g.group == group) co_return g;
    throw std::runtime_error("no group " + group + " on " + topic);
}

}  // namespace

TEST_CASE("redis broker: messages the length limit trims before a group reads them are counted and reported, "
          "never lost silently",
          "[broker][redis][trim]") {
    TrimmingFixture fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("trim");
    const auto slow = fx.unique("slow");
    const auto late = fx.unique("late");
    auto observer = std::make_shared<TrimmedObserver>();
    constexpr std::size_t first = 5, burst = 500;
    std::size_t handled_first = 0, handled_after = 0, handled_late = 0;
    boong::ConsumerGroupStatus behind, caught_up, fresh;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            // "slow" reads the first five, then stops while 500 more arrive.
            auto o = bc::consumer_options(topic, slow, "c1");
            auto c = bc::start_consumer(fx, o, [&](const boong::Delivery&) -> asio::awaitable<void> {
                ++handled_first;
                co_return;
            });
            for (std::size_t i = 0; i < first; ++i)
                co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "E", static_cast<int>(i)));
            co_await bc::until([&] { return handled_first == first; });
            co_await c->stop();
            for (std::size_t i = 0; i < burst; ++i)
                co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "E", static_cast<int>(first + i)));
            // What it never read is either still there (lag) or trimmed away.
            behind = co_await group_status(fx.broker(), topic, slow);

            // Its next consumer reads what is left and reports the loss.
            o.settings.observer = observer;
            o.settings.backlog_interval = 20ms;
            c = bc::start_consumer(fx, o, [&](const boong::Delivery&) -> asio::awaitable<void> {
                ++handled_after;
                co_return;
            });
            co_await bc::until([&] { return handled_after == behind.lag.value_or(0) && !observer->unread.empty(); });
            co_await c->stop();
            caught_up = co_await group_status(fx.broker(), topic, slow);

            // A group created after the trimming lost nothing: those entries were gone before it existed.
            auto l = bc::start_consumer(fx, bc::consumer_options(topic, late, "c1"),
                                        [&](const boong::Delivery&) -> asio::awaitable<void> {
                                            ++handled_late;
                                            co_return;
                                        });
            co_await bc::until([&] { return handled_late == behind.lag.value_or(0); });
            co_await l->stop();
            fresh = co_await group_status(fx.broker(), topic, late);
        },
        std::chrono::seconds(60));
    REQUIRE(behind.lag);
    REQUIRE(behind.trimmed);
    CHECK(*behind.trimmed > 0);
    CHECK(*behind.lag < burst);
    CHECK(*behind.lag + *behind.trimmed == burst);  // every unread message accounted for
    CHECK(handled_after == *behind.lag);
    // Read to the end: nothing unread, and the loss stays on record.
    CHECK(caught_up.lag == std::size_t{0});
    CHECK(caught_up.trimmed == behind.trimmed);
    REQUIRE_FALSE(observer->unread.empty());
    CHECK(observer->unread.front() == *behind.trimmed);
    CHECK(fresh.lag == std::size_t{0});
    CHECK(fresh.trimmed == std::size_t{0});
}

TEST_CASE("redis broker: a delivered message trimmed before it could be delivered again is reported as lost",
          "[broker][redis][trim]") {
    TrimmingFixture fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("trim-pending");
    const auto group = fx.unique("g");
    auto observer = std::make_shared<TrimmedObserver>();
    std::set<std::string> by_a;
    std::size_t by_b = 0, trimmed_delivered = 0;
    boong::ConsumerGroupStatus after;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            for (int i = 0; i < 5; ++i) co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "Job", i));
            // "a" takes the five and dies holding them (a stop with no grace).
            auto o = bc::consumer_options(topic, group, "a");
            o.settings.visibility_timeout = 400ms;
            o.settings.concurrency = 5;
            o.settings.shutdown_grace = 0ms;
            auto a = bc::start_consumer(fx, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                by_a.insert(d.message_id);
                co_await boong::test::sleep_for(std::chrono::hours(1));
            });
            co_await bc::until([&] { return by_a.size() == 5; });
            co_await a->stop();
            // Enough new entries that the five are trimmed away.
            for (int i = 0; i < 400; ++i) co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "Job", i));
            o.consumer = "b";
            o.settings.observer = observer;
            auto b = bc::start_consumer(fx, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                if (by_a.count(d.message_id)) ++trimmed_delivered;
                ++by_b;
                co_return;
            });
            co_await bc::until([&] { return observer->pending >= 5; }, 10s);
            // Then b reads what is left (the limit trimmed most of the 400 too).
            for (int i = 0; i < 500; ++i) {
                after = co_await group_status(fx.broker(), topic, group);
                if (after.lag == std::size_t{0} && after.pending == std::size_t{0}) break;
                co_await boong::test::sleep_for(20ms);
            }
            co_await b->stop();
        },
        std::chrono::seconds(60));
    CHECK(observer->pending == 5);
    CHECK(trimmed_delivered == 0);
    CHECK(by_b > 0);
    // Redis dropped them from the group's pending entries; b handled the rest.
    CHECK(after.pending == std::size_t{0});
    CHECK(after.lag == std::size_t{0});
}

TEST_CASE("redis broker: messages a consumer holds through an outage stay with it when their entries are trimmed, "
          "and are handled once the outage ends (one that then fails becomes a dead letter: it cannot come again)",
          "[broker][redis][trim]") {
    TrimmingFixture fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("trim-held");
    const auto group = fx.unique("g");
    auto observer = std::make_shared<TrimmedObserver>();
    std::vector<std::string> published;
    std::multiset<std::string> handled;
    bool down = true;
    bool stopped = false;
    std::vector<boong::DeadLetter> letters;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            for (int i = 0; i < 3; ++i)
                published.push_back(co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "Charge", i)));
            auto o = bc::consumer_options(topic, group, "c1");
            o.settings.visibility_timeout = 300ms;
            o.settings.concurrency = 3;  // all three fetched, then held
            o.settings.observer = observer;
            o.settings.outage_backoff = boong::RetryPolicy{1, 10ms, 2.0, 40ms, 0.2};
            auto c = bc::start_consumer(fx, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                if (down) throw boong::Unavailable("the payment gateway does not answer");
                if (d.message_id == published[2]) throw std::runtime_error("card declined");
                handled.insert(d.message_id);
                co_return;
            });
            co_await boong::test::sleep_for(200ms);
            // The three are fetched and held; enough new entries trim them away.
            for (int i = 0; i < 400; ++i)
                co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "Charge", i));
            co_await boong::test::sleep_for(1500ms);  // several holds
            down = false;
            for (int i = 0; i < 250 && letters.empty(); ++i) {
                letters = co_await fx.broker().async_dead_letters(topic, "", 10, asio::use_awaitable);
                co_await boong::test::sleep_for(20ms);
            }
            co_await bc::until([&] { return handled.count(published[0]) && handled.count(published[1]); });
            stopped = co_await c->stop();
        },
        std::chrono::seconds(60));
    CHECK(stopped);
    CHECK(handled.count(published[0]) == 1);
    CHECK(handled.count(published[1]) == 1);
    CHECK(handled.count(published[2]) == 0);
    REQUIRE(letters.size() == 1);
    CHECK(letters[0].source_message_id == published[2]);
    CHECK(letters[0].reason.find("trimmed from the topic") != std::string::npos);
    CHECK(letters[0].reason.find("card declined") != std::string::npos);
    REQUIRE(letters[0].event);
    CHECK(observer->pending == 0);
}
