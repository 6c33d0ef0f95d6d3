// Sagas across deploys (docs/versioning.md), on any store and saga index:
// 50 sagas of version 1 are cut off mid-flight, as by a SIGKILL, then the
// next deployment takes them over. For each kind of change each saga either
// ends exactly as version 1 would have ended it, or waits visibly in
// `blocked` with the reason; an effects ledger keyed by idempotency key
// counts every wrong effect. A test file defines BOONG_ORCHESTRATOR_WORLDS
// (see orchestrator_conformance.hpp) and includes this header.
#pragma once

#include "support/async.hpp"
#include "support/durable_world.hpp"

#include <boong/saga_migration.hpp>
#include <boong/saga_orchestrator.hpp>
#include <boong/saga_runner.hpp>

#include <catch2/catch.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace boong::test::versioning {

struct FlowData {
    bool refuse_c = false;  // step c refuses (a business rejection): the saga compensates
};
inline void to_json(json& j, const FlowData& d) { j = json{{"refuse_c", d.refuse_c}}; }
inline void from_json(const json& j, FlowData& d) { j.at("refuse_c").get_to(d.refuse_c); }

// What the services behind the steps did, as a service that records
// idempotency keys does it: an effect whose key is known is not applied again.
struct Ledger {
    std::map<std::string, int> applied;                   // idempotency key -> units
    std::map<std::string, std::vector<std::string>> log;  // saga id -> "a+1", "~a-1", in the order applied
    int repeats = 0;                                      // effects asked for again (and not applied)

    void apply(const std::string& saga, std::string_view step, const std::string& key, int units) {
        if (!applied.emplace(key, units).second) {
            ++repeats;
            return;
        }
        log[saga].push_back((units < 0 ? "~" : "") + std::string(step) + (units < 0 ? "" : "+") +
                            std::to_string(units));
    }
};

// The step bodies every version shares: apply the effect, then take a while
// (5-30 ms), so that a cut-off leaves effects whose completion was not recorded.
class FlowBase {
public:
    explicit FlowBase(Ledger& ledger) : ledger_(ledger) {}

protected:
    boost::asio::awaitable<void> act(StepContext<FlowData>& ctx, int units) {
        if (ctx.step() == "c" && ctx.data().refuse_c) throw Rejection("c refused");
        ledger_.apply(ctx.saga_id(), ctx.step(), ctx.idempotency_key(), units);
        co_await pause(ctx);
    }
    boost::asio::awaitable<void> undo(StepContext<FlowData>& ctx, int units) {
        ledger_.apply(ctx.saga_id(), ctx.step(), ctx.idempotency_key(), -units);
        co_await pause(ctx);
    }

private:
    static boost::asio::awaitable<void> pause(StepContext<FlowData>& ctx) {
        const auto ms = 5 + std::hash<std::string>{}(ctx.saga_id() + std::string(ctx.step())) % 26;
        boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, std::chrono::milliseconds(ms));
        co_await t.async_wait(boost::asio::use_awaitable);
    }
    Ledger& ledger_;
};

// A step and its compensation holding and releasing `units`.
#define BOONG_FLOW_STEP(step, units)                                                                      \
    boost::asio::awaitable<void> step(boong::StepContext<FlowData>& c) { return act(c, units); }         \
    boost::asio::awaitable<void> undo_##step(boong::StepContext<FlowData>& c) { return undo(c, units); }

#define BOONG_FLOW_CLASS(Class, Name, Version) \
    struct Class : FlowBase {                  \
        using FlowBase::FlowBase;              \
        static constexpr std::string_view name = Name; \
        static constexpr std::int64_t version = Version; \
        BOONG_FLOW_STEP(a, 1)                  \
        BOONG_FLOW_STEP(b, 1)                  \
        BOONG_FLOW_STEP(b2, 1)                 \
        BOONG_FLOW_STEP(c, 1)                  \
        BOONG_FLOW_STEP(x, 1)                  \
        BOONG_FLOW_STEP(heavy_b, 2)            \
    };

BOONG_FLOW_CLASS(FlowV1, "flow", 1)
BOONG_FLOW_CLASS(FlowV2, "flow", 2)
BOONG_FLOW_CLASS(FlowV1Edited, "flow", 1)  // changed, but its version was not bumped
BOONG_FLOW_CLASS(FlowRenamed, "flow_renamed", 1)

template <class C>
using StepA = Step<"a", &C::a, &C::undo_a>;
template <class C>
using StepB = Step<"b", &C::b, &C::undo_b>;
template <class C>
using StepC = Step<"c", &C::c, &C::undo_c>;
template <class C>
using StepX = Step<"x", &C::x, &C::undo_x>;

using V1 = Saga<StepA<FlowV1>, StepB<FlowV1>, StepC<FlowV1>>;
// The changes of the table, each as version 2.
using V2Inserted = Saga<StepA<FlowV2>, StepX<FlowV2>, StepB<FlowV2>, StepC<FlowV2>>;
using V2Renamed = Saga<StepA<FlowV2>, Step<"b2", &FlowV2::b2, &FlowV2::undo_b2>, StepC<FlowV2>>;
using V2Removed = Saga<StepA<FlowV2>, StepB<FlowV2>>;
using V2Swapped = Saga<StepA<FlowV2>, StepC<FlowV2>, StepB<FlowV2>>;
using V2Heavier = Saga<StepA<FlowV2>, Step<"b", &FlowV2::heavy_b, &FlowV2::undo_heavy_b>, StepC<FlowV2>>;
// Version 1 with a step inserted, its version left as it was.
using V1Edited = Saga<StepA<FlowV1Edited>, StepX<FlowV1Edited>, StepB<FlowV1Edited>, StepC<FlowV1Edited>>;
// Version 1 under another saga name.
using Renamed = Saga<StepA<FlowRenamed>, StepB<FlowRenamed>, StepC<FlowRenamed>>;

// What version 1 does to a saga, effect by effect.
inline std::vector<std::string> v1_effects(bool refuse_c) {
    if (refuse_c) return {"a+1", "b+1", "~b-1", "~a-1"};
    return {"a+1", "b+1", "c+1"};
}

struct Tally {
    int completed = 0, compensated = 0, blocked = 0, wrong = 0;
    std::vector<std::string> problems;  // what was wrong, saga by saga
};

// The first deployment: `count` sagas of version 1 on a runner owned by
// "deploy/first", cut off after `run_for` (nothing released, as by a
// SIGKILL). Returns their ids; `refuse` says which refuse at c.
template <class World>
std::vector<std::string> start_and_cut_off(World& d, Ledger& ledger, std::map<std::string, bool>& refuse,
                                           int count = 50, std::chrono::milliseconds lease = std::chrono::seconds(60),
                                           std::chrono::milliseconds run_for = std::chrono::milliseconds(45)) {
    FlowV1 v1(ledger);
    RunnerOptions owner;
    owner.owner = "deploy/first";
    owner.lease = lease;
    SagaRunner<V1, std::remove_reference_t<decltype(d.store)>> first(v1, d.store, fast_options(), owner);
    std::vector<std::string> ids;
    int ended = 0;
    for (int i = 0; i < count; ++i) {
        RunOptions o;
        o.saga_id = IdGenerator().next();
        ids.push_back(o.saga_id);
        FlowData data;
        data.refuse_c = i % 5 < 2;  // 40 % refused at c
        refuse[o.saga_id] = data.refuse_c;
        first.async_run(data, o, [&](std::exception_ptr, auto) { ++ended; });
    }
    d.until([] { return false; }, run_for);
    first.shutdown();
    REQUIRE(d.until([&] { return ended == count; }));
    return ids;
}

// Every saga of version 1: ended as version 1 ends it, or blocked (freed,
// with a reason) having done only what version 1 does first.
template <class World>
Tally tally(World& d, const Ledger& ledger, const std::vector<std::string>& ids,
            const std::map<std::string, bool>& refuse) {
    Tally t;
    for (const auto& id : ids) {
        const auto r = d.record(id);
        REQUIRE(r);
        const auto expected = v1_effects(refuse.at(id));
        const auto it = ledger.log.find(id);
        const std::vector<std::string> done = it == ledger.log.end() ? std::vector<std::string>{} : it->second;
        std::string problem;
        switch (r->phase) {
            case SagaPhase::completed:
                ++t.completed;
                if (refuse.at(id) || done != expected) problem = "completed with other effects than version 1's";
                break;
            case SagaPhase::compensated:
                ++t.compensated;
                if (!refuse.at(id) || done != expected) problem = "compensated with other effects than version 1's";
                break;
            case SagaPhase::blocked:
                ++t.blocked;
                if (done.size() > expected.size() || !std::equal(done.begin(), done.end(), expected.begin())) {
                    problem = "blocked after effects version 1 would not have had";
                } else if (r->blocked_reason.empty() || !r->owner.empty() || r->lease_until) {
                    problem = "blocked without a reason, or still held";
                }
                break;
            default: problem = "left " + std::string(to_string(r->phase)); break;
        }
        if (!problem.empty()) {
            ++t.wrong;
            std::string effects;
            for (const auto& e : done) effects += e + " ";
            t.problems.push_back(id + ": " + problem + " (" + effects + ")");
        }
    }
    return t;
}

template <class World>
bool all_settled(World& d, const std::vector<std::string>& ids) {
    for (const auto& id : ids) {
        const auto r = d.record(id);
        if (!r || r->phase == SagaPhase::running || r->phase == SagaPhase::compensating) return false;
    }
    return true;
}

// How many sagas the cut-off left in flight, as the index has them.
template <class World>
int in_flight_after_cut(World& d, const std::vector<std::string>& ids) {
    int n = 0;
    for (const auto& id : ids) {
        const auto r = d.record(id);
        if (r && (r->phase == SagaPhase::running || r->phase == SagaPhase::compensating)) ++n;
    }
    return n;
}

}  // namespace boong::test::versioning

#define BOONG_VERSIONING_PRELUDE                                                             \
    using namespace std::chrono_literals;                                                    \
    using namespace boong::test::versioning;                                                 \
    TestType d;                                                                              \
    using Store [[maybe_unused]] = std::remove_reference_t<decltype(d.store)>;               \
    using Index [[maybe_unused]] = std::remove_reference_t<decltype(d.index)>;               \
    Ledger ledger;                                                                           \
    std::map<std::string, bool> refuse;                                                      \
    FlowV1 v1(ledger);                                                                       \
    FlowV2 v2(ledger);

// A deployment of version 2 that keeps serving version 1: every saga cut off
// on version 1 ends on it, whatever version 2 changed; new sagas start on 2.
template <class NewSaga, class World>
void deploy_version_2_serving_1(World& d, boong::test::versioning::Ledger& ledger,
                                std::map<std::string, bool>& refuse, boong::test::versioning::FlowV1& v1,
                                boong::test::versioning::FlowV2& v2) {
    using namespace boong::test::versioning;
    const auto ids = start_and_cut_off(d, ledger, refuse);
    const int cut = in_flight_after_cut(d, ids);
    INFO(cut << " of 50 sagas were in flight when cut off");
    CHECK(cut >= 25);
    boong::SagaOrchestrator<NewSaga, std::remove_reference_t<decltype(d.store)>, std::remove_reference_t<decltype(d.index)>>
        orch(v2, d.store, d.index, boong::test::fast_options(), boong::test::orchestrator("deploy"));
    orch.template serve<V1>(v1, boong::test::fast_options());
    orch.start();
    REQUIRE(d.until([&] { return all_settled(d, ids); }, std::chrono::seconds(30)));
    const Tally t = tally(d, ledger, ids, refuse);
    for (const auto& p : t.problems) UNSCOPED_INFO(p);
    CHECK(t.wrong == 0);
    CHECK(t.blocked == 0);
    CHECK(t.completed == 30);
    CHECK(t.compensated == 20);
    CHECK(orch.stats().claimed >= static_cast<std::uint64_t>(cut));
    // New sagas start on version 2 and record it.
    auto fresh = boong::test::run_until_done(d.ioc, [&] { return orch.run(FlowData{}); });
    CHECK(fresh.status == boong::SagaStatus::completed);
    CHECK(d.record(fresh.saga_id)->definition_version == 2);
    CHECK(d.record(fresh.saga_id)->fingerprint == NewSaga::fingerprint());
    boong::test::run_until_done(d.ioc, [&] { return orch.stop(); });
}

TEMPLATE_TEST_CASE("versioning conformance: a deployment serving version 1 beside version 2 ends every cut-off saga "
                   "on version 1, whatever changed",
                   "[durable][versioning][conformance]", BOONG_ORCHESTRATOR_WORLDS) {
    BOONG_VERSIONING_PRELUDE
    SECTION("a step inserted") { deploy_version_2_serving_1<V2Inserted>(d, ledger, refuse, v1, v2); }
    SECTION("a step renamed") { deploy_version_2_serving_1<V2Renamed>(d, ledger, refuse, v1, v2); }
    SECTION("a step removed") { deploy_version_2_serving_1<V2Removed>(d, ledger, refuse, v1, v2); }
    SECTION("two steps swapped") { deploy_version_2_serving_1<V2Swapped>(d, ledger, refuse, v1, v2); }
    SECTION("a step's body changed (it holds 2 units, releases 2)") {
        deploy_version_2_serving_1<V2Heavier>(d, ledger, refuse, v1, v2);
    }
}

// A deployment that does not serve version 1: nothing of version 1 runs on
// version 2; each cut-off saga is blocked with the reason, freed and counted,
// until a deployment that serves version 1 (a rollback) finishes it.
template <class NewSaga, class World>
void deploy_without_version_1(World& d, boong::test::versioning::Ledger& ledger, std::map<std::string, bool>& refuse,
                              typename NewSaga::definition_type& next, boong::test::versioning::FlowV1& v1,
                              std::string_view reason, std::chrono::milliseconds first_lease = std::chrono::seconds(60)) {
    using namespace boong::test::versioning;
    using Store = std::remove_reference_t<decltype(d.store)>;
    using Index = std::remove_reference_t<decltype(d.index)>;
    const auto ids = start_and_cut_off(d, ledger, refuse, 50, first_lease);
    const int cut = in_flight_after_cut(d, ids);
    CHECK(cut >= 25);
    auto options = boong::test::orchestrator("deploy", std::chrono::milliseconds(600));
    options.orphan_after = std::chrono::milliseconds(600);
    boong::SagaOrchestrator<NewSaga, Store, Index> orch(next, d.store, d.index, boong::test::fast_options(), options);
    orch.start();
    REQUIRE(d.until([&] { return all_settled(d, ids); }, std::chrono::seconds(30)));
    Tally t = tally(d, ledger, ids, refuse);
    for (const auto& p : t.problems) UNSCOPED_INFO(p);
    CHECK(t.wrong == 0);
    CHECK(t.blocked == cut);
    // (counted once the append has returned to the orchestrator, which may
    // be just after the index shows it)
    CHECK(d.until([&] { return orch.stats().blocked == static_cast<std::uint64_t>(cut); }, std::chrono::seconds(5)));
    CHECK(orch.stats().blocked == static_cast<std::uint64_t>(cut));
    for (const auto& id : ids) {
        const auto r = d.record(id);
        if (r->phase == boong::SagaPhase::blocked) {
            CHECK_THAT(r->blocked_reason, Catch::Contains(std::string(reason)));
        }
    }
    // Counted where operators look: stuck, by phase, by definition.
    const auto stuck = boong::test::run_until_done(
        d.ioc, [&] { return d.index.async_stuck(std::chrono::milliseconds(0), 1000, boost::asio::use_awaitable); });
    CHECK(std::count_if(stuck.begin(), stuck.end(),
                        [](const auto& r) { return r.phase == boong::SagaPhase::blocked; }) == cut);
    const auto counts = boong::test::run_until_done(
        d.ioc, [&] { return d.index.async_count_definitions("flow", boost::asio::use_awaitable); });
    std::int64_t blocked_v1 = 0;
    for (const auto& c : counts) {
        if (c.phase == boong::SagaPhase::blocked && c.definition_version == 1) blocked_v1 += c.count;
    }
    CHECK(blocked_v1 == cut);
    // Nothing more happens to them while nobody serves version 1.
    const auto repeats = ledger.repeats;
    d.until([] { return false; }, std::chrono::milliseconds(1500));
    CHECK(tally(d, ledger, ids, refuse).blocked == cut);
    CHECK(ledger.repeats == repeats);
    boong::test::run_until_done(d.ioc, [&] { return orch.stop(); });

    // The rollback: version 1 served again; each blocked saga ends on it.
    boong::SagaOrchestrator<V1, Store, Index> back(v1, d.store, d.index, boong::test::fast_options(),
                                                  boong::test::orchestrator("rollback"));
    back.start();
    REQUIRE(d.until([&] { return tally(d, ledger, ids, refuse).blocked == 0; }, std::chrono::seconds(30)));
    REQUIRE(d.until([&] { return all_settled(d, ids); }, std::chrono::seconds(30)));
    t = tally(d, ledger, ids, refuse);
    for (const auto& p : t.problems) UNSCOPED_INFO(p);
    CHECK(t.wrong == 0);
    CHECK(t.completed == 30);
    CHECK(t.compensated == 20);
    boong::test::run_until_done(d.ioc, [&] { return back.stop(); });
}

TEMPLATE_TEST_CASE("versioning conformance: a saga whose definition nobody serves is blocked with the reason, never "
                   "run on another definition, and ends when its definition is served again",
                   "[durable][versioning][conformance]", BOONG_ORCHESTRATOR_WORLDS) {
    BOONG_VERSIONING_PRELUDE
    SECTION("version 2 only") {
        deploy_without_version_1<V2Inserted>(d, ledger, refuse, v2, v1, "it started on version 1 of flow");
    }
    SECTION("version 1 changed without a new version") {
        FlowV1Edited edited(ledger);
        deploy_without_version_1<V1Edited>(d, ledger, refuse, edited, v1, "changed without a new version");
    }
    SECTION("the saga type renamed") {
        FlowRenamed renamed(ledger);
        // The first deployment's lease must run out before the sagas are orphans.
        deploy_without_version_1<Renamed>(d, ledger, refuse, renamed, v1, "no orchestrator serving saga type 'flow'",
                                          std::chrono::milliseconds(600));
    }
}

TEMPLATE_TEST_CASE("versioning conformance: a rolling deploy, versions 1 and 2 alive at once, then back again",
                   "[durable][versioning][conformance]", BOONG_ORCHESTRATOR_WORLDS) {
    BOONG_VERSIONING_PRELUDE
    // Node a still runs the old build (version 1 only); node b the new one
    // (version 2, serving 1 too).
    boong::SagaOrchestrator<V1, Store, Index> a(v1, d.store, d.index, boong::test::fast_options(),
                                               boong::test::orchestrator("node-a"));
    auto b = std::make_unique<boong::SagaOrchestrator<V2Inserted, Store, Index>>(
        v2, d.store, d.index, boong::test::fast_options(), boong::test::orchestrator("node-b"));
    b->template serve<V1>(v1, boong::test::fast_options());
    a.start();
    b->start();
    // Each node starts sagas; b's are of version 2. b goes down mid-flight
    // (a graceful stop: its sagas are released at once).
    std::vector<std::string> old_ids, new_ids;
    // (their ends are read from the index below)
    for (int i = 0; i < 20; ++i) {
        boong::RunOptions o;
        o.saga_id = boong::IdGenerator().next();
        (i % 2 == 0 ? old_ids : new_ids).push_back(o.saga_id);
        if (i % 2 == 0) {
            a.runner().async_run(FlowData{}, o, [](std::exception_ptr, auto) {});
        } else {
            b->runner().async_run(FlowData{}, o, [](std::exception_ptr, auto) {});
        }
    }
    d.until([] { return false; }, 30ms);
    boong::test::run_until_done(d.ioc, [&] { return b->stop(); });
    // Node a took b's version 2 sagas (released, so free) but cannot run
    // them: they are blocked, not run on version 1.
    REQUIRE(d.until([&] { return all_settled(d, new_ids) && all_settled(d, old_ids); }, std::chrono::seconds(30)));
    int blocked = 0;
    for (const auto& id : new_ids) {
        const auto r = d.record(id);
        if (r->phase == boong::SagaPhase::blocked) {
            ++blocked;
            CHECK_THAT(r->blocked_reason, Catch::Contains("it started on version 2 of flow"));
        } else {
            CHECK(r->phase == boong::SagaPhase::completed);
        }
        // Whatever happened, no step of version 1 ran on it out of order:
        // x, which only version 2 has, comes before b.
        const auto& effects = ledger.log[id];
        const auto bpos = std::find(effects.begin(), effects.end(), "b+1");
        if (bpos != effects.end()) CHECK(std::find(effects.begin(), bpos, "x+1") != bpos);
    }
    CHECK(d.until([&] { return a.stats().blocked == static_cast<std::uint64_t>(blocked); }, std::chrono::seconds(5)));
    for (const auto& id : old_ids) CHECK(d.record(id)->phase == boong::SagaPhase::completed);
    // Node b comes back with the new build: it takes its blocked sagas back.
    b = std::make_unique<boong::SagaOrchestrator<V2Inserted, Store, Index>>(
        v2, d.store, d.index, boong::test::fast_options(), boong::test::orchestrator("node-b"));
    b->template serve<V1>(v1, boong::test::fast_options());
    b->start();
    REQUIRE(d.until(
        [&] {
            for (const auto& id : new_ids) {
                if (d.record(id)->phase != boong::SagaPhase::completed) return false;
            }
            return true;
        },
        std::chrono::seconds(30)));
    for (const auto& id : new_ids) {
        CHECK(ledger.log[id] == std::vector<std::string>{"a+1", "x+1", "b+1", "c+1"});
    }
    boong::test::run_until_done(d.ioc, [&]() -> boost::asio::awaitable<void> {
        co_await a.stop();
        co_await b->stop();
    });
}

TEMPLATE_TEST_CASE("versioning conformance: an operator's resume runs a saga on the served version it started on, "
                   "and refuses one no version served fits",
                   "[durable][versioning][conformance]", BOONG_ORCHESTRATOR_WORLDS) {
    BOONG_VERSIONING_PRELUDE
    const auto ids = start_and_cut_off(d, ledger, refuse, 10);
    std::string id;
    for (const auto& candidate : ids) {
        if (d.record(candidate)->phase == boong::SagaPhase::running && !refuse.at(candidate)) id = candidate;
    }
    REQUIRE_FALSE(id.empty());
    // Not started: nothing claims; only the operator's call runs the saga.
    boong::SagaOrchestrator<V2Swapped, Store, Index> only_v2(v2, d.store, d.index, boong::test::fast_options(),
                                                            boong::test::orchestrator("only-v2"));
    const auto version_before = d.record(id)->version;
    try {
        boong::test::run_until_done(d.ioc, [&] { return only_v2.resume(id); });
        FAIL("resumed on a definition it did not start on");
    } catch (const boong::Error& e) {
        CHECK(e.code() == boong::errc::definition_mismatch);
        CHECK_THAT(e.what(), Catch::Contains("it started on version 1 of flow"));
    }
    CHECK(d.record(id)->version == version_before);  // nothing appended
    boong::SagaOrchestrator<V2Swapped, Store, Index> both(v2, d.store, d.index, boong::test::fast_options(),
                                                         boong::test::orchestrator("both"));
    both.template serve<V1>(v1, boong::test::fast_options());
    const auto outcome = boong::test::run_until_done(d.ioc, [&] { return both.resume(id); });
    CHECK(outcome.status == boong::SagaStatus::completed);
    CHECK(ledger.log[id] == v1_effects(false));  // a, b, c: version 1's order, not version 2's a, c, b
}

TEMPLATE_TEST_CASE("versioning conformance: a saga its own definition cannot resume is blocked once, for an operator",
                   "[durable][versioning][conformance]", BOONG_ORCHESTRATOR_WORLDS) {
    BOONG_VERSIONING_PRELUDE
    // Recorded on version 1, with data version 1 cannot read (no refuse_c).
    const std::string id = boong::IdGenerator().next();
    boong::IdGenerator ids;
    boong::EventData started;
    started.event_id = ids.next();
    started.type = std::string(boong::saga_event::started);
    started.payload = boong::json{{"saga_type", "flow"},
                                  {"data", boong::json::object()},
                                  {"definition", boong::SagaDefinition{1, V1::fingerprint(), V1::shape()}.to_json()}};
    started.metadata.timestamp = boong::Clock::now();
    std::vector<boong::EventData> events{started};
    boong::test::run_until_done(d.ioc, [&] {
        return d.store.async_append(boong::saga_stream(id), boong::ExpectedVersion::no_stream(), events,
                                    boost::asio::use_awaitable);
    });
    boong::SagaOrchestrator<V1, Store, Index> orch(v1, d.store, d.index, boong::test::fast_options(),
                                                  boong::test::orchestrator("broken", 600ms));
    orch.start();
    REQUIRE(d.until([&] { return d.record(id)->phase == boong::SagaPhase::blocked; }));
    CHECK_THAT(d.record(id)->blocked_reason, Catch::Contains("resuming it failed") && Catch::Contains("does not decode"));
    // Not taken back, resumed and blocked again every round: it waits.
    const auto version = d.record(id)->version;
    d.until([] { return false; }, 2500ms);
    CHECK(d.record(id)->version == version);
    CHECK(d.record(id)->phase == boong::SagaPhase::blocked);
    CHECK(orch.stats().blocked == 1);
    // An operator's resume tries it (and here fails the same way, appending nothing).
    try {
        boong::test::run_until_done(d.ioc, [&] { return orch.resume(id); });
        FAIL("resumed data that does not decode");
    } catch (const boong::Error& e) {
        CHECK(e.code() == boong::errc::protocol_error);
    }
    CHECK(d.record(id)->version == version);
    boong::test::run_until_done(d.ioc, [&] { return orch.stop(); });
}

namespace boong::test::versioning {

// What the services hold for a saga: the units of every effect applied for
// it, undone ones counted negative (3 when a, b and c hold theirs; 0 when
// everything was undone).
inline int net_units(const Ledger& ledger, const std::string& id) {
    int units = 0;
    for (const auto& [key, n] : ledger.applied) {
        if (key.starts_with(id + ":")) units += n;
    }
    return units;
}

// Stops serving version 1 (version 2 only: each cut-off saga is blocked),
// then moves the blocked sagas to version 2 with Migration, a dry run
// first. Returns the results of the migration proper; the orchestrator of
// version 2 runs on until the caller stops it.
template <class Migration, class World, class Orchestrator>
std::vector<boong::SagaMigrationResult> block_then_migrate(World& d, Orchestrator& orch, const std::vector<std::string>& ids,
                                                           int cut) {
    orch.start();
    REQUIRE(d.until(
        [&] {
            int blocked = 0;
            for (const auto& id : ids) blocked += d.record(id)->phase == boong::SagaPhase::blocked ? 1 : 0;
            return blocked == cut;
        },
        std::chrono::seconds(30)));
    boong::MigrationRequest request;
    request.by = "alice";
    request.reason = "retire version 1";
    request.dry_run = true;
    std::map<std::string, std::int64_t> versions;
    for (const auto& id : ids) versions[id] = d.record(id)->version;
    const auto planned = boong::test::run_until_done(
        d.ioc, [&] { return boong::migrate_sagas<Migration>(d.store, d.index, request); });
    CHECK(planned.size() == static_cast<std::size_t>(cut));
    for (const auto& r : planned) CHECK(r.outcome != boong::MigrationOutcome::migrated);
    for (const auto& id : ids) CHECK(d.record(id)->version == versions[id]);  // the dry run appended nothing
    request.dry_run = false;
    auto results = boong::test::run_until_done(
        d.ioc, [&] { return boong::migrate_sagas<Migration>(d.store, d.index, request); });
    REQUIRE(results.size() == planned.size());
    for (std::size_t i = 0; i < results.size(); ++i) {
        // What the dry run said is what was done.
        CHECK(results[i].saga_id == planned[i].saga_id);
        CHECK((results[i].outcome == boong::MigrationOutcome::migrated) ==
              (planned[i].outcome == boong::MigrationOutcome::would_migrate));
    }
    return results;
}

// Whether each of `ids` has ended (blocked is not an end here).
template <class World>
bool all_ended(World& d, const std::vector<std::string>& ids) {
    for (const auto& id : ids) {
        const auto r = d.record(id);
        if (!r || !boong::is_terminal(r->phase)) return false;
    }
    return true;
}

// The audit trail of a migrated saga: its last SagaMigrated.
template <class World>
boong::json migrated_payload(World& d, const std::string& id) {
    const auto events = boong::test::run_until_done(d.ioc, [&] {
        return d.store.async_read_stream(boong::saga_stream(id), 1, 1000, boost::asio::use_awaitable);
    });
    for (auto it = events.rbegin(); it != events.rend(); ++it) {
        if (it->event.type == boong::saga_event::migrated) return it->event.payload;
    }
    return boong::json();
}

}  // namespace boong::test::versioning

TEMPLATE_TEST_CASE("versioning conformance: an explicit migration moves blocked sagas to version 2, refuses those "
                   "whose progress does not fit it, and leaves no wrong effect",
                   "[durable][versioning][conformance][migration]", BOONG_ORCHESTRATOR_WORLDS) {
    BOONG_VERSIONING_PRELUDE
    const auto ids = start_and_cut_off(d, ledger, refuse);
    const int cut = in_flight_after_cut(d, ids);
    CHECK(cut >= 25);
    SECTION("a step renamed: every saga moves, and the renamed step keeps its idempotency key") {
        using Move = boong::SagaMigration<V1, V2Renamed, boong::Rename<"b", "b2">>;
        boong::SagaOrchestrator<V2Renamed, Store, Index> orch(v2, d.store, d.index, boong::test::fast_options(),
                                                             boong::test::orchestrator("deploy"));
        const auto results = block_then_migrate<Move>(d, orch, ids, cut);
        for (const auto& r : results) {
            CHECK(r.outcome == boong::MigrationOutcome::migrated);
            const auto audit = migrated_payload(d, r.saga_id);
            CHECK(audit.value("by", "") == "alice");
            CHECK(audit.value("reason", "") == "retire version 1");
            CHECK(audit.at("renamed") == boong::json::array({boong::json::array({"b", "b2"})}));
        }
        REQUIRE(d.until([&] { return all_ended(d, ids); }, std::chrono::seconds(30)));
        for (const auto& id : ids) {
            const auto r = d.record(id);
            INFO(id);
            // Version 1's ending, b's effect under its new name, never twice.
            std::vector<std::string> effects;
            for (const auto& e : ledger.log[id]) effects.push_back(e == "b2+1" ? "b+1" : e == "~b2-1" ? "~b-1" : e);
            CHECK(effects == v1_effects(refuse.at(id)));
            CHECK(r->phase == (refuse.at(id) ? boong::SagaPhase::compensated : boong::SagaPhase::completed));
            CHECK(net_units(ledger, id) == (refuse.at(id) ? 0 : 3));
        }
        for (const auto& r : results) CHECK(d.record(r.saga_id)->definition_version == 2);
        boong::test::run_until_done(d.ioc, [&] { return orch.stop(); });
    }
    SECTION("two steps swapped: a saga that completed b before c is refused and stays blocked") {
        using Move = boong::SagaMigration<V1, V2Swapped>;
        boong::SagaOrchestrator<V2Swapped, Store, Index> orch(v2, d.store, d.index, boong::test::fast_options(),
                                                             boong::test::orchestrator("deploy"));
        const auto results = block_then_migrate<Move>(d, orch, ids, cut);
        std::vector<std::string> moved;
        int refused = 0;
        for (const auto& r : results) {
            if (r.outcome == boong::MigrationOutcome::migrated) {
                moved.push_back(r.saga_id);
            } else {
                ++refused;
                CHECK(r.outcome == boong::MigrationOutcome::refused);
                // Running with b done (or begun: its effect may have
                // happened), or unwinding: only the first is refused.
                CHECK_THAT(r.reason, Catch::Matches("it (completed|began) 'b' but not 'c', which version 2 runs before it"));
            }
        }
        INFO(moved.size() << " moved, " << refused << " refused");
        REQUIRE(d.until([&] { return all_ended(d, moved); }, std::chrono::seconds(30)));
        for (const auto& id : ids) {
            const auto r = d.record(id);
            const bool was_moved = std::find(moved.begin(), moved.end(), id) != moved.end();
            INFO(id << " " << to_string(r->phase));
            if (!was_moved) {
                // Refused (or never cut off): as version 1 left it.
                if (r->phase == boong::SagaPhase::blocked) CHECK(r->definition_version == 1);
                continue;
            }
            CHECK(r->definition_version == 2);
            if (r->phase == boong::SagaPhase::completed) {
                CHECK(net_units(ledger, id) == 3);
                CHECK_FALSE(refuse.at(id));
            } else {
                CHECK(r->phase == boong::SagaPhase::compensated);
                CHECK(net_units(ledger, id) == 0);
            }
        }
        CHECK(refused + static_cast<int>(moved.size()) == cut);
        boong::test::run_until_done(d.ioc, [&] { return orch.stop(); });
    }
}
