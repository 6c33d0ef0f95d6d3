// The Broker contract (include/boong/broker.hpp) as a Catch2 suite that every
// backend runs. A test file defines BOONG_BROKER_FIXTURES, a comma-separated
// list of fixture types, then includes this header. A fixture type has:
//   - a default constructor;
//   - boost::asio::io_context& ioc();
//   - auto& broker();                                   the Broker under test
//   - std::string unique(std::string_view base);        a topic/group name unique per test run
//   - std::chrono::milliseconds short_timeout();        a visibility timeout small enough for tests
// and may have:
//   - awaitable<void> declare(std::string topic, std::vector<std::string> groups):
//       makes the groups exist before anything is published (a backend whose
//       groups see only what is published after they exist: RabbitMQ); the
//       suite declares every group it publishes for first;
//   - static constexpr bool message_ids_ordered = false: ids are unique but
//       not "<a>-<b>" numbers increasing with each publish (default true);
//   - static constexpr bool abandoned_returns_at_once = true: a message left
//       by a stopped consumer is delivered again at once, not after the
//       visibility timeout (default false);
//   - static constexpr bool shows_pending = false: the broker cannot tell how
//       many messages a group has pending, nor their age (default true).
// What a backend does differently is declared there, and tested, never skipped.
//
// Only the Broker concept is used, so the suite says nothing a backend could
// satisfy by accident of its implementation. Shared state lives in the test
// case (not in the coroutine) so that handlers still running after a failed
// assertion never touch a destroyed frame; assertions mostly come after
// boong::test::run, which has also checked that no work was left behind.
#pragma once

#ifndef BOONG_BROKER_FIXTURES
#error "define BOONG_BROKER_FIXTURES (the fixture types) before including conformance/broker_conformance.hpp"
#endif

#include "support/async.hpp"

#include <boong/broker.hpp>
#include <boong/error.hpp>
#include <boong/event.hpp>
#include <boong/signed_broker.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boong::test::conformance {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// A Redis-style stream id "<a>-<b>" as a pair of numbers, so ids compare by value.
inline std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_message_id(std::string_view id) {
    const auto dash = id.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    std::pair<std::uint64_t, std::uint64_t> v;
    const auto a = std::from_chars(id.data(), id.data() + dash, v.first);
    const auto b = std::from_chars(id.data() + dash + 1, id.data() + id.size(), v.second);
    if (dash == 0 || a.ptr != id.data() + dash || a.ec != std::errc{} || b.ptr != id.data() + id.size() ||
        b.ec != std::errc{} || dash + 1 == id.size())
        return std::nullopt;
    return v;
}

// Timestamps are stored with microsecond precision by durable backends.
inline Clock::time_point now_us() {
    return Clock::time_point(std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch())));
}

// An event with every envelope field set, so a lost field shows.
inline EventData make_event(IdGenerator& ids, std::string type, json payload) {
    EventData e;
    e.event_id = ids.next();
    e.type = std::move(type);
    e.schema_version = 2;
    e.payload = std::move(payload);
    e.metadata.correlation_id = "order-" + ids.next();
    e.metadata.causation_id = ids.next();
    e.metadata.timestamp = now_us();
    e.metadata.extra = json{{"tenant", "acme"}, {"trace", {{"span", 42}}}};
    return e;
}

// make_event with payload {"n": n}. (g++ 12 cannot compile a braced JSON
// initializer inside a co_await expression, so tests use this there.)
inline EventData numbered_event(IdGenerator& ids, std::string type, int n) {
    return make_event(ids, std::move(type), json{{"n", n}});
}

inline ConsumerOptions consumer_options(std::string topic, std::string group, std::string consumer) {
    ConsumerOptions o;
    o.topic = std::move(topic);
    o.group = std::move(group);
    o.consumer = std::move(consumer);
    return o;
}

inline asio::awaitable<void> nothing_to_declare() { co_return; }

// The fixture's declare(topic, groups), when it has one. (Not a coroutine:
// its frame would hold a fixture type of the test file's anonymous namespace.)
template <class Fixture>
asio::awaitable<void> declare(Fixture& fx, std::string topic, std::vector<std::string> groups) {
    if constexpr (requires { fx.declare(topic, groups); }) {
        return fx.declare(std::move(topic), std::move(groups));
    } else {
        return nothing_to_declare();
    }
}

template <class Fixture>
constexpr bool message_ids_ordered() {
    if constexpr (requires { Fixture::message_ids_ordered; }) return Fixture::message_ids_ordered;
    return true;
}

template <class Fixture>
constexpr bool shows_pending() {
    if constexpr (requires { Fixture::shows_pending; }) return Fixture::shows_pending;
    return true;
}

template <class Fixture>
constexpr bool abandoned_returns_at_once() {
    if constexpr (requires { Fixture::abandoned_returns_at_once; }) return Fixture::abandoned_returns_at_once;
    return false;
}

// Polls `done` every few milliseconds until it holds or `limit` passed; true
// when it held. g++ 12 destroys a lambda temporary in a co_await expression
// twice: pass lambdas that capture by reference only, or a named
// std::function. A test that needs the condition uses until() instead.
[[nodiscard]] inline asio::awaitable<bool> eventually(std::function<bool()> done,
                                                  SteadyClock::duration limit = 5s) {
    const auto deadline = SteadyClock::now() + limit;
    while (!done()) {
        if (SteadyClock::now() >= deadline) co_return false;
        co_await sleep_for(2ms);
    }
    co_return true;
}

// A reference to a condition (any callable returning bool), trivially
// copyable: safe to hand to a coroutine from a co_await expression, where
// the callable lives until the awaited coroutine completes (g++ 12 mishandles
// temporaries with destructors there, std::function among them).
class Condition {
public:
    template <class F>
    Condition(const F& f) noexcept  // NOLINT: converting, like a function reference
        : callable_(&f), call_([](const void* c) { return static_cast<bool>((*static_cast<const F*>(c))()); }) {}
    bool operator()() const { return call_(callable_); }

private:
    const void* callable_;
    bool (*call_)(const void*);
};

// eventually(), for a condition the test cannot go on without: throws (and so
// fails the test, naming the line) when it does not hold within `limit`.
inline asio::awaitable<void> until(Condition done, SteadyClock::duration limit = 5s,
                                   const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    const auto deadline = SteadyClock::now() + limit;
    while (!done()) {
        if (SteadyClock::now() >= deadline) {
            throw std::runtime_error(
                std::string("the condition awaited at ") + file + ":" + std::to_string(line) + " did not hold within " +
                std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(limit).count()) + " ms");
        }
        co_await sleep_for(2ms);
    }
}

// A consumer running in the background until stop(): async_consume spawned on
// the test's io_context with a cancellation slot we control.
class BackgroundConsumer {
public:
    template <class Broker>
    BackgroundConsumer(asio::io_context& ioc, Broker& broker, ConsumerOptions options, MessageHandler handler)
        : state_(std::make_shared<State>()) {
        asio::co_spawn(ioc, broker.async_consume(std::move(options), std::move(handler), asio::use_awaitable),
                       asio::bind_cancellation_slot(state_->signal.slot(), [s = state_](std::exception_ptr e) {
                           s->error = e;
                           s->done = true;
                       }));
    }

    bool done() const { return state_->done; }

    // The error code the consumer finished with (nullopt: finished without
    // error or still running; "unexpected exception" is reported as a failure).
    std::optional<error_code> error() const {
        if (!state_->error) return std::nullopt;
        try {
            std::rethrow_exception(state_->error);
        } catch (const boost::system::system_error& e) {
            return e.code();
        } catch (...) {
            return make_error_code(boost::system::errc::io_error);
        }
    }

    // Requests a graceful stop and waits up to `limit` for the consumer to
    // finish; true when it did. Emits at once, waits when awaited.
    asio::awaitable<bool> stop(SteadyClock::duration limit = 10s) {
        if (!state_->done) state_->signal.emit(asio::cancellation_type::terminal);
        return wait_done(state_, limit);
    }

private:
    struct State {
        asio::cancellation_signal signal;
        bool done = false;
        std::exception_ptr error;
    };
    // Holds the state itself, so it does not depend on this object's lifetime.
    static asio::awaitable<bool> wait_done(std::shared_ptr<State> s, SteadyClock::duration limit) {
        std::function<bool()> done = [s] { return s->done; };  // named: see eventually()
        co_return co_await eventually(std::move(done), limit);
    }
    std::shared_ptr<State> state_;
};

template <class Fixture>
std::unique_ptr<BackgroundConsumer> start_consumer(Fixture& fx, ConsumerOptions options, MessageHandler handler) {
    return std::make_unique<BackgroundConsumer>(fx.ioc(), fx.broker(), std::move(options), std::move(handler));
}

template <class Broker>
asio::awaitable<std::string> publish(Broker& broker, const std::string& topic, const EventData& e) {
    co_return co_await broker.async_publish(topic, e, asio::use_awaitable);
}

// What a handler saw, copied out of the Delivery.
struct Seen {
    std::string consumer;
    std::string message_id;
    int delivery_count = 0;
    SteadyClock::time_point at;
};

inline Seen seen(const Delivery& d) { return Seen{d.consumer, d.message_id, d.delivery_count, SteadyClock::now()}; }

inline void check_same_event(const EventData& got, const EventData& sent) {
    CHECK(got.event_id == sent.event_id);
    CHECK(got.type == sent.type);
    CHECK(got.schema_version == sent.schema_version);
    CHECK(got.payload == sent.payload);
    CHECK(got.metadata.correlation_id == sent.metadata.correlation_id);
    CHECK(got.metadata.causation_id == sent.metadata.causation_id);
    CHECK(got.metadata.timestamp == sent.metadata.timestamp);
}

}  // namespace boong::test::conformance

// ---- publish ------------------------------------------------------------------

TEMPLATE_TEST_CASE("broker conformance: publish returns distinct, increasing message ids", "[broker][conformance]",
                   BOONG_BROKER_FIXTURES) {
    namespace bc = boong::test::conformance;
    namespace asio = boost::asio;
    TestType fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("ids");
    std::vector<std::string> published;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> keeper{fx.unique("keeper")};
            co_await bc::declare(fx, topic, keeper);
            for (int i = 0; i < 20; ++i)
                published.push_back(co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "Tick", i)));
        },
        std::chrono::seconds(20));
    REQUIRE(published.size() == 20);
    for (std::size_t i = 0; i < published.size(); ++i) {
        INFO("message id " << published[i]);
        CHECK_FALSE(published[i].empty());
        if constexpr (bc::message_ids_ordered<TestType>()) {
            const auto id = bc::parse_message_id(published[i]);
            REQUIRE(id.has_value());
            if (i > 0) CHECK(*bc::parse_message_id(published[i - 1]) < *id);
        }
    }
    CHECK(std::set<std::string>(published.begin(), published.end()).size() == published.size());
}

TEMPLATE_TEST_CASE("broker conformance: invalid publish arguments are refused with invalid_argument",
                   "[broker][conformance]", BOONG_BROKER_FIXTURES) {
    namespace bc = boong::test::conformance;
    namespace asio = boost::asio;
    TestType fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("invalid-publish");
    const auto good = bc::make_event(ids, "Good", {{"ok", true}});
    struct Case {
        std::string name;
        std::string topic;
        boong::EventData event;
    };
    std::vector<Case> cases;
    cases.push_back({"empty topic", "", good});
    cases.push_back({"topic over 200 bytes", topic + std::string(201, 'x'), good});
    auto e = good;
    e.event_id = "not-a-uuid";
    cases.push_back({"event id not a UUID", topic, e});
    e = good;
    e.event_id.clear();
    cases.push_back({"empty event id", topic, e});
    e = good;
    e.type.clear();
    cases.push_back({"empty type", topic, e});
    e = good;
    e.schema_version = 0;
    cases.push_back({"schema version 0", topic, e});

    std::vector<std::optional<boong::error_code>> outcomes(cases.size());
    std::optional<std::string> accepted_id;
    // A long topic name of exactly 200 bytes is valid (the limit is inclusive).
    const std::string long_topic = (topic + std::string(200, 'y')).substr(0, 200);
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> keeper{fx.unique("keeper")};
            co_await bc::declare(fx, topic, keeper);
            co_await bc::declare(fx, long_topic, keeper);
            for (std::size_t i = 0; i < cases.size(); ++i) {
                try {
                    co_await fx.broker().async_publish(cases[i].topic, cases[i].event, asio::use_awaitable);
                } catch (const boong::Error& err) {
                    outcomes[i] = err.code();
                }
            }
            accepted_id = co_await bc::publish(fx.broker(), long_topic, good);
        },
        std::chrono::seconds(20));
    for (std::size_t i = 0; i < cases.size(); ++i) {
        INFO(cases[i].name);
        REQUIRE(outcomes[i].has_value());
        CHECK(*outcomes[i] == boong::errc::invalid_argument);
    }
    if constexpr (bc::message_ids_ordered<TestType>()) {
        CHECK(bc::parse_message_id(accepted_id.value_or("")).has_value());
    } else {
        CHECK_FALSE(accepted_id.value_or("").empty());
    }
}

// ---- consume --------------------------------------------------------------------

TEMPLATE_TEST_CASE("broker conformance: a consumer receives every message in publish order, envelope intact",
                   "[broker][conformance]", BOONG_BROKER_FIXTURES) {
    namespace bc = boong::test::conformance;
    namespace asio = boost::asio;
    TestType fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("orders");
    const auto group = fx.unique("billing");
    std::vector<boong::EventData> events;
    for (int i = 0; i < 6; ++i)
        events.push_back(bc::make_event(ids, i % 2 ? "OrderPaid" : "OrderCreated",
                                        {{"order", i}, {"lines", {{{"sku", "A-1"}, {"qty", i + 1}}}}, {"note", "é ✓"}}));
    std::vector<std::string> published;
    std::vector<boong::Delivery> got;
    bool stopped = false;
    std::optional<boong::error_code> error;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> these_groups{group};
            co_await bc::declare(fx, topic, these_groups);
            // Half before the group exists (a new group starts at the beginning
            // of the topic), half while the consumer runs.
            for (int i = 0; i < 3; ++i) published.push_back(co_await bc::publish(fx.broker(), topic, events[i]));
            auto consumer = bc::start_consumer(fx, bc::consumer_options(topic, group, "c1"),
                                               [&](const boong::Delivery& d) -> asio::awaitable<void> {
                                                   got.push_back(d);
                                                   co_return;
                                               });
            co_await boong::test::sleep_for(std::chrono::milliseconds(20));
            for (int i = 3; i < 6; ++i) published.push_back(co_await bc::publish(fx.broker(), topic, events[i]));
            co_await bc::until([&] { return got.size() >= events.size(); });
            stopped = co_await consumer->stop();
            error = consumer->error();
        },
        std::chrono::seconds(30));
    REQUIRE(stopped);
    CHECK_FALSE(error.has_value());
    REQUIRE(got.size() == events.size());
    for (std::size_t i = 0; i < events.size(); ++i) {
        INFO("message " << i);
        CHECK(got[i].topic == topic);
        CHECK(got[i].group == group);
        CHECK(got[i].consumer == "c1");
        CHECK(got[i].message_id == published[i]);
        CHECK(got[i].delivery_count == 1);
        bc::check_same_event(got[i].event, events[i]);
        CHECK(got[i].event.metadata.extra == events[i].metadata.extra);
        CHECK(got[i].event == events[i]);
    }
}

TEMPLATE_TEST_CASE("broker conformance: each group receives every message", "[broker][conformance]",
                   BOONG_BROKER_FIXTURES) {
    namespace bc = boong::test::conformance;
    namespace asio = boost::asio;
    TestType fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("fanout");
    const std::vector<std::string> groups = {fx.unique("billing"), fx.unique("shipping")};
    std::vector<std::string> published;
    std::vector<std::vector<std::string>> got(groups.size());
    std::vector<bool> stopped(groups.size(), false);
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            co_await bc::declare(fx, topic, groups);
            for (int i = 0; i < 8; ++i)
                published.push_back(co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "E", i)));
            std::vector<std::unique_ptr<bc::BackgroundConsumer>> consumers;
            for (std::size_t g = 0; g < groups.size(); ++g) {
                consumers.push_back(bc::start_consumer(fx, bc::consumer_options(topic, groups[g], "c1"),
                                                       [&got, g](const boong::Delivery& d) -> asio::awaitable<void> {
                                                           got[g].push_back(d.message_id);
                                                           co_return;
                                                       }));
            }
            co_await bc::until([&] { return got[0].size() >= 8 && got[1].size() >= 8; });
            for (std::size_t g = 0; g < groups.size(); ++g) stopped[g] = co_await consumers[g]->stop();
        },
        std::chrono::seconds(30));
    for (std::size_t g = 0; g < groups.size(); ++g) {
        INFO("group " << groups[g]);
        CHECK(stopped[g]);
        CHECK(got[g] == published);
    }
}

TEMPLATE_TEST_CASE("broker conformance: consumers of one group split the messages, none handled twice",
                   "[broker][conformance]", BOONG_BROKER_FIXTURES) {
    namespace bc = boong::test::conformance;
    namespace asio = boost::asio;
    TestType fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("work");
    const auto group = fx.unique("workers");
    constexpr int count = 30;
    std::vector<std::string> published;
    std::vector<bc::Seen> handled;
    bool stopped = true;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> these_groups{group};
            co_await bc::declare(fx, topic, these_groups);
            for (int i = 0; i < count; ++i)
                published.push_back(co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "Job", i)));
            auto handler = [&](const boong::Delivery& d) -> asio::awaitable<void> {
                handled.push_back(bc::seen(d));
                co_await boong::test::sleep_for(std::chrono::milliseconds(3));  // let the other consumer in
            };
            auto a = bc::start_consumer(fx, bc::consumer_options(topic, group, "a"), handler);
            auto b = bc::start_consumer(fx, bc::consumer_options(topic, group, "b"), handler);
            co_await bc::until([&] { return handled.size() >= count; });
            co_await boong::test::sleep_for(std::chrono::milliseconds(50));  // room for a wrongful duplicate
            stopped = co_await a->stop();
            stopped = co_await b->stop() && stopped;
        },
        std::chrono::seconds(30));
    CHECK(stopped);
    std::vector<std::string> ids_handled;
    std::size_t by_a = 0, by_b = 0;
    for (const auto& s : handled) {
        ids_handled.push_back(s.message_id);
        CHECK(s.delivery_count == 1);
        by_a += s.consumer == "a";
        by_b += s.consumer == "b";
    }
    std::sort(ids_handled.begin(), ids_handled.end());
    auto expected = published;
    std::sort(expected.begin(), expected.end());
    CHECK(ids_handled == expected);  // every message, exactly once
    CHECK(by_a + by_b == handled.size());
    CHECK(by_a > 0);
    CHECK(by_b > 0);
}

TEMPLATE_TEST_CASE("broker conformance: a failed message is redelivered with a growing delivery count",
                   "[broker][conformance]", BOONG_BROKER_FIXTURES) {
    namespace bc = boong::test::conformance;
    namespace asio = boost::asio;
    TestType fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("flaky");
    const auto group = fx.unique("g");
    const auto event = bc::make_event(ids, "Flaky", {{"n", 1}});
    std::string id;
    std::vector<bc::Seen> deliveries;
    std::vector<boong::EventData> events_seen;
    bool stopped = false;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> these_groups{group};
            co_await bc::declare(fx, topic, these_groups);
            id = co_await bc::publish(fx.broker(), topic, event);
            auto o = bc::consumer_options(topic, group, "c1");
            o.settings.visibility_timeout = fx.short_timeout();
            o.settings.max_deliveries = 5;
            auto c = bc::start_consumer(fx, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                deliveries.push_back(bc::seen(d));
                events_seen.push_back(d.event);
                if (d.delivery_count < 3) throw std::runtime_error("transient failure");
                co_return;
            });
            co_await bc::until([&] { return deliveries.size() >= 3; });
            co_await boong::test::sleep_for(4 * fx.short_timeout());  // acked: no 4th delivery
            stopped = co_await c->stop();
        },
        std::chrono::seconds(30));
    CHECK(stopped);
    REQUIRE(deliveries.size() == 3);
    for (std::size_t i = 0; i < deliveries.size(); ++i) {
        INFO("delivery " << i);
        CHECK(deliveries[i].delivery_count == static_cast<int>(i) + 1);
        CHECK(deliveries[i].message_id == id);
        CHECK(events_seen[i] == event);
        // Redelivered after the visibility timeout, not at once.
        if (i > 0) CHECK(deliveries[i].at - deliveries[i - 1].at >= 3 * fx.short_timeout() / 4);
    }
}

TEMPLATE_TEST_CASE("broker conformance: after max_deliveries failures a message goes to the dead letters",
                   "[broker][conformance]", BOONG_BROKER_FIXTURES) {
    namespace bc = boong::test::conformance;
    namespace asio = boost::asio;
    TestType fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("payments");
    const auto group = fx.unique("charger");
    const auto reader_group = fx.unique("dlq-reader");
    const auto event = bc::make_event(ids, "ChargeCard", {{"amount", 1250}});
    std::string id;
    std::vector<bc::Seen> deliveries;
    std::vector<boong::Delivery> dead;
    std::chrono::steady_clock::time_point dead_at{};
    bool stopped = false;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> these_groups{group};
            co_await bc::declare(fx, topic, these_groups);
            const std::vector<std::string> reader_groups{reader_group};
            co_await bc::declare(fx, boong::dead_letter_topic(topic), reader_groups);
            id = co_await bc::publish(fx.broker(), topic, event);
            auto o = bc::consumer_options(topic, group, "c1");
            o.settings.visibility_timeout = fx.short_timeout();
            o.settings.max_deliveries = 3;
            auto c = bc::start_consumer(fx, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                deliveries.push_back(bc::seen(d));
                throw std::runtime_error("payment service down");
                co_return;
            });
            auto reader = bc::start_consumer(
                fx, bc::consumer_options(boong::dead_letter_topic(topic), reader_group, "r"),
                [&](const boong::Delivery& d) -> asio::awaitable<void> {
                    dead.push_back(d);
                    dead_at = std::chrono::steady_clock::now();
                    co_return;
                });
            co_await bc::until([&] { return !dead.empty(); });
            co_await boong::test::sleep_for(4 * fx.short_timeout());  // no further delivery, no second dead letter
            stopped = co_await c->stop();
            stopped = co_await reader->stop() && stopped;
        },
        std::chrono::seconds(30));
    CHECK(stopped);
    REQUIRE(deliveries.size() == 3);
    for (std::size_t i = 0; i < deliveries.size(); ++i) CHECK(deliveries[i].delivery_count == static_cast<int>(i) + 1);
    REQUIRE(dead.size() == 1);
    // Dead-lettered when the last delivery failed, not a visibility timeout later.
    CHECK(dead_at - deliveries.back().at < fx.short_timeout());
    const auto& d = dead[0];
    CHECK(d.topic == topic + ".dlq");
    bc::check_same_event(d.event, event);
    const auto& extra = d.event.metadata.extra;
    CHECK(extra.value("tenant", "") == "acme");  // the original metadata is kept
    REQUIRE(extra.contains("dead_letter"));
    const auto& dl = extra.at("dead_letter");
    CHECK(dl.value("source_topic", "") == topic);
    CHECK(dl.value("source_message_id", "") == id);
    CHECK(dl.value("group", "") == group);
    CHECK(dl.value("delivery_count", 0) == 3);
    CHECK_THAT(dl.value("reason", std::string()), Catch::Contains("payment service down"));
}

TEMPLATE_TEST_CASE("broker conformance: a Rejection sends the message to the dead letters at once",
                   "[broker][conformance]", BOONG_BROKER_FIXTURES) {
    namespace bc = boong::test::conformance;
    namespace asio = boost::asio;
    TestType fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("charges");
    const auto group = fx.unique("charger");
    const auto reader_group = fx.unique("dlq-reader");
    const auto event = bc::make_event(ids, "ChargeCard", {{"amount", 99999}});
    std::string id;
    std::vector<bc::Seen> deliveries;
    std::vector<boong::Delivery> dead;
    bool stopped = false;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> these_groups{group};
            co_await bc::declare(fx, topic, these_groups);
            const std::vector<std::string> reader_groups{reader_group};
            co_await bc::declare(fx, boong::dead_letter_topic(topic), reader_groups);
            id = co_await bc::publish(fx.broker(), topic, event);
            auto o = bc::consumer_options(topic, group, "c1");
            o.settings.visibility_timeout = fx.short_timeout();
            o.settings.max_deliveries = 5;
            auto c = bc::start_consumer(fx, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                deliveries.push_back(bc::seen(d));
                throw boong::Rejection("insufficient funds");
                co_return;
            });
            auto reader = bc::start_consumer(
                fx, bc::consumer_options(boong::dead_letter_topic(topic), reader_group, "r"),
                [&](const boong::Delivery& d) -> asio::awaitable<void> {
                    dead.push_back(d);
                    co_return;
                });
            co_await bc::until([&] { return !dead.empty(); });
            co_await boong::test::sleep_for(4 * fx.short_timeout());  // not redelivered
            stopped = co_await c->stop();
            stopped = co_await reader->stop() && stopped;
        },
        std::chrono::seconds(30));
    CHECK(stopped);
    CHECK(deliveries.size() == 1);
    REQUIRE(dead.size() == 1);
    bc::check_same_event(dead[0].event, event);
    REQUIRE(dead[0].event.metadata.extra.contains("dead_letter"));
    const auto& dl = dead[0].event.metadata.extra.at("dead_letter");
    CHECK(dl.value("source_topic", "") == topic);
    CHECK(dl.value("source_message_id", "") == id);
    CHECK(dl.value("group", "") == group);
    CHECK(dl.value("delivery_count", 0) == 1);
    CHECK_THAT(dl.value("reason", std::string()), Catch::Contains("insufficient funds"));
}

TEMPLATE_TEST_CASE("broker conformance: a message whose consumer stopped mid-handler goes to another consumer",
                   "[broker][conformance]", BOONG_BROKER_FIXTURES) {
    namespace bc = boong::test::conformance;
    namespace asio = boost::asio;
    TestType fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("hang");
    const auto group = fx.unique("g");
    const auto event = bc::make_event(ids, "Slow", {{"n", 7}});
    std::string id;
    std::vector<bc::Seen> by_a, by_b;
    bool a_unwound = false, a_stopped = false, b_stopped = false;
    std::optional<boong::error_code> a_error;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> these_groups{group};
            co_await bc::declare(fx, topic, these_groups);
            id = co_await bc::publish(fx.broker(), topic, event);
            auto o = bc::consumer_options(topic, group, "a");
            o.settings.visibility_timeout = fx.short_timeout();
            o.settings.shutdown_grace = std::chrono::milliseconds(20);
            auto a = bc::start_consumer(fx, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                by_a.push_back(bc::seen(d));
                try {
                    co_await boong::test::sleep_for(std::chrono::hours(1));  // hangs until cancelled
                } catch (...) {
                    a_unwound = true;
                    throw;
                }
            });
            co_await bc::until([&] { return !by_a.empty(); });
            a_stopped = co_await a->stop();
            a_error = a->error();

            o.consumer = "b";
            auto b = bc::start_consumer(fx, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                by_b.push_back(bc::seen(d));
                co_return;
            });
            co_await bc::until([&] { return !by_b.empty(); });
            co_await boong::test::sleep_for(4 * fx.short_timeout());  // acked by b: not delivered again
            b_stopped = co_await b->stop();
        },
        std::chrono::seconds(30));
    CHECK(a_stopped);
    CHECK(a_unwound);  // the hung handler was cancelled and unwound before the consumer finished
    CHECK_FALSE(a_error.has_value());
    CHECK(b_stopped);
    REQUIRE(by_a.size() == 1);
    REQUIRE(by_b.size() == 1);
    CHECK(by_b[0].message_id == id);
    CHECK(by_b[0].consumer == "b");
    CHECK(by_b[0].delivery_count == 2);
    // Returned when its consumer stopped, or left pending until the visibility timeout.
    if constexpr (!bc::abandoned_returns_at_once<TestType>()) CHECK(by_b[0].at - by_a[0].at >= 3 * fx.short_timeout() / 4);
}

TEMPLATE_TEST_CASE("broker conformance: concurrency bounds the handlers in flight", "[broker][conformance]",
                   BOONG_BROKER_FIXTURES) {
    namespace bc = boong::test::conformance;
    namespace asio = boost::asio;
    TestType fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("parallel");
    const auto group = fx.unique("g");
    constexpr int count = 12;
    int active = 0, max_active = 0;
    std::vector<std::string> handled;
    bool stopped = false;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> these_groups{group};
            co_await bc::declare(fx, topic, these_groups);
            for (int i = 0; i < count; ++i)
                co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "Job", i));
            auto o = bc::consumer_options(topic, group, "c1");
            o.settings.concurrency = 4;
            auto c = bc::start_consumer(fx, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                max_active = std::max(max_active, ++active);
                // Hold until four ran at once (or give up), so a broker running
                // fewer at a time shows as max_active < 4.
                co_await bc::until([&] { return max_active >= 4; }, std::chrono::seconds(2));
                co_await boong::test::sleep_for(std::chrono::milliseconds(10));
                handled.push_back(d.message_id);
                --active;
            });
            co_await bc::until([&] { return handled.size() >= count; }, std::chrono::seconds(20));
            stopped = co_await c->stop();
        },
        std::chrono::seconds(40));
    CHECK(stopped);
    CHECK(max_active == 4);
    CHECK(handled.size() == count);
    CHECK(std::set<std::string>(handled.begin(), handled.end()).size() == count);
}

TEMPLATE_TEST_CASE("broker conformance: stop is graceful", "[broker][conformance]", BOONG_BROKER_FIXTURES) {
    namespace bc = boong::test::conformance;
    namespace asio = boost::asio;
    TestType fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("graceful");
    const auto group = fx.unique("g");
    std::string first_id, second_id;
    std::vector<bc::Seen> by_a, by_b;
    bool finished = false, a_stopped = false, a_stop_returned = false, b_stopped = false;
    bool a_done_while_handler_ran = true;
    std::optional<boong::error_code> a_error;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> these_groups{group};
            co_await bc::declare(fx, topic, these_groups);
            first_id = co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "Work", 1));
            auto o = bc::consumer_options(topic, group, "a");
            o.settings.visibility_timeout = fx.short_timeout();
            o.settings.concurrency = 2;  // a free slot, which a stopping consumer must not fill
            o.settings.shutdown_grace = std::chrono::seconds(10);
            auto a = bc::start_consumer(fx, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                by_a.push_back(bc::seen(d));
                co_await boong::test::sleep_for(std::chrono::milliseconds(150));
                finished = true;
            });
            co_await bc::until([&] { return !by_a.empty(); });
            // Stop a while its handler runs, and publish while it stops.
            asio::co_spawn(co_await asio::this_coro::executor, a->stop(std::chrono::seconds(15)),
                           [&](std::exception_ptr, bool ok) {
                               a_stopped = ok;
                               a_stop_returned = true;
                           });
            second_id = co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "Work", 2));
            a_done_while_handler_ran = a->done();
            co_await bc::until([&] { return a_stop_returned; }, std::chrono::seconds(20));
            a_error = a->error();

            o.consumer = "b";
            auto b = bc::start_consumer(fx, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                by_b.push_back(bc::seen(d));
                co_return;
            });
            co_await bc::until([&] { return !by_b.empty(); });
            co_await boong::test::sleep_for(4 * fx.short_timeout());  // the first message must not come back
            b_stopped = co_await b->stop();
        },
        std::chrono::seconds(40));
    CHECK(a_stopped);
    CHECK_FALSE(a_done_while_handler_ran);  // stop waits for the in-flight handler
    CHECK(finished);                        // which ran to its end within the grace
    CHECK_FALSE(a_error.has_value());
    REQUIRE(by_a.size() == 1);  // nothing new taken after the stop request
    CHECK(by_a[0].message_id == first_id);
    CHECK(b_stopped);
    // The first message was acked: only the second one is left. (Its delivery
    // count is not checked: a backend may have read it while stopping and left
    // it pending.)
    REQUIRE(by_b.size() == 1);
    CHECK(by_b[0].message_id == second_id);
}

TEMPLATE_TEST_CASE("broker conformance: invalid consumer options are refused with invalid_argument",
                   "[broker][conformance]", BOONG_BROKER_FIXTURES) {
    namespace bc = boong::test::conformance;
    namespace asio = boost::asio;
    TestType fx;
    const auto topic = fx.unique("invalid-consume");
    const auto group = fx.unique("g");
    const auto valid = bc::consumer_options(topic, group, "c1");
    std::vector<std::pair<std::string, boong::ConsumerOptions>> cases;
    auto add = [&](std::string name, auto mutate) {
        auto o = valid;
        mutate(o);
        cases.emplace_back(std::move(name), std::move(o));
    };
    add("empty topic", [](auto& o) { o.topic.clear(); });
    add("empty group", [](auto& o) { o.group.clear(); });
    add("empty consumer", [](auto& o) { o.consumer.clear(); });
    add("concurrency 0", [](auto& o) { o.settings.concurrency = 0; });
    add("max_deliveries 0", [](auto& o) { o.settings.max_deliveries = 0; });
    add("negative visibility timeout", [](auto& o) { o.settings.visibility_timeout = std::chrono::milliseconds(-1); });
    add("negative shutdown grace", [](auto& o) { o.settings.shutdown_grace = std::chrono::milliseconds(-1); });
    add("negative backlog interval", [](auto& o) { o.settings.backlog_interval = std::chrono::milliseconds(-1); });
    add("outage backoff of 0 ms", [](auto& o) { o.settings.outage_backoff.initial_delay = std::chrono::milliseconds(0); });
    add("outage backoff cap below its start", [](auto& o) {
        o.settings.outage_backoff.max_delay = o.settings.outage_backoff.initial_delay / 2;
    });
    std::vector<bool> finished(cases.size(), false);
    std::vector<std::optional<boong::error_code>> errors(cases.size());
    bool valid_ran = false, valid_stopped = false;
    std::optional<boong::error_code> valid_error;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            auto handler = [](const boong::Delivery&) -> asio::awaitable<void> { co_return; };
            for (std::size_t i = 0; i < cases.size(); ++i) {
                auto c = bc::start_consumer(fx, cases[i].second, handler);
                finished[i] = co_await bc::eventually([&] { return c->done(); }, std::chrono::seconds(5));
                errors[i] = c->error();
                if (!finished[i]) co_await c->stop();
            }
            // The same options, made valid, run until stopped.
            auto c = bc::start_consumer(fx, valid, handler);
            co_await boong::test::sleep_for(std::chrono::milliseconds(50));
            valid_ran = !c->done();
            valid_stopped = co_await c->stop();
            valid_error = c->error();
        },
        std::chrono::seconds(60));
    for (std::size_t i = 0; i < cases.size(); ++i) {
        INFO(cases[i].first);
        CHECK(finished[i]);
        REQUIRE(errors[i].has_value());
        CHECK(*errors[i] == boong::errc::invalid_argument);
    }
    CHECK(valid_ran);
    CHECK(valid_stopped);
    CHECK_FALSE(valid_error.has_value());
}

// ---- outages: a dependency that cannot be reached is waited out, never counted

TEMPLATE_TEST_CASE("broker conformance: a dependency outage is waited out: nothing counted, fetching paused, "
                   "everything handled once it ends, nothing dead-lettered",
                   "[broker][conformance][outage]", BOONG_BROKER_FIXTURES) {
    namespace bc = boong::test::conformance;
    namespace asio = boost::asio;
    TestType fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("outage");
    const auto group = fx.unique("g");
    std::vector<std::string> published;
    std::vector<bc::Seen> during, after;  // handler calls while the dependency was down, and after
    bool down = true;
    std::size_t dead = 0;
    bool stopped = false;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> these_groups{group};
            co_await bc::declare(fx, topic, these_groups);
            for (int i = 0; i < 3; ++i)
                published.push_back(co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "Charge", i)));
            auto o = bc::consumer_options(topic, group, "c1");
            o.settings.visibility_timeout = fx.short_timeout();
            o.settings.max_deliveries = 2;
            o.settings.outage_backoff = boong::RetryPolicy{1, std::chrono::milliseconds(10), 2.0,
                                                           std::chrono::milliseconds(40), 0.2};
            auto c = bc::start_consumer(fx, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                if (down) {
                    during.push_back(bc::seen(d));
                    throw boong::Unavailable("the payment gateway does not answer");
                }
                after.push_back(bc::seen(d));
                co_return;
            });
            // Far longer than max_deliveries redeliveries would take.
            co_await boong::test::sleep_for(8 * fx.short_timeout());
            down = false;
            co_await bc::until([&] { return after.size() >= published.size(); });
            co_await boong::test::sleep_for(4 * fx.short_timeout());  // nothing more comes
            stopped = co_await c->stop();
            auto letters = co_await fx.broker().async_dead_letters(topic, "", 100, asio::use_awaitable);
            dead = letters.size();
        },
        std::chrono::seconds(30));
    CHECK(stopped);
    // Only the first message was tried while the dependency was down (again
    // and again, as the probe), always as its first delivery.
    REQUIRE(during.size() >= 3);
    for (const auto& s : during) {
        CHECK(s.message_id == published[0]);
        CHECK(s.delivery_count == 1);
    }
    // Afterwards each message once, as its first delivery, the held one first.
    REQUIRE(after.size() == published.size());
    for (std::size_t i = 0; i < after.size(); ++i) {
        CHECK(after[i].message_id == published[i]);
        CHECK(after[i].delivery_count == 1);
    }
    CHECK(dead == 0);
}

namespace boong::test::conformance {

// What Observer::consumer_backlog was told, in order.
class BacklogSamples : public Observer {
public:
    struct Sample {
        std::string topic, group;
        std::optional<std::size_t> pending, lag;
        std::optional<std::chrono::nanoseconds> oldest_pending_age;
    };
    void consumer_backlog(std::string_view topic, std::string_view group, std::optional<std::size_t> pending,
                          std::optional<std::size_t> lag,
                          std::optional<std::chrono::nanoseconds> oldest_pending_age) override {
        samples.push_back({std::string(topic), std::string(group), pending, lag, oldest_pending_age});
    }
    // Calls come on the consumer's strand; the tests run one thread.
    std::vector<Sample> samples;
};

}  // namespace boong::test::conformance

TEMPLATE_TEST_CASE("broker conformance: a consumer with an observer samples how far its group trails",
                   "[broker][conformance][backlog]", BOONG_BROKER_FIXTURES) {
    namespace bc = boong::test::conformance;
    namespace asio = boost::asio;
    using Sample = bc::BacklogSamples::Sample;
    TestType fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("backlog");
    const auto group = fx.unique("g");
    auto observer = std::make_shared<bc::BacklogSamples>();
    bool release = false;
    std::size_t handled = 0;
    std::optional<Sample> busy, idle;
    bool stopped = false;
    constexpr std::size_t kMessages = 5;
    const auto started = std::chrono::steady_clock::now();
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> these_groups{group};
            co_await bc::declare(fx, topic, these_groups);
            for (std::size_t i = 0; i < kMessages; ++i)
                co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "Order", static_cast<int>(i)));
            auto o = bc::consumer_options(topic, group, "c1");
            o.settings.observer = observer;
            o.settings.backlog_interval = std::chrono::milliseconds(20);
            auto c = bc::start_consumer(fx, o, [&](const boong::Delivery&) -> asio::awaitable<void> {
                co_await bc::until([&] { return release; }, std::chrono::seconds(20));
                ++handled;
            });
            // The first message held by its handler, four not delivered yet.
            auto holding = [&] {
                for (const auto& s : observer->samples) {
                    if (s.lag == std::size_t{kMessages - 1}) {
                        busy = s;
                        return true;
                    }
                }
                return false;
            };
            co_await bc::until(holding, std::chrono::seconds(10));
            co_await boong::test::sleep_for(std::chrono::milliseconds(60));  // an age to see
            const auto seen = observer->samples.size();
            co_await bc::until([&] { return observer->samples.size() > seen; });
            release = true;
            co_await bc::until([&] { return handled == kMessages; }, std::chrono::seconds(10));
            auto drained = [&] {
                const auto& s = observer->samples.back();
                if (s.lag != std::size_t{0} || (bc::shows_pending<TestType>() && s.pending != std::size_t{0})) return false;
                idle = s;
                return true;
            };
            co_await bc::until(drained, std::chrono::seconds(10));
            stopped = co_await c->stop();
        },
        std::chrono::seconds(40));
    const auto elapsed = std::chrono::steady_clock::now() - started;
    CHECK(stopped);
    REQUIRE(busy);
    REQUIRE(idle);
    for (const auto& s : observer->samples) {
        CHECK(s.topic == topic);
        CHECK(s.group == group);
    }
    if constexpr (bc::shows_pending<TestType>()) {
        CHECK(busy->pending == std::size_t{1});
        // The last sample while the first message was held: older than the wait above.
        std::optional<std::chrono::nanoseconds> held_age;
        for (const auto& s : observer->samples) {
            if (s.lag == std::size_t{kMessages - 1} && s.oldest_pending_age) held_age = s.oldest_pending_age;
        }
        REQUIRE(held_age);
        CHECK(*held_age >= std::chrono::milliseconds(50));
        CHECK(*held_age <= elapsed);
        CHECK(idle->pending == std::size_t{0});
        CHECK(idle->oldest_pending_age == std::chrono::nanoseconds::zero());
    } else {
        for (const auto& s : observer->samples) {
            CHECK_FALSE(s.pending);
            CHECK_FALSE(s.oldest_pending_age);
        }
    }
}

TEMPLATE_TEST_CASE("broker conformance: a consumer holding a message through an outage keeps it from the group's "
                   "other consumers",
                   "[broker][conformance][outage]", BOONG_BROKER_FIXTURES) {
    namespace bc = boong::test::conformance;
    namespace asio = boost::asio;
    TestType fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("held");
    const auto group = fx.unique("g");
    // Long enough that a loaded machine keeps its holds in time.
    const auto visibility = std::max(fx.short_timeout(), std::chrono::milliseconds(400));
    std::string id;
    std::vector<bc::Seen> by_a, by_b;
    bool down = true, stopped = false;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> these_groups{group};
            co_await bc::declare(fx, topic, these_groups);
            auto o = bc::consumer_options(topic, group, "a");
            o.settings.visibility_timeout = visibility;
            o.settings.outage_backoff = boong::RetryPolicy{1, std::chrono::milliseconds(200), 2.0,
                                                           std::chrono::milliseconds(400), 0.2};
            auto a = bc::start_consumer(fx, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                by_a.push_back(bc::seen(d));
                if (down) throw boong::Error(boong::errc::store_unavailable, "the event store is down");
                co_return;
            });
            id = co_await bc::publish(fx.broker(), topic, bc::numbered_event(ids, "Reserve", 1));
            co_await bc::until([&] { return !by_a.empty(); });
            o.consumer = "b";
            auto b = bc::start_consumer(fx, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                by_b.push_back(bc::seen(d));
                co_return;
            });
            co_await boong::test::sleep_for(6 * visibility);
            down = false;
            co_await bc::until([&] { return !by_a.empty() && !down && by_a.back().message_id == id &&
                                                 by_a.size() >= 2; });
            co_await boong::test::sleep_for(2 * visibility);
            stopped = co_await a->stop();
            stopped = co_await b->stop() && stopped;
        },
        std::chrono::seconds(30));
    CHECK(stopped);
    CHECK(by_b.empty());  // b was healthy all along, and never got it
    REQUIRE(by_a.size() >= 2);
    for (const auto& s : by_a) {
        CHECK(s.message_id == id);
        CHECK(s.delivery_count == 1);
    }
}

// ---- poison: a message that kills its consumers is quarantined

TEMPLATE_TEST_CASE("broker conformance: a message whose consumers keep dying while handling it is quarantined after "
                   "max_deliveries, never reaching a handler again",
                   "[broker][conformance][poison]", BOONG_BROKER_FIXTURES) {
    namespace bc = boong::test::conformance;
    namespace asio = boost::asio;
    TestType fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("poison");
    const auto group = fx.unique("g");
    const auto event = bc::make_event(ids, "Poison", {{"n", 1}});
    std::string id;
    int hung = 0, handled = 0;
    std::vector<boong::DeadLetter> dead;
    bool stopped = true;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> these_groups{group};
            co_await bc::declare(fx, topic, these_groups);
            id = co_await bc::publish(fx.broker(), topic, event);
            auto o = bc::consumer_options(topic, group, "c0");
            o.settings.visibility_timeout = fx.short_timeout();
            o.settings.max_deliveries = 2;
            o.settings.shutdown_grace = std::chrono::milliseconds(0);
            // Two consumers in turn "die" in the handler (it never returns; the
            // stop abandons it): like a process killed while handling it.
            for (int i = 0; i < 2; ++i) {
                o.consumer = "dying-" + std::to_string(i);
                auto c = bc::start_consumer(fx, o, [&](const boong::Delivery&) -> asio::awaitable<void> {
                    ++hung;
                    co_await boong::test::sleep_for(std::chrono::hours(1));
                });
                co_await bc::until([&] { return hung == i + 1; });
                stopped = co_await c->stop() && stopped;
            }
            o.consumer = "healthy";
            auto c = bc::start_consumer(fx, o, [&](const boong::Delivery&) -> asio::awaitable<void> {
                ++handled;
                co_return;
            });
            for (int i = 0; i < 500 && dead.empty(); ++i) {
                dead = co_await fx.broker().async_dead_letters(topic, "", 10, asio::use_awaitable);
                co_await boong::test::sleep_for(std::chrono::milliseconds(10));
            }
            co_await boong::test::sleep_for(4 * fx.short_timeout());
            stopped = co_await c->stop() && stopped;
        },
        std::chrono::seconds(30));
    CHECK(stopped);
    CHECK(hung == 2);
    CHECK(handled == 0);
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].source_message_id == id);
    CHECK(dead[0].delivery_count == 2);
    CHECK_THAT(dead[0].reason, Catch::StartsWith("quarantined: 2 deliveries never settled"));
    REQUIRE(dead[0].event.has_value());
    bc::check_same_event(*dead[0].event, event);
}

// ---- dead letters: list, send back, drop

TEMPLATE_TEST_CASE("broker conformance: dead letters are listed, sent back with their event ids, and dropped",
                   "[broker][conformance][dlq]", BOONG_BROKER_FIXTURES) {
    namespace bc = boong::test::conformance;
    namespace asio = boost::asio;
    TestType fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("dlq-admin");
    const auto group = fx.unique("g");
    std::vector<boong::EventData> events;
    for (int i = 0; i < 4; ++i) events.push_back(bc::numbered_event(ids, "Refund", i));
    bool refuse = true;
    std::vector<boong::Delivery> handled;
    std::vector<boong::DeadLetter> listed, page, left;
    boong::Clock::time_point between{};
    std::size_t by_id = 0, missing = 0, dropped = 0, rest = 0;
    std::vector<boong::error_code> invalid;
    bool stopped = false;
    auto wait_dead = [&](std::size_t n) -> asio::awaitable<void> {
        for (int i = 0; i < 500; ++i) {
            listed = co_await fx.broker().async_dead_letters(topic, "", 100, asio::use_awaitable);
            if (listed.size() >= n) break;
            co_await boong::test::sleep_for(std::chrono::milliseconds(10));
        }
    };
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> these_groups{group};
            co_await bc::declare(fx, topic, these_groups);
            auto& b = fx.broker();
            auto c = bc::start_consumer(fx, bc::consumer_options(topic, group, "c1"),
                                        [&](const boong::Delivery& d) -> asio::awaitable<void> {
                                            if (refuse) throw boong::Rejection("refund not allowed");
                                            handled.push_back(d);
                                            co_return;
                                        });
            co_await bc::publish(b, topic, events[0]);
            co_await bc::publish(b, topic, events[1]);
            co_await wait_dead(2);
            co_await boong::test::sleep_for(std::chrono::milliseconds(30));
            between = boong::Clock::now();
            co_await boong::test::sleep_for(std::chrono::milliseconds(30));
            co_await bc::publish(b, topic, events[2]);
            co_await bc::publish(b, topic, events[3]);
            co_await wait_dead(4);
            REQUIRE(listed.size() == 4);
            page = co_await b.async_dead_letters(topic, listed[0].message_id, 2, asio::use_awaitable);

            refuse = false;
            std::vector<std::string> one{listed[0].message_id, "0-1"};
            by_id = co_await b.async_redrive(topic, boong::DeadLetterSelection::of(one), asio::use_awaitable);
            std::vector<std::string> none{"0-1"};
            missing = co_await b.async_redrive(topic, boong::DeadLetterSelection::of(none), asio::use_awaitable);
            dropped = co_await b.async_drop(topic, boong::DeadLetterSelection::older_than(between), asio::use_awaitable);
            rest = co_await b.async_redrive(topic, boong::DeadLetterSelection::everything(), asio::use_awaitable);
            co_await bc::until([&] { return handled.size() >= 3; });
            co_await boong::test::sleep_for(4 * fx.short_timeout());
            left = co_await b.async_dead_letters(topic, "", 100, asio::use_awaitable);
            stopped = co_await c->stop();

            for (auto selection : {boong::DeadLetterSelection{},
                                   boong::DeadLetterSelection{{"1-0"}, true, std::nullopt}}) {
                try {
                    co_await b.async_redrive(topic, selection, asio::use_awaitable);
                } catch (const boost::system::system_error& e) {
                    invalid.push_back(e.code());
                }
            }
            try {
                co_await b.async_dead_letters("", "", 10, asio::use_awaitable);
            } catch (const boost::system::system_error& e) {
                invalid.push_back(e.code());
            }
        },
        std::chrono::seconds(60));
    CHECK(stopped);
    REQUIRE(listed.size() == 4);
    for (std::size_t i = 0; i < listed.size(); ++i) {
        INFO("dead letter " << i);
        CHECK(listed[i].source_topic == topic);
        CHECK(listed[i].group == group);
        CHECK(listed[i].reason == "refund not allowed");
        CHECK(listed[i].delivery_count == 1);
        REQUIRE(listed[i].event.has_value());
        bc::check_same_event(*listed[i].event, events[i]);
        CHECK_FALSE(listed[i].event->metadata.extra.contains("dead_letter"));
        CHECK((i < 2 ? listed[i].at < between : listed[i].at > between));
    }
    REQUIRE(page.size() == 2);
    CHECK(page[0].message_id == listed[1].message_id);
    CHECK(page[1].message_id == listed[2].message_id);
    CHECK(by_id == 1);
    CHECK(missing == 0);
    CHECK(dropped == 1);  // the second; the first had gone back already
    CHECK(rest == 2);
    // Sent back as they first arrived: same event ids, no dead_letter record.
    REQUIRE(handled.size() == 3);
    for (std::size_t i = 0; i < handled.size(); ++i) {
        const auto& want = events[i == 0 ? 0 : i + 1];
        bc::check_same_event(handled[i].event, want);
        CHECK_FALSE(handled[i].event.metadata.extra.contains("dead_letter"));
        CHECK(handled[i].delivery_count == 1);
    }
    CHECK(left.empty());
    REQUIRE(invalid.size() == 3);
    for (const auto& code : invalid) CHECK(code == boong::errc::invalid_argument);
}

// Signed envelopes (boong/signed_broker.hpp) over this backend: what someone
// who can write to the broker but holds no key sends is dead-lettered with
// the reason, and never reaches the handler; what is signed with a key the
// consumer holds (either key of a rotation) does, as it was sent.
TEMPLATE_TEST_CASE("broker conformance: a signed broker dead-letters forged, unsigned and changed messages",
                   "[broker][conformance][signing]", BOONG_BROKER_FIXTURES) {
    namespace bc = boong::test::conformance;
    namespace asio = boost::asio;
    TestType fx;
    boong::IdGenerator ids;
    const auto topic = fx.unique("OrderCreated");
    const auto group = fx.unique("inventory");
    const auto reader_group = fx.unique("dlq-reader");
    auto ring = [](std::vector<std::pair<std::string, char>> keys, std::string sign_with) {
        std::vector<boong::SigningKey> k;
        for (const auto& [id, fill] : keys) k.push_back({id, std::string(32, fill)});
        return std::make_shared<const boong::KeyRing>(std::move(k), std::move(sign_with));
    };
    // The consumer holds both keys of a rotation (signing with the new one);
    // an old publisher still signs with k1; the attacker has a key of its own.
    auto& raw = fx.broker();
    boong::SignedBroker consumer_side(raw, ring({{"k1", 'a'}, {"k2", 'b'}}, "k2"));
    boong::SignedBroker old_publisher(raw, ring({{"k1", 'a'}}, "k1"));
    boong::SignedBroker attacker(raw, ring({{"k2", 'x'}}, "k2"));  // the right id, the wrong secret

    std::vector<boong::EventData> good{bc::numbered_event(ids, "OrderCreated", 1),
                                       bc::numbered_event(ids, "OrderCreated", 2)};
    auto forged = bc::make_event(ids, "OrderCreated", {{"n", 3}, {"quantity", -1000}, {"amount_cents", -50000}});
    auto wrong_key = bc::numbered_event(ids, "OrderCreated", 4);
    // Signed, then changed on the way.
    auto changed = bc::numbered_event(ids, "OrderCreated", 5);
    boong::sign_event(changed, topic, consumer_side.keys());
    changed.payload["quantity"] = -1000;
    // A valid signature copied onto another event.
    auto copied = bc::numbered_event(ids, "OrderCreated", 6);
    auto original = bc::numbered_event(ids, "OrderCreated", 7);
    boong::sign_event(original, topic, consumer_side.keys());
    copied.metadata.extra["signature"] = original.metadata.extra.at("signature");
    auto malformed = bc::numbered_event(ids, "OrderCreated", 8);
    malformed.metadata.extra["signature"] = "trust me";
    // Signed for another topic.
    auto elsewhere = bc::numbered_event(ids, "OrderCreated", 9);
    boong::sign_event(elsewhere, topic + "-other", consumer_side.keys());

    std::vector<boong::EventData> handled;
    std::vector<boong::Delivery> dead;
    bool stopped = false;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            const std::vector<std::string> these_groups{group};
            co_await bc::declare(fx, topic, these_groups);
            const std::vector<std::string> reader_groups{reader_group};
            co_await bc::declare(fx, boong::dead_letter_topic(topic), reader_groups);
            co_await consumer_side.async_publish(topic, good[0], asio::use_awaitable);
            co_await old_publisher.async_publish(topic, good[1], asio::use_awaitable);
            co_await raw.async_publish(topic, forged, asio::use_awaitable);
            co_await attacker.async_publish(topic, wrong_key, asio::use_awaitable);
            co_await raw.async_publish(topic, changed, asio::use_awaitable);
            co_await raw.async_publish(topic, copied, asio::use_awaitable);
            co_await raw.async_publish(topic, malformed, asio::use_awaitable);
            co_await raw.async_publish(topic, elsewhere, asio::use_awaitable);
            auto o = bc::consumer_options(topic, group, "c1");
            o.settings.visibility_timeout = fx.short_timeout();
            auto c = std::make_unique<bc::BackgroundConsumer>(
                fx.ioc(), consumer_side, o, [&](const boong::Delivery& d) -> asio::awaitable<void> {
                    handled.push_back(d.event);
                    co_return;
                });
            auto reader = bc::start_consumer(
                fx, bc::consumer_options(boong::dead_letter_topic(topic), reader_group, "r"),
                [&](const boong::Delivery& d) -> asio::awaitable<void> {
                    dead.push_back(d);
                    co_return;
                });
            co_await bc::until([&] { return dead.size() >= 6 && handled.size() >= 2; }, std::chrono::seconds(20));
            co_await boong::test::sleep_for(4 * fx.short_timeout());  // nothing more comes
            stopped = co_await c->stop();
            stopped = co_await reader->stop() && stopped;
        },
        std::chrono::seconds(40));
    CHECK(stopped);
    REQUIRE(handled.size() == 2);
    std::set<int> ns;
    for (const auto& h : handled) {
        ns.insert(h.payload.at("n").get<int>());
        CHECK(h.metadata.extra.at("tenant") == "acme");  // the rest of the envelope as sent
        CHECK(h.metadata.extra.at("signature").at("key") == (h.payload.at("n") == 1 ? "k2" : "k1"));
    }
    CHECK(ns == std::set<int>{1, 2});
    REQUIRE(dead.size() == 6);
    std::map<int, std::string> reasons;
    for (const auto& d : dead) {
        reasons[d.event.payload.at("n").get<int>()] =
            d.event.metadata.extra.at("dead_letter").value("reason", std::string());
    }
    CHECK_THAT(reasons[3], Catch::Contains("signature: unsigned"));
    CHECK_THAT(reasons[4], Catch::Contains("bad signature (key 'k2')"));
    CHECK_THAT(reasons[5], Catch::Contains("bad signature"));
    CHECK_THAT(reasons[6], Catch::Contains("bad signature"));
    CHECK_THAT(reasons[8], Catch::Contains("malformed signature"));
    CHECK_THAT(reasons[9], Catch::Contains("bad signature"));
    CHECK(dead.size() == reasons.size());  // each once
    // The forged entry reached the dead letters as it was sent, for people to see.
    for (const auto& d : dead) {
        if (d.event.payload.at("n") == 3) CHECK(d.event.payload.at("quantity") == -1000);
    }
}
