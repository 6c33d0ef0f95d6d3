// An operator's cancel (SagaCancelRequested) as the fold reads it, and as a
// runner carries it out when it resumes the saga: no I/O but the in-memory store.
#include "support/async.hpp"
#include "support/durable_world.hpp"
#include "support/events.hpp"
#include "support/scripted_saga.hpp"

#include <boong/memory/store.hpp>
#include <boong/saga_cancel.hpp>
#include <boong/saga_runner.hpp>

#include <boost/asio/io_context.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using boong::test::recorded_saga_event;

TEST_CASE("saga fold: a cancel request marks a running saga, with who asked; any other phase is refused",
          "[saga][cancel]") {
    using namespace boong;
    const json started{{"saga_type", "scripted"}, {"data", json::object()}};
    SagaState s;
    s.apply(recorded_saga_event("s", 1, saga_event::started, started));
    s.apply(recorded_saga_event("s", 2, saga_event::cancel_requested, {{"by", "bob@ops"}, {"reason", "withdrawn"}}));
    CHECK(s.phase == SagaPhase::running);  // it moves no phase: the claimant's run does
    CHECK(s.cancel_requested);
    CHECK(s.cancel_reason == "withdrawn (by bob@ops)");

    SagaState done;
    done.apply(recorded_saga_event("t", 1, saga_event::started, started));
    done.apply(recorded_saga_event("t", 2, saga_event::completed, json::object()));
    CHECK_THROWS_WITH(done.apply(recorded_saga_event("t", 3, saga_event::cancel_requested, {{"reason", "late"}})),
                      Catch::Contains("only a running saga can be cancelled, not a completed one"));
    CHECK(detail::cancel_refusal(done) == "it is completed: only a running saga is cancelled");
    CHECK(detail::cancel_refusal(s) == "its cancel was already asked for: withdrawn (by bob@ops)");
}

TEST_CASE("a resumed saga whose cancel was asked for compensates what it completed; the step it was stopped in "
          "only under compensate_uncertain",
          "[saga][cancel]") {
    using namespace boong;
    using namespace boong::test;
    const bool uncertain = GENERATE(false, true);
    INFO("compensate_uncertain " << uncertain);
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    def.plans["b"] = Plan{{Act::hang}, {Act::ok}};
    auto options = slow_step_options();
    options.defaults.compensate_uncertain = uncertain;
    struct World {
        boost::asio::io_context& ioc;
        bool until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
            return run_until(ioc, done, limit);
        }
    } w{ioc};
    SagaRunner<FourSteps, MemoryEventStore> first(def, store, options);
    const std::string id = start_and_abandon(w, first, def);  // a completed, b begun

    CancelRequest request;
    request.saga_ids = {id};
    request.by = "bob@ops";
    request.reason = "customer withdrew";
    const auto results = run_until_done(ioc, [&] { return request_cancel(store, request); });
    REQUIRE(results.size() == 1);
    REQUIRE(results[0].outcome == RequestOutcome::requested);

    def.calls.clear();
    SagaRunner<FourSteps, MemoryEventStore> second(def, store, options);
    const auto outcome = run_until_done(ioc, [&] { return second.resume(id); });
    CHECK(outcome.status == SagaStatus::compensated);
    CHECK(outcome.failed_step == "b");
    CHECK(outcome.failure_kind == FailureKind::cancelled);
    CHECK(outcome.error == "saga cancelled: customer withdrew (by bob@ops)");
    // b is not tried again; a is undone, and b too when its outcome counts as uncertain.
    const std::vector<std::string> expected =
        uncertain ? std::vector<std::string>{"~b#1", "~a#1"} : std::vector<std::string>{"~a#1"};
    CHECK(def.calls == expected);
}
