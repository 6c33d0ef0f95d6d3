// The EventStore contract, as a suite any backend runs.
//
// A test file defines BOONG_STORE_FIXTURES (fixture types, comma-separated)
// and includes this header. A fixture has: a default constructor;
// `boost::asio::io_context& ioc()`; `auto& store()`; and
// `std::string unique(std::string_view base)` returning a name unique to the
// test run (durable backends share one database across tests).
#pragma once

#include "support/async.hpp"
#include "support/events.hpp"

#include <boong/event_store.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <set>
#include <thread>


TEMPLATE_TEST_CASE("store conformance: append and read a stream", "[store][conformance]", BOONG_STORE_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    TestType fx;
    auto& store = fx.store();
    IdGenerator ids;
    const std::string stream = fx.unique("order");
    std::vector<EventData> batch{make_event(ids, "OrderCreated", {{"amount", 10}}),
                                 make_event(ids, "OrderPaid", {{"amount", 10}, {"note", "ünïcødé ✓"}})};
    batch[1].metadata.extra = {{"tenant", "acme"}};
    const auto sent = batch;

    auto r = run(fx.ioc(), [&] {
        return store.async_append(stream, ExpectedVersion::no_stream(), batch, boost::asio::use_awaitable);
    });
    CHECK(r.next_expected_version == 2);
    CHECK(r.last_position == r.first_position + 1);

    auto events = run(fx.ioc(), [&] { return store.async_read_stream(stream, 1, 100, boost::asio::use_awaitable); });
    REQUIRE(events.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(events[i].stream_id == stream);
        CHECK(events[i].version == static_cast<std::int64_t>(i + 1));
        CHECK(events[i].event.event_id == sent[i].event_id);
        CHECK(events[i].event.type == sent[i].type);
        CHECK(events[i].event.schema_version == 1);
        CHECK(events[i].event.payload == sent[i].payload);
        CHECK(events[i].event.metadata.correlation_id == "corr-1");
        CHECK(events[i].event.metadata.causation_id == "cause-1");
        // Stores keep timestamps to the microsecond.
        CHECK(std::chrono::abs(events[i].event.metadata.timestamp - sent[i].metadata.timestamp) <
              std::chrono::microseconds(1));
        CHECK(events[i].stored_at != Clock::time_point{});
    }
    CHECK(events[1].event.metadata.extra == json{{"tenant", "acme"}});
    CHECK(events[1].position == events[0].position + 1);

    // From a version, and in pages.
    auto tail = run(fx.ioc(), [&] { return store.async_read_stream(stream, 2, 100, boost::asio::use_awaitable); });
    REQUIRE(tail.size() == 1);
    CHECK(tail[0].version == 2);
    auto page = run(fx.ioc(), [&] { return store.async_read_stream(stream, 1, 1, boost::asio::use_awaitable); });
    REQUIRE(page.size() == 1);
    CHECK(page[0].version == 1);
    auto none = run(fx.ioc(), [&] {
        return store.async_read_stream(fx.unique("never-written"), 1, 10, boost::asio::use_awaitable);
    });
    CHECK(none.empty());
}

TEMPLATE_TEST_CASE("store conformance: a version mismatch is a conflict that names both versions and writes nothing",
                   "[store][conformance]", BOONG_STORE_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    TestType fx;
    auto& store = fx.store();
    IdGenerator ids;
    const std::string stream = fx.unique("account");
    auto append = [&](ExpectedVersion v, std::vector<EventData> events) {
        return run(fx.ioc(), [&] { return store.async_append(stream, v, events, boost::asio::use_awaitable); });
    };
    append(ExpectedVersion::no_stream(), {make_event(ids, "Opened")});
    append(ExpectedVersion::exactly(1), {make_event(ids, "Credited")});

    try {
        append(ExpectedVersion::exactly(1), {make_event(ids, "Debited")});
        FAIL("a stale expected version was accepted");
    } catch (const ConcurrencyConflict& c) {
        CHECK(c.code() == errc::concurrency_conflict);
        CHECK(c.stream() == stream);
        CHECK(c.expected() == 1);
        CHECK(c.actual() == 2);
        CHECK_THAT(std::string(c.what()), Catch::Contains(stream) && Catch::Contains("version 1") &&
                                              Catch::Contains("version 2"));
    }
    CHECK(code_of([&] { append(ExpectedVersion::no_stream(), {make_event(ids, "Opened")}); }) ==
          errc::concurrency_conflict);
    auto events = run(fx.ioc(), [&] { return store.async_read_stream(stream, 1, 100, boost::asio::use_awaitable); });
    CHECK(events.size() == 2);
    // `any` skips the check.
    auto r = append(ExpectedVersion::any(), {make_event(ids, "Noted")});
    CHECK(r.next_expected_version == 3);
}

TEMPLATE_TEST_CASE("store conformance: appending the same events again after a lost reply is idempotent",
                   "[store][conformance]", BOONG_STORE_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    TestType fx;
    auto& store = fx.store();
    IdGenerator ids;
    const std::string stream = fx.unique("retry");
    std::vector<EventData> batch{make_event(ids, "A"), make_event(ids, "B")};
    auto append = [&](const std::string& s, ExpectedVersion v, std::vector<EventData> events) {
        return run(fx.ioc(), [&] { return store.async_append(s, v, events, boost::asio::use_awaitable); });
    };
    auto first = append(stream, ExpectedVersion::no_stream(), batch);
    auto again = append(stream, ExpectedVersion::no_stream(), batch);
    CHECK(again.next_expected_version == first.next_expected_version);
    CHECK(again.first_position == first.first_position);
    CHECK(again.last_position == first.last_position);
    auto events = run(fx.ioc(), [&] { return store.async_read_stream(stream, 1, 100, boost::asio::use_awaitable); });
    CHECK(events.size() == 2);

    // An event id reused anywhere else is refused.
    CHECK(code_of([&] { append(fx.unique("other"), ExpectedVersion::any(), {batch[0]}); }) == errc::duplicate_event);
    CHECK(code_of([&] { append(stream, ExpectedVersion::exactly(2), {batch[1]}); }) == errc::duplicate_event);
}

TEMPLATE_TEST_CASE("store conformance: bad input is refused and nothing is written", "[store][conformance]",
                   BOONG_STORE_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    TestType fx;
    auto& store = fx.store();
    IdGenerator ids;
    const std::string stream = fx.unique("bad");
    auto attempt = [&](std::string s, ExpectedVersion v, std::vector<EventData> events) {
        return code_of([&] {
            run(fx.ioc(), [&] { return store.async_append(s, v, events, boost::asio::use_awaitable); });
        });
    };
    const auto ok = make_event(ids, "Fine");
    CHECK(attempt("", ExpectedVersion::any(), {ok}) == errc::invalid_argument);
    CHECK(attempt(std::string(max_stream_id_length + 1, 's'), ExpectedVersion::any(), {ok}) == errc::invalid_argument);
    CHECK(attempt(stream, ExpectedVersion::exactly(-1), {ok}) == errc::invalid_argument);
    CHECK(attempt(stream, ExpectedVersion::any(), {}) == errc::invalid_argument);
    auto bad = ok;
    bad.event_id = "not-a-uuid";
    CHECK(attempt(stream, ExpectedVersion::any(), {bad}) == errc::invalid_argument);
    bad = make_event(ids, "");
    CHECK(attempt(stream, ExpectedVersion::any(), {bad}) == errc::invalid_argument);
    bad = make_event(ids, "BadVersion");
    bad.schema_version = 0;
    CHECK(attempt(stream, ExpectedVersion::any(), {bad}) == errc::invalid_argument);
    bad = make_event(ids, "BadPayload", {{"text", std::string("\xff\xfe")}});
    CHECK(attempt(stream, ExpectedVersion::any(), {bad}) == errc::invalid_argument);
    bad = make_event(ids, "NaN", {{"x", std::numeric_limits<double>::quiet_NaN()}});
    CHECK(attempt(stream, ExpectedVersion::any(), {bad}) == errc::invalid_argument);
    // A good event with a bad one: the batch is refused whole.
    CHECK(attempt(stream, ExpectedVersion::any(), {make_event(ids, "Good"), bad}) == errc::invalid_argument);
    // The same id twice in one append.
    CHECK(attempt(stream, ExpectedVersion::any(), {ok, ok}) == errc::invalid_argument);
    // U+0000 anywhere: PostgreSQL's text and jsonb cannot hold it, so no store takes it.
    CHECK(attempt(stream + std::string(1, '\0'), ExpectedVersion::any(), {ok}) == errc::invalid_argument);
    bad = make_event(ids, "NulPayload", {{"text", std::string("a\0b", 3)}});
    CHECK(attempt(stream, ExpectedVersion::any(), {bad}) == errc::invalid_argument);
    bad = make_event(ids, "NulKey", {{std::string("k\0", 2), 1}});
    CHECK(attempt(stream, ExpectedVersion::any(), {bad}) == errc::invalid_argument);
    bad = make_event(ids, std::string("Nul\0Type", 8));
    CHECK(attempt(stream, ExpectedVersion::any(), {bad}) == errc::invalid_argument);
    bad = make_event(ids, "NulCorrelation");
    bad.metadata.correlation_id = std::string("c\0", 2);
    CHECK(attempt(stream, ExpectedVersion::any(), {bad}) == errc::invalid_argument);

    auto events = run(fx.ioc(), [&] { return store.async_read_stream(stream, 1, 100, boost::asio::use_awaitable); });
    CHECK(events.empty());
    CHECK(code_of([&] {
              run(fx.ioc(), [&] { return store.async_read_stream(stream, 0, 10, boost::asio::use_awaitable); });
          }) == errc::invalid_argument);
    CHECK(code_of([&] {
              run(fx.ioc(), [&] { return store.async_read_all(1, 0, boost::asio::use_awaitable); });
          }) == errc::invalid_argument);
}

TEMPLATE_TEST_CASE("store conformance: read_all returns every event once, in global order", "[store][conformance]",
                   BOONG_STORE_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    TestType fx;
    auto& store = fx.store();
    IdGenerator ids;
    // Where this test's events start: a shared backend may hold others' events.
    auto before = run(fx.ioc(), [&]() -> boost::asio::awaitable<std::int64_t> {
        std::int64_t next = 1;
        for (;;) {
            auto page = co_await store.async_read_all(next, 1000, boost::asio::use_awaitable);
            if (page.empty()) co_return next;
            next = page.back().position + 1;
        }
    });
    std::set<std::string> written;
    const std::string s1 = fx.unique("s1"), s2 = fx.unique("s2");
    for (int i = 0; i < 10; ++i) {
        auto e = make_event(ids, "E", {{"i", i}});
        written.insert(e.event_id);
        const auto& s = i % 2 ? s1 : s2;
        run(fx.ioc(), [&] {
            return store.async_append(s, ExpectedVersion::any(), std::vector<EventData>{e}, boost::asio::use_awaitable);
        });
    }
    std::vector<RecordedEvent> seen;
    std::int64_t next = before;
    // A store may show an event to read_all a moment after its append
    // returned (PostgreSQL holds back what committed above another session's
    // running transaction): page on until all ten are seen, or for 30 s.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (seen.size() < written.size() && std::chrono::steady_clock::now() < deadline) {
        auto page = run(fx.ioc(), [&] { return store.async_read_all(next, 3, boost::asio::use_awaitable); });
        if (page.empty()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            continue;
        }
        CHECK(page.size() <= 3);
        for (auto& e : page) {
            if (written.count(e.event.event_id)) seen.push_back(e);
        }
        next = page.back().position + 1;
    }
    // Whatever follows holds none of them again.
    for (auto page = run(fx.ioc(), [&] { return store.async_read_all(next, 1000, boost::asio::use_awaitable); });
         !page.empty();
         page = run(fx.ioc(), [&] { return store.async_read_all(next, 1000, boost::asio::use_awaitable); })) {
        for (auto& e : page) {
            if (written.count(e.event.event_id)) seen.push_back(e);
        }
        next = page.back().position + 1;
    }
    REQUIRE(seen.size() == 10);
    for (std::size_t i = 0; i < seen.size(); ++i) {
        CHECK(seen[i].event.payload.at("i") == static_cast<int>(i));
        if (i > 0) CHECK(seen[i].position > seen[i - 1].position);
    }
}

TEMPLATE_TEST_CASE("store conformance: snapshots keep the latest state of a stream", "[store][conformance]",
                   BOONG_STORE_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    TestType fx;
    auto& store = fx.store();
    IdGenerator ids;
    const std::string stream = fx.unique("snap");
    auto load = [&] {
        return run(fx.ioc(), [&] { return store.async_load_snapshot(stream, boost::asio::use_awaitable); });
    };
    auto save = [&](Snapshot s) {
        run(fx.ioc(), [&] { return store.async_save_snapshot(s, boost::asio::use_awaitable); });
    };
    CHECK_FALSE(load().has_value());
    std::vector<EventData> events;
    for (int i = 0; i < 5; ++i) events.push_back(make_event(ids, "Tick"));
    run(fx.ioc(), [&] {
        return store.async_append(stream, ExpectedVersion::no_stream(), events, boost::asio::use_awaitable);
    });
    save(Snapshot{stream, 3, "Counter", 1, {{"count", 3}}, {}});
    auto s = load();
    REQUIRE(s.has_value());
    CHECK(s->version == 3);
    CHECK(s->state == json{{"count", 3}});
    CHECK(s->type == "Counter");
    save(Snapshot{stream, 5, "Counter", 1, {{"count", 5}}, {}});
    save(Snapshot{stream, 4, "Counter", 1, {{"count", 4}}, {}});  // older than what is kept: ignored
    CHECK(load()->version == 5);
    CHECK(load()->state == json{{"count", 5}});
    // A snapshot ahead of its stream, or of a bad shape, is refused.
    CHECK(code_of([&] { save(Snapshot{stream, 9, "Counter", 1, {}, {}}); }) == errc::invalid_argument);
    CHECK(code_of([&] { save(Snapshot{stream, 0, "Counter", 1, {}, {}}); }) == errc::invalid_argument);
    CHECK(code_of([&] { save(Snapshot{stream, 2, "", 1, {}, {}}); }) == errc::invalid_argument);
    CHECK(code_of([&] { save(Snapshot{stream, 2, std::string("C\0", 2), 1, {}, {}}); }) == errc::invalid_argument);
    CHECK(code_of([&] { save(Snapshot{stream, 2, "Counter", 1, {{"s", std::string("\0", 1)}}, {}}); }) ==
          errc::invalid_argument);
}
