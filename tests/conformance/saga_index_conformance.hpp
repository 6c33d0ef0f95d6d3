// The SagaIndex contract (with SagaLeases), as a suite any model runs. The
// sagas' events are appended by hand, as an orchestrator would write them:
// the index must follow the store whoever wrote them.
//
// A test file defines BOONG_SAGA_INDEX_FIXTURES (fixture types,
// comma-separated) and includes this header. A fixture has: a default
// constructor; `boost::asio::io_context& ioc()`; `auto& store()` (the store
// the index follows, holding no other sagas); `auto& index()`.
#pragma once

#include "support/async.hpp"
#include "support/events.hpp"

#include <boong/saga_index.hpp>
#include <boong/saga_state.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>
#include <tuple>

namespace boong::test {

// A phase event as an orchestrator writes it: `owner` and its lease in the
// metadata when one runs the saga.
inline EventData saga_event_of(IdGenerator& ids, std::string_view type, json payload = json::object(),
                               std::string owner = {}, std::int64_t lease_ms = 0) {
    auto e = make_event(ids, std::string(type), std::move(payload));
    if (!owner.empty()) e.metadata.extra = {{"owner", owner}, {"lease_ms", lease_ms}};
    return e;
}

template <class Fixture>
void append_saga(Fixture& fx, const std::string& saga_id, std::vector<EventData> events) {
    run(fx.ioc(), [&] {
        return fx.store().async_append(saga_stream(saga_id), ExpectedVersion::any(), events,
                                       boost::asio::use_awaitable);
    });
}

template <class Fixture>
std::optional<SagaRecord> find_saga(Fixture& fx, const std::string& id) {
    return run(fx.ioc(), [&] { return fx.index().async_find(id, boost::asio::use_awaitable); });
}

template <class Fixture>
std::vector<std::string> claim_sagas(Fixture& fx, const std::string& type, const std::string& owner,
                                     milliseconds lease = std::chrono::seconds(30), std::size_t n = 100) {
    return run(fx.ioc(), [&] {
        return fx.index().async_claim(SagaClaim{type, {}}, owner, lease, n, boost::asio::use_awaitable);
    });
}

// A claim by an orchestrator serving `definitions` (it may unblock sagas).
template <class Fixture>
std::vector<std::string> claim_serving(Fixture& fx, const std::string& type, std::vector<SagaDefinition> definitions,
                                       const std::string& owner) {
    return run(fx.ioc(), [&] {
        return fx.index().async_claim(SagaClaim{type, std::move(definitions)}, owner, std::chrono::seconds(30), 100,
                                      boost::asio::use_awaitable);
    });
}

template <class Fixture>
std::vector<std::string> claim_orphans(Fixture& fx, const std::string& owner, milliseconds idle,
                                       std::size_t n = 100) {
    return run(fx.ioc(), [&] {
        return fx.index().async_claim_orphans(owner, std::chrono::seconds(30), idle, n, boost::asio::use_awaitable);
    });
}

template <class Fixture>
std::vector<std::string> stuck_ids(Fixture& fx, milliseconds idle) {
    std::vector<std::string> ids;
    for (auto& r : run(fx.ioc(), [&] { return fx.index().async_stuck(idle, 10000, boost::asio::use_awaitable); }))
        ids.push_back(r.saga_id);
    std::sort(ids.begin(), ids.end());
    return ids;
}

inline json definition_of(std::int64_t version, std::string fingerprint) {
    return SagaDefinition{version, std::move(fingerprint), "a+, b"}.to_json();
}

template <class Fixture>
std::vector<std::string> list_ids(Fixture& fx, SagaQuery q) {
    std::vector<std::string> ids;
    for (auto& r : run(fx.ioc(), [&] { return fx.index().async_list(q, boost::asio::use_awaitable); }))
        ids.push_back(r.saga_id);
    return ids;
}

}  // namespace boong::test

TEMPLATE_TEST_CASE("saga index conformance: every phase event moves the saga as the phase rules say",
                   "[sagas][conformance]", BOONG_SAGA_INDEX_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    TestType fx;
    IdGenerator ids;
    const json typed{{"saga_type", "order"}};
    // One saga per rule, its last event that rule's (a resumed one both ways).
    std::map<std::string, SagaPhase> expected;
    for (const auto& rule : phase_rules) {
        const std::string id = "s-" + std::string(rule.event);
        std::vector<EventData> events{saga_event_of(ids, saga_event::started, typed)};
        if (rule.event == saga_event::started) {
            expected[id] = SagaPhase::running;
        } else if (!rule.phase) {
            for (const char* phase : {"running", "compensating"}) {
                const std::string rid = id + "-" + phase;
                append_saga(fx, rid, {saga_event_of(ids, saga_event::started, typed),
                                      saga_event_of(ids, saga_event::failed, {{"step", "x"}, {"error", "e"}}),
                                      saga_event_of(ids, rule.event, {{"phase", phase}})});
                expected[rid] = *saga_phase_from_string(phase);
            }
            continue;
        } else {
            events.push_back(saga_event_of(ids, "StepCompleted"));  // not a phase event: ignored
            events.push_back(saga_event_of(ids, rule.event));
            expected[id] = *rule.phase;
        }
        append_saga(fx, id, std::move(events));
    }
    // A stream that is not a saga's is no saga, even with phase events.
    run(fx.ioc(), [&] {
        return fx.store().async_append("order-1", ExpectedVersion::any(),
                                       std::vector<EventData>{saga_event_of(ids, saga_event::started, typed)},
                                       boost::asio::use_awaitable);
    });
    SagaQuery all;
    all.limit = 10000;
    std::map<std::string, SagaPhase> seen;
    for (const auto& r : run(fx.ioc(), [&] { return fx.index().async_list(all, boost::asio::use_awaitable); })) {
        seen[r.saga_id] = r.phase;
        CHECK(r.saga_type == "order");
    }
    CHECK(seen == expected);
    // Counted by phase, in SagaPhase order.
    const auto counts = run(fx.ioc(), [&] { return fx.index().async_count_by_phase(boost::asio::use_awaitable); });
    std::map<SagaPhase, std::int64_t> want;
    for (const auto& [id, phase] : expected) ++want[phase];
    CHECK(counts == std::vector<std::pair<SagaPhase, std::int64_t>>(want.begin(), want.end()));
}

TEMPLATE_TEST_CASE("saga index conformance: records carry the failure, the deadline and the version",
                   "[sagas][conformance]", BOONG_SAGA_INDEX_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    TestType fx;
    IdGenerator ids;
    const auto deadline = parse_timestamp("2031-01-02T03:04:05.678Z");
    append_saga(fx, "a", {saga_event_of(ids, saga_event::started,
                                        {{"saga_type", "order"}, {"deadline", format_timestamp(deadline)}}),
                          saga_event_of(ids, saga_event::compensation_started,
                                        {{"failed_step", "charge"}, {"kind", "timeout"}, {"error", "no answer"}}),
                          saga_event_of(ids, saga_event::failed, {{"step", "release"}, {"error", "gone"}})});
    auto r = find_saga(fx, "a");
    REQUIRE(r);
    CHECK(r->saga_type == "order");
    CHECK(r->phase == SagaPhase::failed);
    CHECK(r->version == 3);
    CHECK(r->failed_step == "charge");
    CHECK(r->failure_kind == FailureKind::timeout);
    CHECK(r->error == "no answer");
    CHECK(r->failed_compensation == "release");
    CHECK(r->compensation_error == "gone");
    REQUIRE(r->deadline);
    CHECK(std::chrono::abs(*r->deadline - deadline) < std::chrono::milliseconds(1));
    CHECK(r->updated_at >= r->started_at);
    // Resumed: the failed compensation is forgotten, the failure is kept.
    append_saga(fx, "a", {saga_event_of(ids, saga_event::resumed, {{"phase", "compensating"}})});
    r = find_saga(fx, "a");
    REQUIRE(r);
    CHECK(r->phase == SagaPhase::compensating);
    CHECK(r->version == 4);
    CHECK(r->failed_compensation.empty());
    CHECK(r->compensation_error.empty());
    CHECK(r->failed_step == "charge");
    // What cannot be read in a hand-written event is left out, never fails.
    append_saga(fx, "odd", {saga_event_of(ids, saga_event::started, {{"deadline", "tomorrow"}, {"saga_type", 7}}),
                            saga_event_of(ids, saga_event::resumed, {{"phase", "sideways"}})});
    r = find_saga(fx, "odd");
    REQUIRE(r);
    CHECK(r->saga_type == "7");  // a field's text, as the table's trigger reads it (->>)
    CHECK(r->phase == SagaPhase::running);
    CHECK_FALSE(r->deadline);
    CHECK_FALSE(find_saga(fx, "nobody"));

    // Listing: by phase, by type, paged by id.
    append_saga(fx, "b", {saga_event_of(ids, saga_event::started, {{"saga_type", "refund"}})});
    append_saga(fx, "c", {saga_event_of(ids, saga_event::started, {{"saga_type", "order"}})});
    SagaQuery q;
    CHECK(list_ids(fx, q) == std::vector<std::string>{"a", "b", "c", "odd"});
    q.phase = SagaPhase::running;
    CHECK(list_ids(fx, q) == std::vector<std::string>{"b", "c", "odd"});
    q.saga_type = "order";
    CHECK(list_ids(fx, q) == std::vector<std::string>{"c"});
    SagaQuery page;
    page.limit = 2;
    CHECK(list_ids(fx, page) == std::vector<std::string>{"a", "b"});
    page.after_id = "b";
    CHECK(list_ids(fx, page) == std::vector<std::string>{"c", "odd"});
    page.limit = 0;
    CHECK(code_of([&] { list_ids(fx, page); }) == make_error_code(errc::invalid_argument));
    page.limit = 10001;
    CHECK(code_of([&] { list_ids(fx, page); }) == make_error_code(errc::invalid_argument));

    // Shaped like a timestamp, but no date: left out (the table's cast fails).
    append_saga(fx, "odd-date", {saga_event_of(ids, saga_event::started, {{"deadline", "2031-13-45T25:00:00Z"}})});
    r = find_saga(fx, "odd-date");
    REQUIRE(r);
    CHECK_FALSE(r->deadline);
}

TEMPLATE_TEST_CASE("saga index conformance: leases are claimed, renewed, lost and released by the rules",
                   "[sagas][conformance]", BOONG_SAGA_INDEX_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    using std::chrono::milliseconds;
    TestType fx;
    IdGenerator ids;
    const json order{{"saga_type", "order"}};
    append_saga(fx, "owned", {saga_event_of(ids, saga_event::started, order, "a/1", 60000)});
    auto r = find_saga(fx, "owned");
    REQUIRE(r);
    CHECK(r->owner == "a/1");
    REQUIRE(r->lease_until);
    CHECK(*r->lease_until > Clock::now() + std::chrono::seconds(50));

    CHECK(claim_sagas(fx, "order", "b/1").empty());             // a live lease
    CHECK(claim_sagas(fx, "refund", "a/2").empty());            // another type
    CHECK(claim_sagas(fx, "order", "a/2") == std::vector<std::string>{"owned"});  // a restarted a
    CHECK(find_saga(fx, "owned")->owner == "a/2");
    // The predecessor learns it lost the saga; the new owner keeps it.
    const std::vector<std::string> running{"owned"};
    CHECK(run(fx.ioc(), [&] { return fx.index().async_renew("a/1", milliseconds(60000), running,
                                                            boost::asio::use_awaitable); }) == running);
    CHECK(run(fx.ioc(), [&] { return fx.index().async_renew("a/2", milliseconds(60000), running,
                                                            boost::asio::use_awaitable); })
              .empty());
    // Released: another takes it at once.
    run(fx.ioc(), [&] { return fx.index().async_release("a/2", boost::asio::use_awaitable); });
    CHECK(claim_sagas(fx, "order", "b/1") == std::vector<std::string>{"owned"});
    // A terminal phase frees the saga for good.
    append_saga(fx, "owned", {saga_event_of(ids, saga_event::completed)});
    r = find_saga(fx, "owned");
    CHECK(r->owner.empty());
    CHECK_FALSE(r->lease_until);
    CHECK(claim_sagas(fx, "order", "c/1", milliseconds(1)).empty());

    // Never owned (a plain runner): taken only after a lease of quiet.
    append_saga(fx, "plain", {saga_event_of(ids, saga_event::started, order)});
    CHECK(claim_sagas(fx, "order", "b/1", milliseconds(30000)).empty());
    // An expired lease is free, and stuck until someone takes it.
    append_saga(fx, "short", {saga_event_of(ids, saga_event::started, order, "d/1", 50)});
    std::this_thread::sleep_for(milliseconds(1200));
    auto stuck = run(fx.ioc(), [&] { return fx.index().async_stuck(milliseconds(100), 10, boost::asio::use_awaitable); });
    std::vector<std::string> stuck_ids;
    for (const auto& s : stuck) stuck_ids.push_back(s.saga_id);
    std::sort(stuck_ids.begin(), stuck_ids.end());
    CHECK(stuck_ids == std::vector<std::string>{"plain", "short"});
    auto taken = claim_sagas(fx, "order", "b/1", milliseconds(1000), 1);
    CHECK(taken == std::vector<std::string>{"plain"});  // never leased first
    run(fx.ioc(), [&] {  // b/1 runs "plain" now: its lease is renewed
        return fx.index().async_renew("b/1", milliseconds(30000), std::vector<std::string>{"plain"},
                                      boost::asio::use_awaitable);
    });
    taken = claim_sagas(fx, "order", "b/1", milliseconds(30000));
    CHECK(taken == std::vector<std::string>{"short"});
    stuck = run(fx.ioc(), [&] { return fx.index().async_stuck(milliseconds(100), 10, boost::asio::use_awaitable); });
    CHECK(stuck.empty());

    // A failed saga is stuck: it needs an operator.
    append_saga(fx, "broken", {saga_event_of(ids, saga_event::started, order),
                               saga_event_of(ids, saga_event::compensation_started, {{"failed_step", "x"}}),
                               saga_event_of(ids, saga_event::failed, {{"step", "y"}, {"error", "z"}})});
    stuck = run(fx.ioc(), [&] { return fx.index().async_stuck(milliseconds(100), 10, boost::asio::use_awaitable); });
    REQUIRE(stuck.size() == 1);
    CHECK(stuck[0].saga_id == "broken");
}

TEMPLATE_TEST_CASE("saga index conformance: bad claims and queries are refused", "[sagas][conformance]",
                   BOONG_SAGA_INDEX_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    using std::chrono::milliseconds;
    TestType fx;
    const auto invalid = make_error_code(errc::invalid_argument);
    CHECK(code_of([&] { claim_sagas(fx, "", "a/1"); }) == invalid);
    CHECK(code_of([&] { claim_sagas(fx, "order", ""); }) == invalid);
    CHECK(code_of([&] { claim_sagas(fx, "order", "a/1", milliseconds(0)); }) == invalid);
    CHECK(claim_sagas(fx, "order", "a/1", milliseconds(1000), 0).empty());
    CHECK(code_of([&] {
              run(fx.ioc(), [&] { return fx.index().async_stuck(milliseconds(-1), 10, boost::asio::use_awaitable); });
          }) == invalid);
    CHECK(code_of([&] {
              run(fx.ioc(), [&] { return fx.index().async_stuck(milliseconds(10), 0, boost::asio::use_awaitable); });
          }) == invalid);
}

TEMPLATE_TEST_CASE("saga index conformance: a saga records its definition; unreadable ones read as version 1",
                   "[sagas][conformance][definitions]", BOONG_SAGA_INDEX_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    TestType fx;
    IdGenerator ids;
    const json v2{{"saga_type", "order"}, {"definition", definition_of(2, "00000000000000aa")}};
    append_saga(fx, "v2", {saga_event_of(ids, saga_event::started, v2)});
    append_saga(fx, "old", {saga_event_of(ids, saga_event::started, {{"saga_type", "order"}})});
    // Written by hand: read as the trigger reads them (a field's text; 1 to
    // 18 digits, else version 1), never failing the append.
    auto started_on = [&](const std::string& id, json definition) {
        append_saga(fx, id, {saga_event_of(ids, saga_event::started,
                                           {{"saga_type", "order"}, {"definition", std::move(definition)}})});
    };
    started_on("text", {{"version", "7"}});
    started_on("neg", {{"version", -2}, {"fingerprint", ""}});
    started_on("huge", {{"version", "1234567890123456789"}});  // 19 digits
    started_on("flat", "v9");
    const std::map<std::string, std::pair<std::int64_t, std::string>> want{
        {"v2", {2, "00000000000000aa"}}, {"old", {1, ""}}, {"text", {7, ""}},
        {"neg", {1, ""}},                {"huge", {1, ""}}, {"flat", {1, ""}}};
    for (const auto& [id, definition] : want) {
        INFO(id);
        const auto r = find_saga(fx, id);
        REQUIRE(r);
        CHECK(r->phase == SagaPhase::running);
        CHECK(r->definition_version == definition.first);
        CHECK(r->fingerprint == definition.second);
        CHECK(r->blocked_reason.empty());
    }
}

TEMPLATE_TEST_CASE("saga index conformance: a blocked saga is freed, and claimed only by one serving its definition",
                   "[sagas][conformance][definitions]", BOONG_SAGA_INDEX_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    using std::chrono::milliseconds;
    TestType fx;
    IdGenerator ids;
    const std::string fp = "00000000000000aa", other_fp = "00000000000000bb";
    append_saga(fx, "v2", {saga_event_of(ids, saga_event::started,
                                         {{"saga_type", "order"}, {"definition", definition_of(2, fp)}}, "a/1", 60000),
                           saga_event_of(ids, saga_event::blocked,
                                         {{"reason", "no version 2 here"}, {"phase", "running"}})});
    auto r = find_saga(fx, "v2");
    REQUIRE(r);
    CHECK(r->phase == SagaPhase::blocked);
    CHECK(r->blocked_reason == "no version 2 here");
    CHECK(r->version == 2);
    CHECK(r->owner.empty());  // freed: nobody runs it
    CHECK_FALSE(r->lease_until);
    // It needs attention however recently it was blocked.
    CHECK(stuck_ids(fx, std::chrono::hours(1)) == std::vector<std::string>{"v2"});

    CHECK(claim_sagas(fx, "order", "b/1").empty());                                // serves no definition
    CHECK(claim_serving(fx, "order", {{1, fp, ""}}, "b/1").empty());               // another version
    CHECK(claim_serving(fx, "order", {{2, other_fp, "a+, c"}}, "b/1").empty());     // same version, other steps
    CHECK(claim_serving(fx, "refund", {{2, fp, ""}}, "b/1").empty());              // another type
    CHECK(claim_serving(fx, "order", {{1, "", ""}, {2, fp, "a+, b"}}, "c/1") == std::vector<std::string>{"v2"});
    r = find_saga(fx, "v2");
    CHECK(r->owner == "c/1");
    CHECK(r->phase == SagaPhase::blocked);  // until its new owner resumes it
    CHECK(claim_serving(fx, "order", {{2, fp, ""}}, "d/1").empty());  // c/1 holds it
    // c/1 runs it: renewed, not lost.
    CHECK(run(fx.ioc(), [&] {
              return fx.index().async_renew("c/1", milliseconds(60000), std::vector<std::string>{"v2"},
                                            boost::asio::use_awaitable);
          }).empty());
    append_saga(fx, "v2", {saga_event_of(ids, saga_event::resumed, {{"phase", "running"}}, "c/1", 60000)});
    r = find_saga(fx, "v2");
    CHECK(r->phase == SagaPhase::running);
    CHECK(r->blocked_reason.empty());
    CHECK(r->owner == "c/1");
    CHECK(r->definition_version == 2);
    CHECK(stuck_ids(fx, std::chrono::hours(1)).empty());

    // Recorded without a fingerprint (before definitions had them): any
    // fingerprint of its version serves it. Blocked while compensating.
    append_saga(fx, "old", {saga_event_of(ids, saga_event::started, {{"saga_type", "order"}}, "a/1", 60000),
                            saga_event_of(ids, saga_event::compensation_started, {{"failed_step", "x"}}),
                            saga_event_of(ids, saga_event::blocked, {{"reason", "why"}, {"phase", "compensating"}})});
    CHECK(find_saga(fx, "old")->phase == SagaPhase::blocked);
    CHECK(claim_serving(fx, "order", {{2, "", ""}}, "b/1").empty());
    CHECK(claim_serving(fx, "order", {{1, other_fp, "a+, c"}}, "b/1") == std::vector<std::string>{"old"});
    // Served without a fingerprint: any recorded one of its version.
    append_saga(fx, "v2b", {saga_event_of(ids, saga_event::started,
                                          {{"saga_type", "order"}, {"definition", definition_of(2, fp)}}),
                            saga_event_of(ids, saga_event::blocked, {{"reason", "r"}, {"phase", "running"}})});
    CHECK(claim_serving(fx, "order", {{2, "", ""}}, "b/1") == std::vector<std::string>{"v2b"});

    // Only an in-flight saga can be blocked: a finished one stays finished.
    append_saga(fx, "done", {saga_event_of(ids, saga_event::started, {{"saga_type", "order"}}),
                             saga_event_of(ids, saga_event::completed),
                             saga_event_of(ids, saga_event::blocked, {{"reason", "late"}})});
    r = find_saga(fx, "done");
    CHECK(r->phase == SagaPhase::completed);
    CHECK(r->blocked_reason.empty());
    CHECK(claim_serving(fx, "order", {{1, "", ""}}, "e/1").empty());
}

TEMPLATE_TEST_CASE("saga index conformance: orphans of any type are taken after `idle`, never blocked or held ones",
                   "[sagas][conformance][definitions]", BOONG_SAGA_INDEX_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    using std::chrono::milliseconds;
    TestType fx;
    IdGenerator ids;
    const milliseconds idle(1000);
    append_saga(fx, "plain-old", {saga_event_of(ids, saga_event::started, {{"saga_type", "order"}})});
    append_saga(fx, "expired-old", {saga_event_of(ids, saga_event::started, {{"saga_type", "refund"}}, "x/1", 50)});
    append_saga(fx, "blocked", {saga_event_of(ids, saga_event::started, {{"saga_type", "order"}}),
                                saga_event_of(ids, saga_event::blocked, {{"reason", "r"}, {"phase", "running"}})});
    append_saga(fx, "done", {saga_event_of(ids, saga_event::started, {{"saga_type", "order"}}),
                             saga_event_of(ids, saga_event::compensation_started),
                             saga_event_of(ids, saga_event::compensated)});
    append_saga(fx, "broken", {saga_event_of(ids, saga_event::started, {{"saga_type", "order"}}),
                               saga_event_of(ids, saga_event::failed, {{"step", "s"}})});
    append_saga(fx, "live", {saga_event_of(ids, saga_event::started, {{"saga_type", "order"}}, "y/1", 60000)});
    std::this_thread::sleep_for(idle + milliseconds(500));
    // Recent: left to their type's orchestrators a while longer.
    append_saga(fx, "plain-new", {saga_event_of(ids, saga_event::started, {{"saga_type", "order"}})});
    append_saga(fx, "expired-new", {saga_event_of(ids, saga_event::started, {{"saga_type", "order"}}, "z/1", 1)});

    // Never leased first, then the longest expired.
    CHECK(claim_orphans(fx, "o/1", idle, 1) == std::vector<std::string>{"plain-old"});
    CHECK(claim_orphans(fx, "o/1", idle) == std::vector<std::string>{"expired-old"});
    CHECK(claim_orphans(fx, "p/1", idle).empty());  // o/1 holds them now
    auto r = find_saga(fx, "expired-old");
    CHECK(r->owner == "o/1");
    REQUIRE(r->lease_until);
    CHECK(*r->lease_until > Clock::now() + std::chrono::seconds(20));
    CHECK(find_saga(fx, "blocked")->owner.empty());
    CHECK(find_saga(fx, "live")->owner == "y/1");
    // Everything that was in flight for longer than 0 ms.
    std::this_thread::sleep_for(milliseconds(20));
    auto rest = claim_orphans(fx, "q/1", milliseconds(0));
    std::sort(rest.begin(), rest.end());
    CHECK(rest == std::vector<std::string>{"expired-new", "plain-new"});

    const auto invalid = make_error_code(errc::invalid_argument);
    CHECK(code_of([&] { claim_orphans(fx, "o/1", milliseconds(-1)); }) == invalid);
    CHECK(code_of([&] { claim_orphans(fx, "", idle); }) == invalid);
    CHECK(claim_orphans(fx, "o/1", idle, 0).empty());
}

TEMPLATE_TEST_CASE("saga index conformance: renewing extends only the sagas the owner runs",
                   "[sagas][conformance][definitions]", BOONG_SAGA_INDEX_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    using std::chrono::milliseconds;
    TestType fx;
    IdGenerator ids;
    const json order{{"saga_type", "order"}};
    append_saga(fx, "run", {saga_event_of(ids, saga_event::started, order, "r/1", 300)});
    append_saga(fx, "idle", {saga_event_of(ids, saga_event::started, order, "r/1", 300)});
    append_saga(fx, "theirs", {saga_event_of(ids, saga_event::started, order, "t/1", 60000)});
    // Blocked by its runner: let go, not lost.
    append_saga(fx, "blocked", {saga_event_of(ids, saga_event::started, order, "r/1", 60000),
                                saga_event_of(ids, saga_event::blocked, {{"reason", "r"}, {"phase", "running"}})});
    const auto lost = run(fx.ioc(), [&] {
        return fx.index().async_renew("r/1", milliseconds(60000), std::vector<std::string>{"run", "theirs", "blocked"},
                                      boost::asio::use_awaitable);
    });
    CHECK(lost == std::vector<std::string>{"theirs"});
    CHECK(find_saga(fx, "theirs")->owner == "t/1");
    CHECK(find_saga(fx, "blocked")->owner.empty());
    std::this_thread::sleep_for(milliseconds(800));
    // Held but not run: it expired, so it is stuck and free.
    CHECK(stuck_ids(fx, std::chrono::hours(1)) == std::vector<std::string>{"blocked", "idle"});
    CHECK(claim_sagas(fx, "order", "s/1") == std::vector<std::string>{"idle"});
    REQUIRE(find_saga(fx, "run")->lease_until);
    CHECK(*find_saga(fx, "run")->lease_until > Clock::now() + std::chrono::seconds(30));
}

TEMPLATE_TEST_CASE("saga index conformance: sagas not finished are counted by definition and phase",
                   "[sagas][conformance][definitions]", BOONG_SAGA_INDEX_FIXTURES) {
    using namespace boong;
    using namespace boong::test;
    TestType fx;
    IdGenerator ids;
    const json v1{{"saga_type", "order"}};
    const json v2{{"saga_type", "order"}, {"definition", definition_of(2, "00000000000000f2")}};
    const json blocked{{"reason", "r"}, {"phase", "running"}};
    append_saga(fx, "a", {saga_event_of(ids, saga_event::started, v1)});
    append_saga(fx, "b",
                {saga_event_of(ids, saga_event::started, v1), saga_event_of(ids, saga_event::compensation_started)});
    append_saga(fx, "c", {saga_event_of(ids, saga_event::started, v1)});
    append_saga(fx, "d", {saga_event_of(ids, saga_event::started, v1), saga_event_of(ids, saga_event::completed)});
    append_saga(fx, "e", {saga_event_of(ids, saga_event::started, v1),
                          saga_event_of(ids, saga_event::compensation_started),
                          saga_event_of(ids, saga_event::compensated)});
    append_saga(fx, "f", {saga_event_of(ids, saga_event::started, v1),
                          saga_event_of(ids, saga_event::failed, {{"step", "s"}})});
    append_saga(fx, "g",
                {saga_event_of(ids, saga_event::started, v2), saga_event_of(ids, saga_event::blocked, blocked)});
    append_saga(fx, "h", {saga_event_of(ids, saga_event::started, v2)});
    append_saga(fx, "i", {saga_event_of(ids, saga_event::started, {{"saga_type", "refund"}})});
    using Row = std::tuple<std::string, std::int64_t, std::string, SagaPhase, std::int64_t>;
    auto counts = [&](std::string type) {
        std::vector<Row> out;
        for (const auto& c : run(fx.ioc(), [&] {
                 return fx.index().async_count_definitions(type, boost::asio::use_awaitable);
             })) {
            out.emplace_back(c.saga_type, c.definition_version, c.fingerprint, c.phase, c.count);
        }
        return out;
    };
    // By type, version, fingerprint, then in SagaPhase order.
    const std::vector<Row> order{{"order", 1, "", SagaPhase::running, 2},
                                 {"order", 1, "", SagaPhase::compensating, 1},
                                 {"order", 1, "", SagaPhase::failed, 1},
                                 {"order", 2, "00000000000000f2", SagaPhase::running, 1},
                                 {"order", 2, "00000000000000f2", SagaPhase::blocked, 1}};
    CHECK(counts("order") == order);
    auto all = order;
    all.emplace_back("refund", 1, "", SagaPhase::running, 1);
    CHECK(counts("") == all);
    CHECK(counts("nothing").empty());
}
