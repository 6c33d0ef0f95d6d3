// Parallel groups: fan-out, join, and what a failure inside the group does.
#include "support/async.hpp"
#include "support/scripted_saga.hpp"

#include <boong/saga_runner.hpp>
#include <boong/memory/store.hpp>

#include <catch2/catch.hpp>

#include <algorithm>

using namespace boong;
using namespace boong::test;
using namespace std::chrono_literals;

namespace {

using GroupSaga = Saga<Step<"a", &Steps::a, &Steps::undo_a>,
                       Parallel<Step<"b", &Steps::b, &Steps::undo_b>, Step<"c", &Steps::c, &Steps::undo_c>,
                                Step<"d", &Steps::d, &Steps::undo_d>>,
                       Step<"e", &Steps::e, &Steps::undo_e>>;
using Runner = SagaRunner<GroupSaga, MemoryEventStore>;

bool called(const ScriptedSaga& def, const std::string& call) {
    return std::find(def.calls.begin(), def.calls.end(), call) != def.calls.end();
}

}  // namespace

TEST_CASE("the steps of a parallel group run concurrently and the saga joins them", "[saga][parallel]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    for (auto s : {"b", "c", "d"}) {
        def.plans[s].actions = {Act::slow_ok};
        def.plans[s].slow = 40ms;
    }
    Runner runner(def, store, fast_options());
    auto out = run(ioc, [&] { return runner.run(TestData{}); });
    CHECK(out.status == SagaStatus::completed);
    // Overlap, not timing: the three were in their actions at the same moment...
    CHECK(def.max_in_flight == 3);
    // ...and the journal says so too: every one started before any completed.
    std::vector<std::string> group_events;
    for (const auto& e : store.read_stream(saga_stream(out.saga_id), 1, 1000)) {
        const auto step = e.event.payload.value("step", "");
        if (step == "b" || step == "c" || step == "d") group_events.push_back(e.event.type);
    }
    REQUIRE(group_events.size() == 6);
    CHECK(std::count(group_events.begin(), group_events.begin() + 3, std::string(saga_event::step_started)) == 3);
    CHECK(def.calls.front() == "a#1");
    CHECK(def.calls.back() == "e#1");
    // Every step's change to the shared data survived the join.
    CHECK(out.data.value == 5);
    auto state = fold_saga(store.read_stream(saga_stream(out.saga_id), 1, 1000));
    CHECK(state.completed.size() == 5);
    CHECK(state.completed.back() == "e");
}

TEST_CASE("a failing step cancels its siblings; completed ones are compensated", "[saga][parallel]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    def.plans["b"].actions = {Act::ok};      // completes at once
    def.plans["c"].actions = {Act::reject};  // fails
    def.plans["d"].actions = {Act::hang};    // must be cancelled, not waited for
    SagaOptions options = fast_options();
    options.defaults.timeout = 30s;
    Runner runner(def, store, options);
    auto out = run(ioc, [&] { return runner.run(TestData{}); }, 10s);
    CHECK(out.status == SagaStatus::compensated);
    CHECK(out.failed_step == "c");
    CHECK(out.failure_kind == FailureKind::rejected);
    CHECK(def.in_flight == 0);
    CHECK_FALSE(called(def, "e#1"));
    // b completed and is compensated before a; c and d never completed.
    CHECK(def.compensation_calls() == std::vector<std::string>{"~b#1", "~a#1"});
    auto events = store.read_stream(saga_stream(out.saga_id), 1, 1000);
    bool d_cancelled = false;
    for (auto& e : events) {
        if (e.event.type == saga_event::step_failed && e.event.payload.at("step") == "d") {
            d_cancelled = e.event.payload.at("kind") == "cancelled";
        }
    }
    CHECK(d_cancelled);
}

TEST_CASE("a transient failure in a group is retried without disturbing its siblings", "[saga][parallel]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    def.plans["c"].actions = {Act::fail, Act::ok};
    def.plans["d"].actions = {Act::slow_ok};
    Runner runner(def, store, fast_options());
    auto out = run(ioc, [&] { return runner.run(TestData{}); });
    CHECK(out.status == SagaStatus::completed);
    CHECK(called(def, "c#2"));
    CHECK(std::count(def.calls.begin(), def.calls.end(), "d#1") == 1);
}

TEST_CASE("cancelling a saga inside a group cancels every branch and unwinds", "[saga][parallel][cancel]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    for (auto s : {"b", "c", "d"}) def.plans[s].actions = {Act::hang};
    SagaOptions options = fast_options();
    options.defaults.timeout = 30s;
    Runner runner(def, store, options);
    auto out = run(
        ioc,
        [&]() -> boost::asio::awaitable<Runner::Outcome> {
            bool done = false;
            Runner::Outcome result;
            std::exception_ptr error;
            runner.async_run(TestData{}, {.saga_id = "group-cancel"}, [&](std::exception_ptr e, Runner::Outcome o) {
                error = e;
                result = std::move(o);
                done = true;
            });
            while (def.in_flight < 3) co_await sleep_for(1ms);
            REQUIRE(runner.cancel("group-cancel"));
            while (!done) co_await sleep_for(1ms);
            if (error) std::rethrow_exception(error);
            co_return result;
        },
        10s);
    CHECK(out.status == SagaStatus::compensated);
    CHECK(out.failure_kind == FailureKind::cancelled);
    CHECK(def.in_flight == 0);
    CHECK(def.compensation_calls() == std::vector<std::string>{"~a#1"});
}
