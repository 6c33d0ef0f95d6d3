// Durable execution scenarios any store and saga index must pass: an
// orchestrator takes over a dead one's sagas. A test file defines
// BOONG_ORCHESTRATOR_WORLDS (default-constructible worlds, see
// support/durable_world.hpp) and includes this header.
#pragma once

#include "support/async.hpp"
#include "support/durable_world.hpp"

#include <chrono>
#include <string>
#include <vector>

// The names a scenario uses, for its world.
#define BOONG_ORCHESTRATOR_PRELUDE                                                                        \
    using namespace std::chrono_literals;                                                                 \
    using boong::test::Act;                                                                               \
    using boong::test::ScriptedSaga;                                                                      \
    using boong::test::orchestrator;                                                                      \
    using boong::test::slow_step_options;                                                                 \
    using boong::test::start_and_abandon;                                                                 \
    TestType d;                                                                                           \
    using Orchestrator = boong::SagaOrchestrator<boong::test::FourSteps, std::remove_reference_t<decltype(d.store)>, \
                                                 std::remove_reference_t<decltype(d.index)>>;            \
    using Runner = boong::SagaRunner<boong::test::FourSteps, std::remove_reference_t<decltype(d.store)>>;

TEMPLATE_TEST_CASE("orchestrator conformance: another orchestrator takes over a dead one's saga when its lease expires",
                   "[durable][conformance]", BOONG_ORCHESTRATOR_WORLDS) {
    BOONG_ORCHESTRATOR_PRELUDE
    ScriptedSaga dead_def;
    dead_def.plans["b"].actions = {Act::hang};
    boong::RunnerOptions dead_opts;
    dead_opts.owner = "dead-node/1";
    dead_opts.lease = 700ms;
    Runner dead(dead_def, d.store, slow_step_options(), dead_opts);
    const auto abandoned_at = std::chrono::steady_clock::now();
    const std::string id = start_and_abandon(d, dead, dead_def);
    CHECK(d.record(id)->owner == "dead-node/1");

    ScriptedSaga live_def;
    Orchestrator orch(live_def, d.store, d.index, slow_step_options(), orchestrator("survivor"));
    std::vector<boong::SagaStatus> outcomes;
    orch.on_outcome([&](const std::string& saga, std::exception_ptr e, const auto& o) {
        CHECK(saga == id);
        CHECK_FALSE(e);
        outcomes.push_back(o.status);
    });
    orch.start();
    REQUIRE(d.until([&] { return outcomes.size() == 1; }));
    CHECK(std::chrono::steady_clock::now() - abandoned_at >= 600ms);  // not before the lease ran out
    CHECK(outcomes[0] == boong::SagaStatus::completed);
    // The step that was interrupted runs again, with the same idempotency key;
    // the one completed before does not.
    CHECK(live_def.calls == std::vector<std::string>{"b#1", "c#1", "d#1"});
    CHECK(live_def.idempotency_keys.front() == dead_def.idempotency_keys.back());
    auto r = d.record(id);
    CHECK(r->phase == boong::SagaPhase::completed);
    CHECK(orch.stats().claimed == 1);
    boong::test::run_until_done(d.ioc, [&] { return orch.stop(); });
}

TEMPLATE_TEST_CASE("orchestrator conformance: a restarted orchestrator takes its predecessor's sagas back at once",
                   "[durable][conformance]", BOONG_ORCHESTRATOR_WORLDS) {
    BOONG_ORCHESTRATOR_PRELUDE
    ScriptedSaga old_def;
    old_def.plans["b"].actions = {Act::hang};
    boong::RunnerOptions old_opts;
    old_opts.owner = "orders-1/previous-life";
    old_opts.lease = 60s;  // far from expiring
    Runner old_runner(old_def, d.store, slow_step_options(), old_opts);
    const std::string id = start_and_abandon(d, old_runner, old_def);

    ScriptedSaga def;
    Orchestrator other(def, d.store, d.index, slow_step_options(), orchestrator("orders-2"));
    Orchestrator same(def, d.store, d.index, slow_step_options(), orchestrator("orders-1"));
    other.start();
    d.until([] { return false; }, 300ms);
    CHECK(other.stats().claimed == 0);  // someone else's live lease
    const auto start = std::chrono::steady_clock::now();
    same.start();
    REQUIRE(d.until([&] { return d.record(id)->phase == boong::SagaPhase::completed; }));
    CHECK(std::chrono::steady_clock::now() - start < 5s);
    CHECK(same.stats().claimed == 1);
    CHECK(other.stats().claimed == 0);
    boong::test::run_until_done(d.ioc, [&]() -> boost::asio::awaitable<void> {
        co_await other.stop();
        co_await same.stop();
    });
}

