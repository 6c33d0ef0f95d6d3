// Durable execution scenarios any store and saga index must pass: an
// orchestrator takes over a dead one's sagas (lease expired, or its own
// earlier incarnation), a stale owner learns it lost them, a stopping one
// hands them over at once. A test file defines
// BOONG_ORCHESTRATOR_WORLDS (default-constructible worlds, see
// support/durable_world.hpp) and includes this header.
#pragma once

#include "support/async.hpp"
#include "support/durable_world.hpp"
#include "support/events.hpp"

#include <chrono>
#include <string>
#include <vector>

// The names a scenario uses, for its world.
#define BOONG_ORCHESTRATOR_PRELUDE                                                                  \
    using namespace std::chrono_literals;                                                           \
    using boong::test::Act;                                                                         \
    using boong::test::ScriptedSaga;                                                                \
    using boong::test::orchestrator;                                                                \
    using boong::test::slow_step_options;                                                           \
    using boong::test::start_and_abandon;                                                           \
    TestType d;                                                                                     \
    using Orchestrator [[maybe_unused]] =                                                           \
        boong::SagaOrchestrator<boong::test::FourSteps, std::remove_reference_t<decltype(d.store)>, \
                                std::remove_reference_t<decltype(d.index)>>;                        \
    using Runner [[maybe_unused]] =                                                                 \
        boong::SagaRunner<boong::test::FourSteps, std::remove_reference_t<decltype(d.store)>>;

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

TEMPLATE_TEST_CASE("orchestrator conformance: renewing reports the sagas another owner holds now",
                   "[durable][conformance]", BOONG_ORCHESTRATOR_WORLDS) {
    BOONG_ORCHESTRATOR_PRELUDE
    ScriptedSaga def;
    def.plans["b"].actions = {Act::hang};
    boong::RunnerOptions opts;
    opts.owner = "first/1";
    opts.lease = 200ms;
    Runner first(def, d.store, slow_step_options(), opts);
    const std::string id = start_and_abandon(d, first, def);
    d.until([] { return false; }, 300ms);
    const boong::SagaClaim scripted{"scripted", {}};
    auto claimed = boong::test::run_until_done(
        d.ioc, [&] { return d.index.async_claim(scripted, "second/1", 10s, 10, boost::asio::use_awaitable); });
    CHECK(claimed == std::vector<std::string>{id});
    auto lost = boong::test::run_until_done(d.ioc, [&] {
        return d.index.async_renew("first/1", 10s, std::vector<std::string>{id}, boost::asio::use_awaitable);
    });
    CHECK(lost == std::vector<std::string>{id});
    // A second claim finds nothing: the lease is live.
    CHECK(boong::test::run_until_done(d.ioc, [&] {
              return d.index.async_claim(scripted, "third/1", 10s, 10, boost::asio::use_awaitable);
          }).empty());
    // Bad owners and leases are refused with a clear error.
    CHECK(boong::test::code_of([&] {
              boong::test::run_until_done(d.ioc, [&] {
                  return d.index.async_claim(scripted, "no-slash", 10s, 10, boost::asio::use_awaitable);
              });
          }) == boong::errc::invalid_argument);
    CHECK(boong::test::code_of([&] {
              boong::test::run_until_done(
                  d.ioc, [&] { return d.index.async_claim(scripted, "a/1", 0ms, 10, boost::asio::use_awaitable); });
          }) == boong::errc::invalid_argument);
}

TEMPLATE_TEST_CASE("orchestrator conformance: stopping an orchestrator releases its sagas to the others at once",
                   "[durable][conformance]", BOONG_ORCHESTRATOR_WORLDS) {
    BOONG_ORCHESTRATOR_PRELUDE
    ScriptedSaga def;
    def.plans["b"].actions = {Act::hang};
    Orchestrator leaving(def, d.store, d.index, slow_step_options(), orchestrator("leaving", 60s));
    std::string id = boong::IdGenerator().next();
    boong::RunOptions o;
    o.saga_id = id;
    bool done = false;
    leaving.runner().async_run(boong::test::TestData{}, o, [&](std::exception_ptr, auto) { done = true; });
    REQUIRE(d.until([&] { return std::find(def.calls.begin(), def.calls.end(), "b#1") != def.calls.end(); }));
    boong::test::run_until_done(d.ioc, [&] { return leaving.stop(); });
    CHECK(done);
    ScriptedSaga heir_def;
    Orchestrator heir(heir_def, d.store, d.index, slow_step_options(), orchestrator("heir", 60s));
    const auto start = std::chrono::steady_clock::now();
    heir.start();
    REQUIRE(d.until([&] { return d.record(id)->phase == boong::SagaPhase::completed; }));
    CHECK(std::chrono::steady_clock::now() - start < 5s);  // not the 60 s lease
    boong::test::run_until_done(d.ioc, [&] { return heir.stop(); });
}
