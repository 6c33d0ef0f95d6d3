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

#include <chrono>
#include <map>
#include <thread>

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
    return run(fx.ioc(), [&] { return fx.index().async_claim(type, owner, lease, n, boost::asio::use_awaitable); });
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
    run(fx.ioc(), [&] {
        return fx.index().async_renew("b/1", milliseconds(30000), std::vector<std::string>{}, boost::asio::use_awaitable);
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
