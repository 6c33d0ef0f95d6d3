// The TransactionalStore contract and the Inbox built on it, as a suite any
// backend runs: the same fixtures as the EventStore suite
// (event_store_conformance.hpp, which must be included first).
#pragma once

#include "conformance/event_store_conformance.hpp"

#include <boong/inbox.hpp>
#include <boong/transactional_store.hpp>

#include <atomic>
#include <stdexcept>

TEMPLATE_TEST_CASE("transactional store conformance: an append, a read and an inbox record commit together",
                   "[store][conformance][transaction]", BOONG_STORE_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    TestType fx;
    auto& store = fx.store();
    using Store = std::remove_reference_t<decltype(store)>;
    static_assert(TransactionalStore<Store>);
    using Tx = typename Store::transaction_type;
    IdGenerator ids;
    const std::string stream = fx.unique("tx");
    const std::string consumer = fx.unique("consumer");
    const auto event = make_event(ids, "Charged", {{"amount", 5}});

    // (Bodies may run on a worker thread: they return what they saw, checked here.)
    struct Seen {
        bool processed_before = true;
        std::int64_t version = 0;
        std::vector<std::string> read;  // the transaction sees its own append
        bool recorded = false;
    };
    auto body = [&](Tx& tx) {
        Seen seen;
        seen.processed_before = store.processed_in(tx, consumer, "m1");
        seen.version = store.append_in(tx, stream, ExpectedVersion::no_stream(), {event}).next_expected_version;
        for (const auto& e : store.read_stream_in(tx, stream, 1, 10)) seen.read.push_back(e.event.event_id);
        seen.recorded = store.record_processed_in(tx, consumer, "m1");
        return seen;
    };
    const auto seen = run(fx.ioc(), [&] { return async_transact(store, body, boost::asio::use_awaitable); });
    CHECK_FALSE(seen.processed_before);
    CHECK(seen.version == 1);
    CHECK(seen.read == std::vector<std::string>{event.event_id});
    CHECK(seen.recorded);

    const auto events = run(fx.ioc(), [&] { return store.async_read_stream(stream, 1, 10, boost::asio::use_awaitable); });
    REQUIRE(events.size() == 1);
    CHECK(events[0].event.payload == json{{"amount", 5}});
    auto check_recorded = [&](Tx& tx) {
        // Recorded for this consumer only; recording it again is refused.
        const bool processed = store.processed_in(tx, consumer, "m1");
        const bool other = store.processed_in(tx, consumer + "-other", "m1");
        const bool again = store.record_processed_in(tx, consumer, "m1");
        return processed && !other && !again;
    };
    CHECK(run(fx.ioc(), [&] { return async_transact(store, check_recorded, boost::asio::use_awaitable); }));
}

TEMPLATE_TEST_CASE("transactional store conformance: read_streams_in answers each name, as the transaction sees it",
                   "[store][conformance][transaction]", BOONG_STORE_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    TestType fx;
    auto& store = fx.store();
    using Tx = typename std::remove_reference_t<decltype(store)>::transaction_type;
    IdGenerator ids;
    const std::string a = fx.unique("a"), b = fx.unique("b"), c = fx.unique("c"), none = fx.unique("none");
    auto append = [&](const std::string& stream, ExpectedVersion e, int n) {
        std::vector<EventData> events;
        for (int i = 0; i < n; ++i) events.push_back(make_event(ids, "Noted", {{"stream", stream}, {"i", i}}));
        run(fx.ioc(), [&] { return store.async_append(stream, e, events, boost::asio::use_awaitable); });
    };
    append(a, ExpectedVersion::no_stream(), 2);
    append(b, ExpectedVersion::no_stream(), 1);
    append(a, ExpectedVersion::exactly(2), 1);

    // What each answer holds: "stream@version i", in order.
    using Answers = std::vector<std::vector<std::string>>;
    auto body = [&](Tx& tx) {
        store.append_in(tx, c, ExpectedVersion::no_stream(), {make_event(ids, "Noted", {{"stream", c}, {"i", 0}})});
        Answers out;
        for (const auto& events : store.read_streams_in(tx, {b, none, a, b, c})) {
            auto& one = out.emplace_back();
            for (const auto& e : events) {
                one.push_back(e.stream_id + "@" + std::to_string(e.version) + " " +
                              e.event.payload.at("i").dump());
            }
        }
        out.push_back({std::to_string(store.read_streams_in(tx, {}).size())});
        return out;
    };
    const auto seen = run(fx.ioc(), [&] { return async_transact(store, body, boost::asio::use_awaitable); });
    const Answers expected{{b + "@1 0"},
                           {},
                           {a + "@1 0", a + "@2 1", a + "@3 0"},
                           {b + "@1 0"},
                           {c + "@1 0"},  // its own append
                           {"0"}};
    CHECK(seen == expected);

    auto bad = [&](Tx& tx) { return store.read_streams_in(tx, {a, ""}).size(); };
    CHECK(code_of([&] { run(fx.ioc(), [&] { return async_transact(store, bad, boost::asio::use_awaitable); }); }) ==
          make_error_code(errc::invalid_argument));
}

TEMPLATE_TEST_CASE("transactional store conformance: a body that throws leaves nothing behind",
                   "[store][conformance][transaction]", BOONG_STORE_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    TestType fx;
    auto& store = fx.store();
    using Tx = typename std::remove_reference_t<decltype(store)>::transaction_type;
    IdGenerator ids;
    const std::string stream = fx.unique("tx-rollback");
    const std::string consumer = fx.unique("consumer");
    const auto first = make_event(ids, "First");
    const auto second = make_event(ids, "Second");

    auto failing = [&](Tx& tx) {
        store.append_in(tx, stream, ExpectedVersion::no_stream(), {first, second});
        store.record_processed_in(tx, consumer, "m1");
        throw std::runtime_error("the handler failed after its writes");
        return 0;
    };
    CHECK_THROWS_WITH(run(fx.ioc(), [&] { return async_transact(store, failing, boost::asio::use_awaitable); }),
                      Catch::Contains("the handler failed after its writes"));

    // No events, no record, and the ids are free again: the same append succeeds.
    CHECK(run(fx.ioc(), [&] { return store.async_read_stream(stream, 1, 10, boost::asio::use_awaitable); }).empty());
    auto retry = [&](Tx& tx) {
        if (store.processed_in(tx, consumer, "m1")) return std::int64_t{-1};
        const auto r = store.append_in(tx, stream, ExpectedVersion::no_stream(), {first, second});
        if (!store.record_processed_in(tx, consumer, "m1")) return std::int64_t{-2};
        return r.next_expected_version;
    };
    CHECK(run(fx.ioc(), [&] { return async_transact(store, retry, boost::asio::use_awaitable); }) == 2);

    // A conflict inside the transaction is the append's conflict, and rolls back.
    auto conflicting = [&](Tx& tx) {
        store.append_in(tx, stream, ExpectedVersion::exactly(1), {make_event(ids, "Late")});
        return 0;
    };
    CHECK_THROWS_AS(run(fx.ioc(), [&] { return async_transact(store, conflicting, boost::asio::use_awaitable); }),
                    ConcurrencyConflict);
    CHECK(run(fx.ioc(), [&] { return store.async_read_stream(stream, 1, 10, boost::asio::use_awaitable); }).size() ==
          2);
}

TEMPLATE_TEST_CASE("transactional store conformance: the inbox runs a message's body once",
                   "[store][conformance][inbox]", BOONG_STORE_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    TestType fx;
    auto& store = fx.store();
    using Store = std::remove_reference_t<decltype(store)>;
    using Tx = typename Store::transaction_type;
    IdGenerator ids;
    const std::string stream = fx.unique("inbox");
    Inbox<Store> inbox(store, fx.unique("payments"));
    std::atomic<int> ran{0};

    auto deliver = [&](std::string message_id, bool fail) {
        auto body = [&, fail](Tx& tx) {
            ++ran;
            store.append_in(tx, stream, ExpectedVersion::any(), {make_event(ids, "Charged")});
            if (fail) throw std::runtime_error("handler failed after writing");
        };
        return run(fx.ioc(), [&] { return inbox.async_process(message_id, body, boost::asio::use_awaitable); });
    };
    CHECK(deliver("m1", false));
    CHECK_FALSE(deliver("m1", false));  // redelivered: the body does not run again
    CHECK(ran == 1);
    CHECK_THROWS_WITH(deliver("m2", true), Catch::Contains("handler failed"));
    CHECK(deliver("m2", false));  // the failure rolled back the effect and the record
    CHECK(run(fx.ioc(), [&] { return store.async_read_stream(stream, 1, 10, boost::asio::use_awaitable); }).size() ==
          2);

    // Two deliveries of one message at once: exactly one runs to commit.
    auto twins = run(fx.ioc(), [&]() -> boost::asio::awaitable<int> {
        auto ex = co_await boost::asio::this_coro::executor;
        auto noop = [](Tx&) {};
        int committed = 0, failed = 0, pending = 2;
        for (int i = 0; i < 2; ++i) {
            inbox.async_process("m3", noop, boost::asio::bind_executor(ex, [&](std::exception_ptr e, bool did) {
                                    committed += !e && did;
                                    failed += e != nullptr;
                                    --pending;
                                }));
        }
        while (pending > 0) co_await sleep_for(std::chrono::milliseconds(5));
        co_return failed == 0 ? committed : -failed;
    });
    CHECK(twins == 1);

    // Bad names and ids are refused, clearly.
    CHECK_THROWS_AS(Inbox<Store>(store, ""), Error);
    CHECK(code_of([&] { deliver("", false); }) == make_error_code(errc::invalid_argument));
    CHECK(code_of([&] { deliver(std::string(256, 'x'), false); }) == make_error_code(errc::invalid_argument));
}

TEMPLATE_TEST_CASE("transactional store conformance: several appends and inbox records in one transaction, each "
                   "with its own verdict",
                   "[store][conformance][transaction]", BOONG_STORE_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    TestType fx;
    auto& store = fx.store();
    using Store = std::remove_reference_t<decltype(store)>;
    using Tx = typename Store::transaction_type;
    IdGenerator ids;
    const std::string a = fx.unique("many-a"), b = fx.unique("many-b"), c = fx.unique("many-c");
    const std::string consumer = fx.unique("consumer");
    run(fx.ioc(), [&] {
        return store.async_append(b, ExpectedVersion::any(), {make_event(ids, "Before")}, boost::asio::use_awaitable);
    });

    struct Seen {
        std::vector<bool> processed_before;
        std::vector<bool> have_result, is_conflict;
        std::vector<std::int64_t> next;
        std::vector<bool> recorded;
        std::vector<bool> processed_after;
    };
    auto body = [&](Tx& tx) {
        Seen seen;
        seen.processed_before = store.processed_many_in(tx, consumer, {"m1", "m2", "m3"});
        std::vector<StreamAppend> appends;
        appends.push_back({a, ExpectedVersion::no_stream(), {make_event(ids, "A1"), make_event(ids, "A2")}});
        appends.push_back({b, ExpectedVersion::no_stream(), {make_event(ids, "B2")}});  // b has one event: a conflict
        appends.push_back({c, ExpectedVersion::any(), {make_event(ids, "C1")}});
        for (const auto& o : store.append_many_in(tx, std::move(appends))) {
            seen.have_result.push_back(o.result.has_value());
            seen.next.push_back(o.result ? o.result->next_expected_version : -1);
            bool conflict = false;
            if (o.error) {
                try {
                    std::rethrow_exception(o.error);
                } catch (const Error& e) {
                    conflict = e.code() == make_error_code(errc::concurrency_conflict);
                }
            }
            seen.is_conflict.push_back(conflict);
        }
        seen.recorded = store.record_processed_many_in(tx, consumer, {"m1", "m2"});
        seen.processed_after = store.processed_many_in(tx, consumer, {"m2", "m3", "m1"});
        return seen;
    };
    const auto seen = run(fx.ioc(), [&] { return async_transact(store, body, boost::asio::use_awaitable); });
    CHECK(seen.processed_before == std::vector<bool>{false, false, false});
    CHECK(seen.have_result == std::vector<bool>{true, false, true});
    CHECK(seen.is_conflict == std::vector<bool>{false, true, false});
    CHECK(seen.next[0] == 2);
    CHECK(seen.next[2] == 1);
    CHECK(seen.recorded == std::vector<bool>{true, true});
    CHECK(seen.processed_after == std::vector<bool>{true, false, true});

    // Committed: the two that passed, nothing of the conflict.
    auto types = [&](const std::string& stream) {
        std::vector<std::string> t;
        for (const auto& e :
             run(fx.ioc(), [&] { return store.async_read_stream(stream, 1, 10, boost::asio::use_awaitable); }))
            t.push_back(e.event.type);
        return t;
    };
    CHECK(types(a) == std::vector<std::string>{"A1", "A2"});
    CHECK(types(b) == std::vector<std::string>{"Before"});
    CHECK(types(c) == std::vector<std::string>{"C1"});

    // Recording a message again says so, per id; bad input is refused whole.
    auto again = [&](Tx& tx) { return store.record_processed_many_in(tx, consumer, {"m3", "m1"}); };
    CHECK(run(fx.ioc(), [&] { return async_transact(store, again, boost::asio::use_awaitable); }) ==
          std::vector<bool>{true, false});
    auto twice = [&](Tx& tx) { return store.record_processed_many_in(tx, consumer, {"m4", "m4"}); };
    CHECK_THROWS_WITH(run(fx.ioc(), [&] { return async_transact(store, twice, boost::asio::use_awaitable); }),
                      Catch::Contains("named twice"));
    auto same_stream = [&](Tx& tx) {
        std::vector<StreamAppend> appends;
        appends.push_back({c, ExpectedVersion::any(), {make_event(ids, "C2")}});
        appends.push_back({c, ExpectedVersion::any(), {make_event(ids, "C3")}});
        return store.append_many_in(tx, std::move(appends)).size();
    };
    CHECK_THROWS_WITH(run(fx.ioc(), [&] { return async_transact(store, same_stream, boost::asio::use_awaitable); }),
                      Catch::Contains("two appends to"));
    CHECK(types(c) == std::vector<std::string>{"C1"});
}
