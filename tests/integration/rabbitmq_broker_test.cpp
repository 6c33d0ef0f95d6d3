// RabbitMqBroker against a real RabbitMQ (3.10): the Broker conformance suite,
// with what RabbitMQ does differently declared by the fixture (and tested
// below), plus what only this backend can show (unroutable publishes, groups
// declared late, an unreachable server, a wrong password, a body that is not
// an envelope), and TLS: the suite again through the node's TLS listener, and
// certificates that must be refused.
//
// scripts/test.sh starts a private node and exports BOONG_TEST_RABBITMQ_HOST,
// _PORT, _USER and _PASSWORD, and for TLS _TLS_PORT, _CA_FILE,
// _CLIENT_CERT_FILE, _CLIENT_KEY_FILE, _OTHER_CA_FILE, _OTHER_CLIENT_CERT_FILE
// and _OTHER_CLIENT_KEY_FILE; without them the tests fail (never skipped).
#include <boong/backends.hpp>
#include <boong/rabbitmq/broker.hpp>

#include "rabbitmq/link.hpp"  // a raw connection, for mischief

#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <atomic>
#include <set>
#include <thread>
#include <vector>

namespace {

std::string env(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v)
        throw std::runtime_error(std::string(name) +
                                 " is not set: run scripts/test.sh, or source scripts/lib/servers.sh and call "
                                 "boong_start_rabbitmq");
    return v;
}

boong::RabbitMqBrokerConfig test_config() {
    boong::RabbitMqBrokerConfig c;
    c.host = env("BOONG_TEST_RABBITMQ_HOST");
    c.port = std::stoi(env("BOONG_TEST_RABBITMQ_PORT"));
    c.username = env("BOONG_TEST_RABBITMQ_USER");
    env("BOONG_TEST_RABBITMQ_PASSWORD");
    c.password_env = "BOONG_TEST_RABBITMQ_PASSWORD";
    c.connect_timeout = std::chrono::milliseconds(3000);
    c.publish_timeout = std::chrono::milliseconds(5000);
    return c;
}

// The node's TLS listener, by the name its certificate carries (localhost;
// the certificate also names 127.0.0.1, but rabbitmq-c 0.11 compares host
// with DNS names only), trusting the CA scripts/lib/servers.sh made.
boong::RabbitMqBrokerConfig tls_config() {
    auto c = test_config();
    c.host = "localhost";
    c.port = std::stoi(env("BOONG_TEST_RABBITMQ_TLS_PORT"));
    c.tls = true;
    c.ca_file = env("BOONG_TEST_RABBITMQ_CA_FILE");
    c.verify_hostname = true;
    return c;
}

// Names unique per process run too: the server outlives the test binary.
std::string run_prefix() {
    static const std::string prefix = "t" + boong::IdGenerator().next().substr(24);
    return prefix;
}

struct RabbitMqBrokerFixture {
    boost::asio::io_context ioc_;
    boong::RabbitMqBroker broker_;

    explicit RabbitMqBrokerFixture(boong::RabbitMqBrokerConfig config = test_config())
        : broker_(ioc_.get_executor(), std::move(config)) {}

    boost::asio::io_context& ioc() { return ioc_; }
    boong::RabbitMqBroker& broker() { return broker_; }
    // Counted across fixtures: two fixture types share the server and the prefix.
    std::string unique(std::string_view base) {
        static int names = 0;
        return run_prefix() + ":" + std::string(base) + "-" + std::to_string(++names);
    }
    std::chrono::milliseconds short_timeout() { return std::chrono::milliseconds(250); }

    // RabbitMQ routes at publish time: a group sees what is published after
    // its queue exists.
    boost::asio::awaitable<void> declare(std::string topic, std::vector<std::string> groups) {
        co_await broker_.async_declare(std::move(topic), std::move(groups), boost::asio::use_awaitable);
    }
    // Message ids are UUIDs (unique, not "<a>-<b>").
    static constexpr bool message_ids_ordered = false;
    // A stopped consumer's channel closes: RabbitMQ returns its unacked messages at once.
    static constexpr bool abandoned_returns_at_once = true;
    // AMQP 0-9-1 shows a queue's ready messages, not its unacknowledged ones.
    static constexpr bool shows_pending = false;
};

// The same through the node's TLS listener, with a client certificate its CA
// signed as well as the password: the whole suite over rabbitmq-c's SSL socket.
struct TlsRabbitMqBrokerFixture : RabbitMqBrokerFixture {
    TlsRabbitMqBrokerFixture() : RabbitMqBrokerFixture(config()) {}
    static boong::RabbitMqBrokerConfig config() {
        auto c = tls_config();
        c.cert_file = env("BOONG_TEST_RABBITMQ_CLIENT_CERT_FILE");
        c.key_file = env("BOONG_TEST_RABBITMQ_CLIENT_KEY_FILE");
        return c;
    }
};

// The same backend made from configuration, behind AnyBroker (declarations
// still go to a RabbitMqBroker: the fixture's own, on the same server).
struct AnyRabbitMqBrokerFixture : RabbitMqBrokerFixture {
    boong::AnyBroker any_ = make_any();
    boong::AnyBroker& broker() { return any_; }
    boong::AnyBroker make_any() {
        boong::MessageBrokerConfig c;
        c.type = boong::MessageBrokerConfig::Type::rabbitmq;
        c.rabbitmq = test_config();
        return boong::make_broker(ioc_.get_executor(), c);
    }
};

}  // namespace

#define BOONG_BROKER_FIXTURES RabbitMqBrokerFixture, AnyRabbitMqBrokerFixture, TlsRabbitMqBrokerFixture
#include "conformance/broker_conformance.hpp"

namespace {
namespace bc = boong::test::conformance;
namespace asio = boost::asio;
}  // namespace

TEST_CASE("rabbitmq broker: a publish nothing would keep is refused, never dropped", "[rabbitmq]") {
    RabbitMqBrokerFixture fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("nobody");
    std::optional<boong::error_code> code;
    std::string what;
    boong::test::run(fx.ioc(), [&]() -> asio::awaitable<void> {
        try {
            co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "Lost", 1));
        } catch (const boong::Error& e) {
            code = e.code();
            what = e.what();
        }
    });
    REQUIRE(code.has_value());
    CHECK(*code == boong::errc::invalid_argument);
    CHECK_THAT(what, Catch::Contains("unroutable") && Catch::Contains(topic));
}

TEST_CASE("rabbitmq broker: a group declared after a publish does not see it; one declared before does",
          "[rabbitmq]") {
    RabbitMqBrokerFixture fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("late");
    const auto early = fx.unique("early"), late = fx.unique("late");
    std::vector<std::string> got_early, got_late;
    std::string first, second;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> early_only{early};
            co_await bc::declare(fx, topic, early_only);
            first = co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "E", 1));
            const std::vector<std::string> late_only{late};
            co_await bc::declare(fx, topic, late_only);
            second = co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "E", 2));
            auto a = bc::start_consumer(fx, bc::consumer_options(topic, early, "c"),
                                        [&](const boong::Delivery& d) -> asio::awaitable<void> {
                                            got_early.push_back(d.message_id);
                                            co_return;
                                        });
            auto b = bc::start_consumer(fx, bc::consumer_options(topic, late, "c"),
                                        [&](const boong::Delivery& d) -> asio::awaitable<void> {
                                            got_late.push_back(d.message_id);
                                            co_return;
                                        });
            co_await bc::until([&] { return got_early.size() >= 2 && !got_late.empty(); });
            co_await boong::test::sleep_for(std::chrono::milliseconds(200));
            co_await a->stop();
            co_await b->stop();
        },
        std::chrono::seconds(20));
    CHECK(got_early == std::vector<std::string>{first, second});
    CHECK(got_late == std::vector<std::string>{second});
}

TEST_CASE("rabbitmq broker: an unreachable server is an error naming it, within the connect timeout",
          "[rabbitmq]") {
    asio::io_context ioc;
    auto config = test_config();
    config.port = 1;  // nothing listens there
    config.connect_timeout = std::chrono::milliseconds(500);
    boong::RabbitMqBroker broker(ioc.get_executor(), config);
    std::optional<boong::error_code> code;
    std::string what;
    const auto start = std::chrono::steady_clock::now();
    boong::test::run(ioc, [&]() -> asio::awaitable<void> {
        try {
            co_await broker.async_open(asio::use_awaitable);
        } catch (const boong::Error& e) {
            code = e.code();
            what = e.what();
        }
    });
    const auto took = std::chrono::steady_clock::now() - start;
    REQUIRE(code.has_value());
    CHECK(*code == boong::errc::broker_unavailable);
    CHECK_THAT(what, Catch::Contains(config.host + ":1"));
    CHECK(took < std::chrono::seconds(3));
}

TEST_CASE("rabbitmq broker: a wrong password is an error saying the login failed", "[rabbitmq]") {
    asio::io_context ioc;
    auto config = test_config();
    config.password_env.clear();
    config.username = "boong-nobody";
    config.connect_timeout = std::chrono::milliseconds(1000);
    boong::RabbitMqBroker broker(ioc.get_executor(), config);
    std::string what;
    boong::test::run(ioc, [&]() -> asio::awaitable<void> {
        try {
            co_await broker.async_open(asio::use_awaitable);
        } catch (const boong::Error& e) {
            what = e.what();
        }
    });
    CHECK_THAT(what, Catch::Contains("login as 'boong-nobody'"));
}

TEST_CASE("rabbitmq broker: bad configuration is refused at construction", "[rabbitmq]") {
    asio::io_context ioc;
    auto bad = [&](auto change) {
        auto c = test_config();
        change(c);
        try {
            boong::RabbitMqBroker b(ioc.get_executor(), c);
        } catch (const boong::Error& e) {
            return e.code() == boong::errc::invalid_config;
        }
        return false;
    };
    CHECK(bad([](auto& c) { c.port = 0; }));
    CHECK(bad([](auto& c) { c.connect_timeout = std::chrono::milliseconds(0); }));
    CHECK(bad([](auto& c) { c.publish_timeout = std::chrono::milliseconds(0); }));
    CHECK(bad([](auto& c) { c.delivery_limit = 0; }));
    CHECK(bad([](auto& c) { c.password_env = "BOONG_TEST_NO_SUCH_VARIABLE"; }));
    CHECK(bad([](auto& c) { c.groups = {{"orders", {"dlq"}}}; }));
}

// ---- what only a RabbitMQ broker shows: raw messages, conflicts, alarms, restarts

namespace {

// A raw AMQP connection of the broker's own kind, for mischief: messages that
// are not envelopes, queues declared by hand.
std::shared_ptr<const boong::rabbitmq::Endpoint> raw_endpoint() {
    auto e = std::make_shared<boong::rabbitmq::Endpoint>();
    e->config = test_config();
    e->password = env("BOONG_TEST_RABBITMQ_PASSWORD");
    return e;
}

void run_script(const char* variable) {
    const auto command = env(variable);
    if (std::system(command.c_str()) != 0) throw std::runtime_error(std::string(variable) + " failed: " + command);
}

}  // namespace

TEST_CASE("rabbitmq broker: a body that is not an envelope is dead-lettered as it arrived, never handled",
          "[rabbitmq]") {
    RabbitMqBrokerFixture fx;
    const auto topic = fx.unique("raw");
    const auto group = fx.unique("g");
    boong::rabbitmq::Link link(raw_endpoint(), "test mischief");
    int handled = 0;
    std::vector<boong::DeadLetter> dead;
    std::exception_ptr sent_error;
    bool sent = false;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> groups{group};
            co_await bc::declare(fx, topic, groups);
            auto c = bc::start_consumer(fx, bc::consumer_options(topic, group, "c"),
                                        [&](const boong::Delivery&) -> asio::awaitable<void> {
                                            ++handled;
                                            co_return;
                                        });
            boong::rabbitmq::Outgoing o;
            o.exchange = topic;
            o.body = "{\"event_id\": \"not json";
            // Completed on the link's thread: hop onto the test's.
            link.publish(std::move(o), [&](std::exception_ptr e, std::string) {
                asio::post(fx.ioc(), [&, e] {
                    sent_error = e;
                    sent = true;
                });
            });
            co_await bc::until([&] { return sent; });
            for (int i = 0; i < 300 && dead.empty(); ++i) {
                dead = co_await fx.broker().async_dead_letters(topic, "", 10, asio::use_awaitable);
                co_await boong::test::sleep_for(std::chrono::milliseconds(10));
            }
            co_await c->stop();
        },
        std::chrono::seconds(20));
    CHECK_FALSE(sent_error);
    CHECK(handled == 0);
    REQUIRE(dead.size() == 1);
    CHECK_THAT(dead[0].reason, Catch::StartsWith("undecodable message: the message body is not valid JSON"));
    CHECK(dead[0].group == group);
    CHECK_FALSE(dead[0].event.has_value());
    CHECK(dead[0].raw == "{\"event_id\": \"not json");
}

TEST_CASE("rabbitmq broker: a group queue declared by hand with other arguments ends its consumer with the reason",
          "[rabbitmq]") {
    RabbitMqBrokerFixture fx;
    const auto topic = fx.unique("conflict");
    const auto group = fx.unique("g");
    boong::rabbitmq::Link link(raw_endpoint(), "test mischief");
    std::optional<boong::error_code> error;
    bool done = false;
    std::string what;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            // A quorum queue without the delivery limit and dead-letter exchange the broker declares.
            bool declared = false;
            link.run(
                [&](boong::rabbitmq::Session& s) {
                    const auto ch = s.open_channel(nullptr);
                    s.declare_exchange(ch, topic);
                    s.declare_dead_letter_queue(ch, topic + "." + group, topic);
                    s.close_channel(ch);
                    asio::post(fx.ioc(), [&] { declared = true; });  // from the link's thread
                },
                [](std::exception_ptr) {});
            co_await bc::until([&] { return declared; });
            auto c = bc::start_consumer(fx, bc::consumer_options(topic, group, "c"),
                                        [](const boong::Delivery&) -> asio::awaitable<void> { co_return; });
            co_await bc::until([&] { return c->done(); }, std::chrono::seconds(10));
            done = c->done();
            error = c->error();
        },
        std::chrono::seconds(20));
    REQUIRE(done);
    REQUIRE(error.has_value());
    CHECK(*error == boong::errc::protocol_error);
}

TEST_CASE("rabbitmq broker: a resource alarm slows publishers with a reason instead of hanging them", "[rabbitmq]") {
    asio::io_context ioc;
    auto config = test_config();
    config.publish_timeout = std::chrono::milliseconds(1500);
    boong::RabbitMqBroker broker(ioc.get_executor(), config);
    boong::IdGenerator ids;
    const auto topic = "t" + ids.next() + ":alarm";
    std::string blocked_error, after_id;
    std::chrono::steady_clock::duration blocked_for{};
    struct ClearAlarm {  // whatever happens, the node is left without the alarm
        ~ClearAlarm() { std::system(env("BOONG_TEST_RABBITMQ_CLEAR").c_str()); }
    } clear_at_exit;
    boong::test::run(
        ioc,
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> groups{"keeper"};
            co_await broker.async_declare(topic, groups, asio::use_awaitable);
            co_await broker.async_publish(topic, bc::numbered_event(ids, "Before", 0), asio::use_awaitable);
            run_script("BOONG_TEST_RABBITMQ_ALARM");  // blocks the test's thread a moment: nothing else runs
            const auto t0 = std::chrono::steady_clock::now();
            try {
                co_await broker.async_publish(topic, bc::numbered_event(ids, "During", 1), asio::use_awaitable);
            } catch (const boong::Error& e) {
                blocked_error = e.what();
            }
            blocked_for = std::chrono::steady_clock::now() - t0;
            run_script("BOONG_TEST_RABBITMQ_CLEAR");
            after_id = co_await broker.async_publish(topic, bc::numbered_event(ids, "After", 2), asio::use_awaitable);
        },
        std::chrono::seconds(60));
    INFO(blocked_error);
    CHECK_THAT(blocked_error, Catch::Contains("failed within 1500 ms") && Catch::Contains("RabbitMQ blocks publishing"));
    CHECK(blocked_for < std::chrono::seconds(5));
    CHECK_FALSE(after_id.empty());
}

TEST_CASE("rabbitmq broker: a server restart while messages flow loses none of them", "[rabbitmq][restart]") {
    RabbitMqBrokerFixture fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("restart");
    const auto group = fx.unique("g");
    constexpr int count = 200;
    std::set<int> handled;
    int deliveries = 0, publish_retries = 0;
    std::atomic<bool> down{false};
    std::chrono::steady_clock::duration slowest{};
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> groups{group};
            co_await bc::declare(fx, topic, groups);
            auto o = bc::consumer_options(topic, group, "c");
            o.settings.concurrency = 4;
            o.settings.visibility_timeout = std::chrono::milliseconds(500);
            auto c = bc::start_consumer(fx, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                ++deliveries;
                handled.insert(d.event.payload.at("n").get<int>());
                co_return;
            });
            for (int i = 0; i < count; ++i) {
                if (i == count / 4) {
                    // The node goes down (in another thread: the script blocks), and comes
                    // back a second later while publishing goes on.
                    std::thread([&down] {
                        run_script("BOONG_TEST_RABBITMQ_STOP");
                        down = true;
                        std::this_thread::sleep_for(std::chrono::seconds(1));
                        run_script("BOONG_TEST_RABBITMQ_START");
                    }).detach();
                    co_await bc::until([&] { return down.load(); }, std::chrono::seconds(60));
                }
                // As the outbox relay does: a publish that failed is tried again.
                const auto t0 = std::chrono::steady_clock::now();
                for (;;) {
                    std::string failed;
                    try {
                        co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "Flow", i));
                    } catch (const boong::Error& e) {
                        if (e.code() != boong::errc::broker_unavailable) throw;
                        failed = e.what();
                    }
                    if (failed.empty()) break;
                    ++publish_retries;
                    co_await boong::test::sleep_for(std::chrono::milliseconds(200));
                }
                slowest = std::max(slowest, std::chrono::steady_clock::now() - t0);
                co_await boong::test::sleep_for(std::chrono::milliseconds(5));
            }
            co_await bc::until([&] { return handled.size() == count; }, std::chrono::seconds(60));
            co_await c->stop();
        },
        std::chrono::seconds(150));
    CHECK(handled.size() == count);  // every message, at least once
    CHECK(deliveries >= count);
    INFO("publish retries " << publish_retries << ", deliveries " << deliveries << ", slowest publish "
                              << std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count() << " ms");
    // The outage was in the middle of the flow: a publish waited it out, or failed and was tried again.
    CHECK((publish_retries > 0 || slowest >= std::chrono::seconds(1)));
}

TEST_CASE("rabbitmq broker: with an unrouted queue, a publish no group takes is kept there", "[rabbitmq]") {
    asio::io_context ioc;
    boong::IdGenerator ids;
    auto config = test_config();
    config.unrouted_queue = "t" + ids.next() + ":unrouted";
    boong::RabbitMqBroker broker(ioc.get_executor(), config);
    const auto topic = "t" + ids.next() + ":nobody-yet";
    std::string id;
    boong::test::run(ioc, [&]() -> asio::awaitable<void> {
        id = co_await broker.async_publish(topic, bc::numbered_event(ids, "Kept", 1), asio::use_awaitable);
    });
    REQUIRE_FALSE(id.empty());
    // It is in the unrouted queue, as it was published.
    auto endpoint = raw_endpoint();
    boong::rabbitmq::Link link(endpoint, "test reader");
    std::optional<boong::rabbitmq::Message> kept;
    std::exception_ptr error;
    std::atomic<bool> done{false};
    link.run(
        [&](boong::rabbitmq::Session& s) {
            const auto ch = s.open_channel(nullptr);
            kept = s.get(ch, config.unrouted_queue);
            if (kept) s.ack(ch, kept->delivery_tag);
            s.close_channel(ch);
            done = true;
        },
        [&](std::exception_ptr e) {
            error = e;
            done = true;
        });
    for (int i = 0; i < 500 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE(done);
    REQUIRE_FALSE(error);
    REQUIRE(kept.has_value());
    CHECK(kept->message_id == id);
    CHECK_THAT(kept->body, Catch::Contains("\"type\":\"Kept\""));
}

// ---- TLS: the node's TLS listener (scripts/lib/servers.sh made its CA and certificates)

namespace {

struct Opened {
    std::optional<boong::error_code> code;  // empty: it opened
    std::string what;
    std::chrono::steady_clock::duration took{};
};

// async_open with this configuration: connects (the publishing link) and logs in.
Opened try_open(const boong::RabbitMqBrokerConfig& config) {
    asio::io_context ioc;
    boong::RabbitMqBroker broker(ioc.get_executor(), config);
    Opened r;
    const auto start = std::chrono::steady_clock::now();
    boong::test::run(ioc, [&]() -> asio::awaitable<void> {
        try {
            co_await broker.async_open(asio::use_awaitable);
        } catch (const boong::Error& e) {
            r.code = e.code();
            r.what = e.what();
        }
    });
    r.took = std::chrono::steady_clock::now() - start;
    return r;
}

// A configuration that must be refused: quickly, so each refusal costs a second.
boong::RabbitMqBrokerConfig refused_config(boong::RabbitMqBrokerConfig c) {
    c.connect_timeout = std::chrono::milliseconds(1000);
    c.publish_timeout = std::chrono::milliseconds(1000);
    return c;
}

std::string at(const boong::RabbitMqBrokerConfig& c) { return "rabbitmq at " + c.host + ":" + std::to_string(c.port); }

}  // namespace

TEST_CASE("rabbitmq broker over TLS: events published and consumed through the TLS listener arrive intact",
          "[rabbitmq][tls]") {
    // Password only (no client certificate): the node asks for one but does not require it.
    RabbitMqBrokerFixture fx(tls_config());
    boong::IdGenerator ids;
    const auto topic = fx.unique("tls");
    const auto group = fx.unique("g");
    std::vector<boong::EventData> sent;
    for (int i = 0; i < 5; ++i) sent.push_back(bc::numbered_event(ids, "OverTls", i));
    std::vector<std::string> published;
    std::vector<boong::Delivery> got;
    bool stopped = false;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> groups{group};
            co_await bc::declare(fx, topic, groups);
            for (const auto& e : sent) published.push_back(co_await bc::publish(fx.broker(), topic, e));
            auto c = bc::start_consumer(fx, bc::consumer_options(topic, group, "c"),
                                        [&](const boong::Delivery& d) -> asio::awaitable<void> {
                                            got.push_back(d);
                                            co_return;
                                        });
            co_await bc::until([&] { return got.size() >= sent.size(); }, std::chrono::seconds(10));
            stopped = co_await c->stop();
        },
        std::chrono::seconds(30));
    CHECK(fx.broker().endpoint() == at(tls_config()));
    REQUIRE(stopped);
    REQUIRE(got.size() == sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
        INFO("message " << i);
        CHECK(got[i].message_id == published[i]);
        CHECK(got[i].event == sent[i]);
    }
    // That port speaks TLS only: the same without TLS does not even log in.
    auto plain = refused_config(tls_config());
    plain.tls = false;
    const auto r = try_open(plain);
    INFO(r.what);
    REQUIRE(r.code.has_value());
    CHECK(*r.code == boong::errc::broker_unavailable);
    CHECK_THAT(r.what, Catch::Contains(at(plain)) && Catch::Contains("login as 'boong'"));
}

TEST_CASE("rabbitmq broker over TLS: a server certificate the CA file did not sign is refused, naming the TLS check",
          "[rabbitmq][tls]") {
    // Another CA with the same name (another key): trusting it alone must not do.
    auto other = refused_config(tls_config());
    other.ca_file = env("BOONG_TEST_RABBITMQ_OTHER_CA_FILE");
    // No CA file: nothing to check the certificate against, so nothing is trusted
    // (never "not checked"; the system's store does not know this CA either).
    auto none = refused_config(tls_config());
    none.ca_file.clear();
    // Hostname checks off do not turn the certificate check off.
    auto other_any_name = other;
    other_any_name.host = "127.0.0.1";
    other_any_name.verify_hostname = false;
    for (const auto* config : {&other, &none, &other_any_name}) {
        const auto r = try_open(*config);
        INFO("ca_file '" << config->ca_file << "', host " << config->host << ": " << r.what);
        REQUIRE(r.code.has_value());
        CHECK(*r.code == boong::errc::broker_unavailable);
        CHECK_THAT(r.what, Catch::Contains(at(*config)) && Catch::Contains("SSL peer cert verification failed"));
        CHECK(r.took < std::chrono::seconds(5));
    }
    // A publish is not sent anywhere else either: it fails with the same reason.
    asio::io_context ioc;
    boong::RabbitMqBroker broker(ioc.get_executor(), other);
    boong::IdGenerator ids;
    std::string published, what;
    boong::test::run(ioc, [&]() -> asio::awaitable<void> {
        try {
            const auto topic = "t" + ids.next() + ":tls-nowhere";
            published = co_await broker.async_publish(topic, bc::numbered_event(ids, "Nowhere", 1), asio::use_awaitable);
        } catch (const boong::Error& e) {
            what = e.what();
        }
    });
    CHECK(published.empty());
    CHECK_THAT(what, Catch::Contains("failed within 1000 ms") && Catch::Contains("SSL peer cert verification failed"));
}

TEST_CASE("rabbitmq broker over TLS: TLS to the plaintext AMQP port fails the handshake, saying so",
          "[rabbitmq][tls]") {
    auto c = refused_config(tls_config());
    c.port = std::stoi(env("BOONG_TEST_RABBITMQ_PORT"));
    const auto r = try_open(c);
    INFO(r.what);
    REQUIRE(r.code.has_value());
    CHECK(*r.code == boong::errc::broker_unavailable);
    CHECK_THAT(r.what, Catch::Contains(at(c)) && Catch::Contains("SSL handshake failed"));
    CHECK(r.took < std::chrono::seconds(5));
}

TEST_CASE("rabbitmq broker over TLS: the certificate must name host, unless verify_hostname is false",
          "[rabbitmq][tls]") {
    // localhost: the certificate's DNS name.
    const auto by_name = try_open(tls_config());
    INFO(by_name.what);
    CHECK_FALSE(by_name.code.has_value());
    // 127.0.0.1: the certificate names it as an IP address, which rabbitmq-c 0.11
    // does not compare (DNS names only), so for it this is another name.
    auto by_address = refused_config(tls_config());
    by_address.host = "127.0.0.1";
    const auto refused = try_open(by_address);
    INFO(refused.what);
    REQUIRE(refused.code.has_value());
    CHECK(*refused.code == boong::errc::broker_unavailable);
    CHECK_THAT(refused.what, Catch::Contains(at(by_address)) && Catch::Contains("SSL hostname verification failed"));
    // Without the name check the same connection opens (the CA still vouches for it).
    by_address.verify_hostname = false;
    const auto unchecked = try_open(by_address);
    INFO(unchecked.what);
    CHECK_FALSE(unchecked.code.has_value());
}

TEST_CASE("rabbitmq broker over TLS: a client certificate from another CA is refused by the node", "[rabbitmq][tls]") {
    auto ours = tls_config();
    ours.cert_file = env("BOONG_TEST_RABBITMQ_CLIENT_CERT_FILE");
    ours.key_file = env("BOONG_TEST_RABBITMQ_CLIENT_KEY_FILE");
    const auto accepted = try_open(ours);
    INFO(accepted.what);
    CHECK_FALSE(accepted.code.has_value());
    auto theirs = refused_config(ours);
    theirs.cert_file = env("BOONG_TEST_RABBITMQ_OTHER_CLIENT_CERT_FILE");
    theirs.key_file = env("BOONG_TEST_RABBITMQ_OTHER_CLIENT_KEY_FILE");
    const auto r = try_open(theirs);
    INFO(r.what);
    REQUIRE(r.code.has_value());
    CHECK(*r.code == boong::errc::broker_unavailable);
    // The node's verdict (an alert) comes after the client's half of the handshake
    // with TLS 1.3, so rabbitmq-c reports it at the login: "a SSL error occurred".
    CHECK_THAT(r.what, Catch::Contains(at(theirs)) && Catch::Contains("SSL error"));
}

TEST_CASE("rabbitmq broker over TLS: a CA, certificate or key file that cannot be read is named in the error",
          "[rabbitmq][tls]") {
    auto no_ca = refused_config(tls_config());
    no_ca.ca_file = "/nonexistent/boong-ca.pem";
    auto no_cert = refused_config(tls_config());
    no_cert.cert_file = "/nonexistent/boong-client.pem";
    no_cert.key_file = env("BOONG_TEST_RABBITMQ_CLIENT_KEY_FILE");
    auto wrong_key = refused_config(tls_config());  // a key that is not the certificate's
    wrong_key.cert_file = env("BOONG_TEST_RABBITMQ_CLIENT_CERT_FILE");
    wrong_key.key_file = env("BOONG_TEST_RABBITMQ_OTHER_CLIENT_KEY_FILE");
    const auto ca = try_open(no_ca);
    CHECK_THAT(ca.what, Catch::Contains(at(no_ca)) && Catch::Contains("cannot read the CA file '/nonexistent/boong-ca.pem'"));
    const auto cert = try_open(no_cert);
    CHECK_THAT(cert.what, Catch::Contains("cannot read the client certificate '/nonexistent/boong-client.pem'"));
    const auto key = try_open(wrong_key);
    CHECK_THAT(key.what, Catch::Contains("cannot read the client certificate '" + wrong_key.cert_file + "' or its key"));
}
