// The OutboxCursor contract, as a suite any model runs.
//
// A test file defines BOONG_CURSOR_FIXTURES (fixture types, comma-separated)
// and includes this header. A fixture has: a default constructor;
// `boost::asio::io_context& ioc()`; `auto& store()` (the EventStore whose
// order the cursor follows); `auto& cursor()`; and
// `std::string unique(std::string_view base)`.
#pragma once

#include "support/async.hpp"
#include "support/events.hpp"

#include <boong/outbox_cursor.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

namespace boong::test {

template <class Fixture>
std::optional<std::int64_t> acquire(Fixture& fx, const std::string& relay, const std::string& owner,
                                    milliseconds lease = std::chrono::seconds(30)) {
    return run(fx.ioc(), [&] { return fx.cursor().async_acquire(relay, owner, lease, boost::asio::use_awaitable); });
}

template <class Fixture>
bool advance(Fixture& fx, const std::string& relay, const std::string& owner, std::int64_t position) {
    return run(fx.ioc(), [&] {
        return fx.cursor().async_advance(relay, owner, position, std::chrono::seconds(30), boost::asio::use_awaitable);
    });
}

template <class Fixture>
OutboxStatus status(Fixture& fx, const std::string& relay) {
    return run(fx.ioc(), [&] { return fx.cursor().async_status(relay, boost::asio::use_awaitable); });
}

}  // namespace boong::test

TEMPLATE_TEST_CASE("outbox cursor conformance: one owner at a time; a cursor only moves forward",
                   "[outbox][conformance]", BOONG_CURSOR_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    TestType fx;
    const std::string relay = fx.unique("relay");

    // Never ran: position 0, nobody holds it.
    auto s = status(fx, relay);
    CHECK(s.relay == relay);
    CHECK(s.position == 0);
    CHECK(s.owner.empty());
    CHECK_FALSE(s.lease_until);

    CHECK(acquire(fx, relay, "a/1") == std::optional<std::int64_t>(0));
    CHECK(acquire(fx, relay, "b/1") == std::nullopt);       // held by a live lease
    CHECK(acquire(fx, relay, "a/1") == std::optional<std::int64_t>(0));  // its own again
    CHECK(advance(fx, relay, "a/1", 5));
    CHECK_FALSE(advance(fx, relay, "b/1", 9));  // not the owner: nothing written
    CHECK(advance(fx, relay, "a/1", 3));        // never back
    s = status(fx, relay);
    CHECK(s.position == 5);
    CHECK(s.owner == "a/1");
    REQUIRE(s.lease_until);
    CHECK(*s.lease_until > Clock::now());

    // A restarted process (same name, new incarnation) takes it back at once;
    // its predecessor is fenced.
    CHECK(acquire(fx, relay, "a/2") == std::optional<std::int64_t>(5));
    CHECK_FALSE(advance(fx, relay, "a/1", 7));
    CHECK(status(fx, relay).position == 5);

    // Released: another takes over at once, where it stood.
    run(fx.ioc(), [&] { return fx.cursor().async_release(relay, "a/2", boost::asio::use_awaitable); });
    CHECK(acquire(fx, relay, "b/1") == std::optional<std::int64_t>(5));
    // A release by one who does not hold it changes nothing.
    run(fx.ioc(), [&] { return fx.cursor().async_release(relay, "a/2", boost::asio::use_awaitable); });
    CHECK(acquire(fx, relay, "c/1") == std::nullopt);

    // Each relay name has its own cursor.
    CHECK(acquire(fx, fx.unique("other"), "c/1") == std::optional<std::int64_t>(0));
}

TEMPLATE_TEST_CASE("outbox cursor conformance: an expired lease is taken over; pending counts the events after it",
                   "[outbox][conformance]", BOONG_CURSOR_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    TestType fx;
    const std::string relay = fx.unique("relay");
    const std::string stream = fx.unique("s");
    IdGenerator ids;
    std::vector<EventData> events{make_event(ids, "Happened"), make_event(ids, "Happened"), make_event(ids, "Happened")};
    const auto appended = run(fx.ioc(), [&] {
        return fx.store().async_append(stream, ExpectedVersion::any(), events, boost::asio::use_awaitable);
    });

    CHECK(acquire(fx, relay, "a/1", milliseconds(100)) == std::optional<std::int64_t>(0));
    CHECK(advance(fx, relay, "a/1", appended.first_position));
    CHECK(status(fx, relay).pending == appended.last_position - appended.first_position);
    CHECK(acquire(fx, relay, "b/1") == std::nullopt);
    // The advance extended a/1's lease by 30 s: shorten it again, then let it lapse.
    CHECK(acquire(fx, relay, "a/1", milliseconds(100)));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(acquire(fx, relay, "b/1") == std::optional<std::int64_t>(appended.first_position));
    CHECK_FALSE(advance(fx, relay, "a/1", appended.last_position));
}

TEMPLATE_TEST_CASE("outbox cursor conformance: bad names, owners and leases are refused", "[outbox][conformance]",
                   BOONG_CURSOR_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    TestType fx;
    const auto invalid = make_error_code(errc::invalid_argument);
    CHECK(code_of([&] { acquire(fx, "", "a/1"); }) == invalid);
    CHECK(code_of([&] { acquire(fx, std::string(256, 'r'), "a/1"); }) == invalid);
    CHECK(code_of([&] { acquire(fx, fx.unique("relay"), ""); }) == invalid);
    CHECK(code_of([&] { acquire(fx, fx.unique("relay"), "a/1", milliseconds(0)); }) == invalid);
    CHECK(code_of([&] { acquire(fx, fx.unique("relay"), "a/1", std::chrono::hours(25)); }) == invalid);
    CHECK(code_of([&] { status(fx, ""); }) == invalid);
}
