// Helpers for tests of durable execution on any store and saga index (a
// "world": ioc, store, index, until(done, limit), record(id)).
#pragma once

#include "support/scripted_saga.hpp"

#include <boong/saga_orchestrator.hpp>
#include <boong/saga_runner.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <string>

namespace boong::test {

inline SagaOptions slow_step_options() {
    auto o = fast_options();
    o.defaults.timeout = std::chrono::seconds(60);  // a hanging step stays hanging: the test decides when it ends
    return o;
}

inline OrchestratorOptions orchestrator(std::string name, std::chrono::milliseconds lease = std::chrono::seconds(2)) {
    OrchestratorOptions o;
    o.name = std::move(name);
    o.lease = lease;
    o.scan_interval = std::chrono::milliseconds(50);
    return o;
}

// Starts a saga on `runner` that hangs in step b, waits until b runs, then
// interrupts the runner without releasing anything: to the store, its
// process died there.
template <class World, class Runner>
std::string start_and_abandon(World& d, Runner& runner, ScriptedSaga& def, RunOptions options = {}) {
    bool finished = false;
    std::exception_ptr error;
    std::string id = options.saga_id.empty() ? IdGenerator().next() : options.saga_id;
    options.saga_id = id;
    runner.async_run(TestData{}, options, [&](std::exception_ptr e, auto) {
        error = e;
        finished = true;
    });
    REQUIRE(d.until([&] { return std::find(def.calls.begin(), def.calls.end(), "b#1") != def.calls.end(); },
                    std::chrono::seconds(15)));
    runner.shutdown();
    REQUIRE(d.until([&] { return finished; }, std::chrono::seconds(15)));
    REQUIRE(error);  // interrupted, not finished
    return id;
}

}  // namespace boong::test
