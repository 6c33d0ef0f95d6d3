// The outbox relay with no server: the memory store, outbox and broker.
#include <boong/memory/broker.hpp>
#include <boong/memory/outbox.hpp>
#include <boong/memory/store.hpp>
#include <boong/outbox_relay.hpp>

#include "support/async.hpp"
#include "support/events.hpp"

#include <catch2/catch.hpp>
#include <spdlog/sinks/ostream_sink.h>

#include <chrono>
#include <functional>
#include <sstream>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Relay = boong::OutboxRelay<boong::MemoryEventStore, boong::MemoryOutbox, boong::MemoryBroker>;

struct World {
    asio::io_context ioc;
    boong::MemoryEventStore store{ioc.get_executor()};
    boong::MemoryBroker broker{ioc.get_executor()};
    boong::MemoryOutbox outbox{store};
    std::ostringstream log_text;
    std::shared_ptr<spdlog::logger> logger =
        std::make_shared<spdlog::logger>("relay", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));

    bool until(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
        return boong::test::run_until(ioc, done, limit);
    }
    boong::OutboxRelayOptions options(std::string owner = {}) {
        boong::OutboxRelayOptions o;
        o.relay = "bus";
        o.owner = std::move(owner);
        o.topic = [](const boong::RecordedEvent& e) { return e.stream_id; };
        o.poll_interval = 2ms;
        o.lease = 3s;
        o.logger = logger;
        return o;
    }
    void append(const std::string& stream, int n) {
        boong::IdGenerator ids;
        for (int i = 0; i < n; ++i) store.append(stream, boong::ExpectedVersion::any(), {boong::test::make_event(ids, "E")});
    }
    void stop(Relay& relay) {
        boong::test::run_until_done(ioc, [&] { return relay.stop(); });
    }
};

}  // namespace

TEST_CASE("outbox relay on memory: every stored event is published once, in order", "[relay][memory]") {
    World w;
    w.append("a", 30);
    Relay relay(w.store, w.outbox, w.broker, w.options("one/1"));
    relay.start();
    REQUIRE(w.until([&] { return w.broker.read_topic("a").size() == 30; }));
    w.append("a", 20);
    REQUIRE(w.until([&] { return w.broker.read_topic("a").size() == 50; }));
    const auto published = w.broker.read_topic("a");
    for (std::size_t i = 0; i < published.size(); ++i) {
        CHECK(published[i].event.metadata.extra.at("stream_version").get<std::int64_t>() ==
              static_cast<std::int64_t>(i) + 1);
    }
    w.stop(relay);
    CHECK(w.outbox.status("bus").position == 50);
    CHECK(w.outbox.status("bus").pending == 0);
}

TEST_CASE("outbox relay on memory: by default a restarted relay takes its cursor back at once",
          "[relay][memory]") {
    World w;
    w.append("a", 5);
    // The owner name is the same in every run of this program: a predecessor
    // that died holding the cursor (a lease of a minute) is no obstacle.
    const auto name = boong::stable_owner_name("relay-bus");
    REQUIRE(w.outbox.acquire("bus", name + "/died", 60s));
    Relay relay(w.store, w.outbox, w.broker, w.options());
    CHECK(relay.owner().starts_with(name + "/"));
    const auto started = std::chrono::steady_clock::now();
    relay.start();
    REQUIRE(w.until([&] { return w.broker.read_topic("a").size() == 5; }));
    CHECK(std::chrono::steady_clock::now() - started < 2s);  // far less than the lease
    w.stop(relay);
    // Another program's relay (another name) waits for the lease.
    REQUIRE(w.outbox.acquire("bus", name + "/again", 60s));
    Relay other(w.store, w.outbox, w.broker, w.options("another-program/1"));
    other.start();
    w.append("a", 1);
    w.until([] { return false; }, 300ms);
    CHECK(w.broker.read_topic("a").size() == 5);
    w.stop(other);
}

TEST_CASE("outbox relay on memory: two live relays with one owner name settle, and say what is wrong",
          "[relay][memory]") {
    World w;
    w.append("a", 3);
    Relay first(w.store, w.outbox, w.broker, w.options("twin/1"));
    first.start();
    REQUIRE(w.until([&] { return w.broker.read_topic("a").size() == 3; }));
    Relay second(w.store, w.outbox, w.broker, w.options("twin/2"));
    second.start();  // takes the cursor at once: to the cursor, twin/1 is its dead predecessor
    REQUIRE(w.until([&] { return first.stats().lost >= 1; }));
    // They do not take the cursor from each other again and again.
    for (int i = 0; i < 20; ++i) {
        w.append("a", 1);
        w.until([] { return false; }, 20ms);
    }
    REQUIRE(w.until([&] { return w.broker.read_topic("a").size() >= 23; }));
    CHECK(first.stats().acquired == 1);
    CHECK(second.stats().acquired == 1);
    CHECK(first.stats().lost == 1);
    CHECK_THAT(w.log_text.str(), Catch::Contains("two live relays share the owner name"));
    w.stop(second);
    w.stop(first);
}
