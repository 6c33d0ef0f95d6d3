// RabbitMqBroker against a real RabbitMQ (3.10): the Broker conformance suite,
// with what RabbitMQ does differently declared by the fixture (and tested
// below), plus what only this backend can show (unroutable publishes, groups
// declared late, an unreachable server, a wrong password, a body that is not
// an envelope).
//
// scripts/test.sh starts a private node and exports BOONG_TEST_RABBITMQ_HOST,
// _PORT, _USER and _PASSWORD; without them the tests fail (never skipped).
#include <boong/rabbitmq/broker.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
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

// Names unique per process run too: the server outlives the test binary.
std::string run_prefix() {
    static const std::string prefix = "t" + boong::IdGenerator().next().substr(24);
    return prefix;
}

struct RabbitMqBrokerFixture {
    boost::asio::io_context ioc_;
    boong::RabbitMqBroker broker_{ioc_.get_executor(), test_config()};

    boost::asio::io_context& ioc() { return ioc_; }
    boong::RabbitMqBroker& broker() { return broker_; }
    std::string unique(std::string_view base) {
        return run_prefix() + ":" + std::string(base) + "-" + std::to_string(++names_);
    }
    int names_ = 0;
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
};

}  // namespace

#define BOONG_BROKER_FIXTURES RabbitMqBrokerFixture
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
