// Retries, timeouts, rejections, failed compensations, cancellation, shutdown
// and resuming.
#include "support/async.hpp"
#include "support/scripted_saga.hpp"

#include <boong/saga_runner.hpp>
#include <boong/memory/store.hpp>

#include <catch2/catch.hpp>

using namespace boong;
using namespace boong::test;
using namespace std::chrono_literals;
using boost::asio::awaitable;

namespace {

using Runner = SagaRunner<FourSteps, MemoryEventStore>;

std::vector<RecordedEvent> events_of(const MemoryEventStore& store, const std::string& saga_id,
                                     std::string_view type = {}) {
    std::vector<RecordedEvent> out;
    for (auto& e : store.read_stream(saga_stream(saga_id), 1, 10000)) {
        if (type.empty() || e.event.type == type) out.push_back(std::move(e));
    }
    return out;
}

// Starts a saga, lets `during` act on the runner while the saga runs, and
// returns the run's outcome (or its exception).
template <class During>
awaitable<std::pair<std::exception_ptr, Runner::Outcome>> run_while(Runner& runner, RunOptions options,
                                                                      During during) {
    auto ex = co_await boost::asio::this_coro::executor;
    std::exception_ptr error;
    Runner::Outcome outcome;
    bool done = false;
    runner.async_run(TestData{}, std::move(options), [&](std::exception_ptr e, Runner::Outcome o) {
        error = e;
        outcome = std::move(o);
        done = true;
    });
    co_await during();
    while (!done) co_await sleep_for(1ms);
    co_return std::make_pair(error, std::move(outcome));
}

}  // namespace

TEST_CASE("backoff delays grow by the multiplier, are capped, and jitter stays in bounds", "[saga][retry]") {
    RetryPolicy p{5, 100ms, 2.0, 500ms, 0.0};
    CHECK(detail::backoff_delay(p, 1, 7) == 100ms);
    CHECK(detail::backoff_delay(p, 2, 7) == 200ms);
    CHECK(detail::backoff_delay(p, 3, 7) == 400ms);
    CHECK(detail::backoff_delay(p, 4, 7) == 500ms);
    CHECK(detail::backoff_delay(p, 9, 7) == 500ms);
    p.jitter = 0.2;
    bool varied = false;
    for (std::uint64_t salt = 0; salt < 200; ++salt) {
        const auto d = detail::backoff_delay(p, 2, salt);
        CHECK(d >= 160ms);
        CHECK(d <= 240ms);
        varied = varied || d != detail::backoff_delay(p, 2, 0);
    }
    CHECK(varied);
    // The design's defaults.
    const StepPolicy defaults;
    CHECK(defaults.retry.attempts == 3);
    CHECK(defaults.retry.initial_delay == 1000ms);
    CHECK(defaults.compensation_timeout == 5000ms);
}

TEST_CASE("a transient failure is retried with the policy's delays and the same idempotency key", "[saga][retry]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    def.plans["b"].actions = {Act::fail, Act::fail, Act::fail, Act::ok};
    SagaOptions options = fast_options(4);
    options.steps["b"] = options.defaults;
    options.steps["b"].retry = RetryPolicy{4, 30ms, 2.0, 1000ms, 0.0};
    Runner runner(def, store, options);

    auto out = run(ioc, [&] { return runner.run(TestData{}); });
    CHECK(out.status == SagaStatus::completed);
    CHECK(def.calls == std::vector<std::string>{"a#1", "b#1", "b#2", "b#3", "b#4", "c#1", "d#1"});
    // Every attempt of b saw the same key.
    CHECK(std::count(def.idempotency_keys.begin(), def.idempotency_keys.end(), out.saga_id + ":b") == 4);

    auto started = events_of(store, out.saga_id, saga_event::step_started);
    std::vector<Clock::time_point> b_starts;
    for (auto& e : started) {
        if (e.event.payload.at("step") == "b") b_starts.push_back(e.event.metadata.timestamp);
    }
    REQUIRE(b_starts.size() == 4);
    const std::vector<std::chrono::milliseconds> expected{30ms, 60ms, 120ms};
    for (std::size_t i = 0; i < expected.size(); ++i) {
        const auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(b_starts[i + 1] - b_starts[i]);
        CHECK(gap >= expected[i]);
        CHECK(gap < expected[i] + 250ms);  // generous: this machine is shared
    }
    auto failed = events_of(store, out.saga_id, saga_event::step_failed);
    REQUIRE(failed.size() == 3);
    CHECK(failed[0].event.payload.at("attempt") == 1);
    CHECK(failed[0].event.payload.at("kind") == "transient");
    CHECK(failed[0].event.payload.at("final") == false);
    CHECK(failed[2].event.payload.at("error") == "b failed (transient)");
}

TEST_CASE("a business rejection is not retried", "[saga][retry]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    def.plans["b"].actions = {Act::reject};
    Runner runner(def, store, fast_options(5));
    auto out = run(ioc, [&] { return runner.run(TestData{}); });
    CHECK(out.status == SagaStatus::compensated);
    CHECK(out.failure_kind == FailureKind::rejected);
    CHECK(out.error == "b rejected");
    CHECK(def.calls == std::vector<std::string>{"a#1", "b#1", "~a#1"});
    auto failed = events_of(store, out.saga_id, saga_event::step_failed);
    REQUIRE(failed.size() == 1);
    CHECK(failed[0].event.payload.at("final") == true);
    CHECK(failed[0].event.payload.at("kind") == "rejected");
}

TEST_CASE("a hung step times out on every attempt and the saga is compensated", "[saga][timeout]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    def.plans["c"].actions = {Act::hang};
    SagaOptions options = fast_options(2);
    options.defaults.timeout = 40ms;
    Runner runner(def, store, options);
    const auto start = std::chrono::steady_clock::now();
    auto out = run(ioc, [&] { return runner.run(TestData{}); }, 10s);
    CHECK(std::chrono::steady_clock::now() - start >= 80ms);
    CHECK(out.status == SagaStatus::compensated);
    CHECK(out.failure_kind == FailureKind::timeout);
    CHECK(out.failed_step == "c");
    CHECK(out.error == "timed out after 40 ms");
    CHECK(def.compensation_calls() == std::vector<std::string>{"~b#1", "~a#1"});
    CHECK(events_of(store, out.saga_id, saga_event::step_failed).size() == 2);
    CHECK(def.in_flight == 0);  // the hung attempts were cancelled, not abandoned
}

TEST_CASE("a compensation that keeps failing ends the saga failed; an operator resume finishes it",
          "[saga][compensation][resume]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    def.plans["c"].actions = {Act::reject};
    def.plans["b"].compensations = {Act::fail};
    Runner runner(def, store, fast_options(3, 3));

    auto out = run(ioc, [&] { return runner.run(TestData{}); });
    CHECK(out.status == SagaStatus::failed);
    CHECK(out.failed_step == "c");
    CHECK(out.failed_compensation == "b");
    CHECK(out.compensation_error == "b failed (transient)");
    CHECK(def.compensation_calls() == std::vector<std::string>{"~b#1", "~b#2", "~b#3"});  // a not yet: order holds
    CHECK(events_of(store, out.saga_id, saga_event::compensation_failed).size() == 3);
    auto state = fold_saga(events_of(store, out.saga_id));
    CHECK(state.phase == SagaPhase::failed);
    CHECK(state.failed_compensation == "b");

    // The cause is fixed; the operator resumes: b then a are compensated.
    def.plans["b"].compensations = {Act::ok};
    def.calls.clear();
    auto resumed = run(ioc, [&] { return runner.resume(out.saga_id); });
    CHECK(resumed.status == SagaStatus::compensated);
    CHECK(def.calls == std::vector<std::string>{"~b#1", "~a#1"});
    CHECK(resumed.compensated_steps == std::vector<std::string>{"b", "a"});
    CHECK(events_of(store, out.saga_id, saga_event::resumed).size() == 1);

    // A compensated saga cannot be resumed again, an unknown one is not found.
    auto code_of = [&](std::string id) {
        try {
            run(ioc, [&] { return runner.resume(id); });
        } catch (const boost::system::system_error& e) {
            return e.code();
        }
        return error_code{};
    };
    CHECK(code_of(out.saga_id) == errc::saga_not_resumable);
    CHECK(code_of("no-such-saga") == errc::not_found);
}

TEST_CASE("cancelling a running saga compensates what it completed, shielded from further cancels",
          "[saga][cancel]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    def.plans["c"].actions = {Act::hang};
    def.plans["b"].compensations = {Act::slow_ok};
    def.plans["b"].slow = 50ms;
    Runner runner(def, store, fast_options());

    auto [error, out] = run(ioc, [&] {
        return run_while(runner, {.saga_id = "to-cancel"}, [&]() -> awaitable<void> {
            while (def.calls.size() < 3) co_await sleep_for(1ms);  // c is hanging now
            CHECK(runner.cancel("to-cancel", "customer changed their mind"));
            while (def.compensation_calls().empty()) co_await sleep_for(1ms);
            runner.cancel("to-cancel", "again");  // must not interrupt the compensation
            co_return;
        });
    });
    REQUIRE_FALSE(error);
    CHECK(out.status == SagaStatus::compensated);
    CHECK(out.failure_kind == FailureKind::cancelled);
    CHECK(out.failed_step == "c");
    CHECK(out.error == "saga cancelled: customer changed their mind");
    CHECK(def.compensation_calls() == std::vector<std::string>{"~b#1", "~a#1"});
    CHECK(events_of(store, "to-cancel", saga_event::compensation_failed).empty());
    CHECK_FALSE(runner.cancel("to-cancel"));  // no longer running
}

TEST_CASE("a shutdown leaves the saga as it stands; resume continues it with the same keys",
          "[saga][shutdown][resume]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    def.plans["c"].actions = {Act::hang};
    Runner runner(def, store, fast_options());

    auto [error, out] = run(ioc, [&] {
        return run_while(runner, {.saga_id = "interrupted"}, [&]() -> awaitable<void> {
            while (def.calls.size() < 3) co_await sleep_for(1ms);
            runner.shutdown();
            co_return;
        });
    });
    REQUIRE(error);
    try {
        std::rethrow_exception(error);
    } catch (const boost::system::system_error& e) {
        CHECK(e.code() == boost::asio::error::operation_aborted);
    }
    // Nothing was compensated: the saga is still running as far as its events say.
    auto state = fold_saga(events_of(store, "interrupted"));
    CHECK(state.phase == SagaPhase::running);
    CHECK(state.completed == std::vector<std::string>{"a", "b"});
    CHECK(def.compensation_calls().empty());

    def.plans["c"].actions = {Act::ok};
    def.calls.clear();
    def.idempotency_keys.clear();
    auto resumed = run(ioc, [&] { return runner.resume("interrupted"); });
    CHECK(resumed.status == SagaStatus::completed);
    CHECK(def.calls == std::vector<std::string>{"c#1", "d#1"});
    CHECK(def.idempotency_keys.front() == "interrupted:c");
    CHECK(resumed.data.trail == std::vector<std::string>{"a", "b", "c", "d"});  // data survived the restart
}

TEST_CASE("a saga past its deadline is compensated", "[saga][deadline]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    def.plans["b"].actions = {Act::hang};
    SagaOptions options = fast_options();
    options.defaults.timeout = 10s;
    Runner runner(def, store, options);
    auto out = run(ioc, [&] { return runner.run(TestData{}, {.timeout = 60ms}); }, 10s);
    CHECK(out.status == SagaStatus::compensated);
    CHECK(out.failure_kind == FailureKind::deadline);
    CHECK(out.failed_step == "b");
    CHECK(def.compensation_calls() == std::vector<std::string>{"~a#1"});
    CHECK(fold_saga(events_of(store, out.saga_id)).deadline.has_value());
}

TEST_CASE("with compensate_uncertain, a step that timed out is compensated too; a rejected one never",
          "[saga][compensation]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    def.plans["c"].actions = {Act::hang};
    SagaOptions options = fast_options(1);
    options.steps["c"] = options.defaults;
    options.steps["c"].timeout = 30ms;
    options.steps["c"].compensate_uncertain = true;
    Runner runner(def, store, options);
    auto out = run(ioc, [&] { return runner.run(TestData{}); }, 10s);
    CHECK(out.status == SagaStatus::compensated);
    CHECK(def.compensation_calls() == std::vector<std::string>{"~c#1", "~b#1", "~a#1"});
    auto state = fold_saga(events_of(store, out.saga_id));
    CHECK(state.completed == std::vector<std::string>{"a", "b"});
    CHECK(state.compensable == std::vector<std::string>{"a", "b", "c"});

    def.calls.clear();
    def.plans["c"].actions = {Act::reject};
    auto rejected = run(ioc, [&] { return runner.run(TestData{}); }, 10s);
    CHECK(rejected.status == SagaStatus::compensated);
    CHECK(def.compensation_calls() == std::vector<std::string>{"~b#1", "~a#1"});
}

TEST_CASE("a failed attempt's changes to the saga data are undone before the next attempt", "[saga][retry]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    def.plans["b"].actions = {Act::dirty_fail, Act::ok};
    Runner runner(def, store, fast_options());
    auto out = run(ioc, [&] { return runner.run(TestData{}); });
    CHECK(out.status == SagaStatus::completed);
    CHECK(out.data.trail == std::vector<std::string>{"a", "b", "c", "d"});
    CHECK(out.data.value == 4);
}

TEST_CASE("a step whose dependency is unavailable is tried again until it answers, never using up its attempts",
          "[saga][outage]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    def.unavailable_tries["b"] = 12;  // far more than its 2 attempts
    def.plans["c"].actions = {Act::fail, Act::ok};
    def.unavailable_tries["c"] = 3;   // then its first real attempt fails, and the second succeeds
    SagaOptions options = fast_options(2);
    options.outage_backoff = RetryPolicy{1, 1ms, 2.0, 5ms, 0.0};
    Runner runner(def, store, options);
    auto out = run(ioc, [&] { return runner.run(TestData{}); });
    CHECK(out.status == SagaStatus::completed);
    CHECK(std::count(def.calls.begin(), def.calls.end(), "b#1") == 13);
    CHECK(std::count(def.calls.begin(), def.calls.end(), "b#2") == 0);
    CHECK(std::count(def.calls.begin(), def.calls.end(), "c#1") == 4);
    CHECK(std::count(def.calls.begin(), def.calls.end(), "c#2") == 1);
    // One StepStarted per attempt; each outage recorded once, never final.
    std::vector<std::string> started;
    for (const auto& e : events_of(store, out.saga_id, saga_event::step_started))
        started.push_back(e.event.payload.at("step").get<std::string>() + "#" + e.event.payload.at("attempt").dump());
    CHECK(started == std::vector<std::string>{"a#1", "b#1", "c#1", "c#2", "d#1"});
    auto failed = events_of(store, out.saga_id, saga_event::step_failed);
    REQUIRE(failed.size() == 3);
    CHECK(failed[0].event.payload.at("step") == "b");
    CHECK(failed[0].event.payload.at("kind") == "unavailable");
    CHECK(failed[0].event.payload.at("final") == false);
    CHECK(failed[1].event.payload.at("step") == "c");
    CHECK(failed[1].event.payload.at("kind") == "unavailable");
    CHECK(failed[2].event.payload.at("kind") == "transient");
}

TEST_CASE("a compensation whose dependency is unavailable is tried again until it answers", "[saga][outage]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    def.plans["c"].actions = {Act::reject};
    def.unavailable_tries["~a"] = 8;  // its compensation has 1 attempt
    SagaOptions options = fast_options(3, 1);
    options.outage_backoff = RetryPolicy{1, 1ms, 2.0, 5ms, 0.0};
    Runner runner(def, store, options);
    auto out = run(ioc, [&] { return runner.run(TestData{}); });
    CHECK(out.status == SagaStatus::compensated);
    CHECK(def.compensation_calls().size() == 1 + 9);
    CHECK(events_of(store, out.saga_id, saga_event::step_compensating).size() == 2);  // ~b, ~a: once each
    auto failed = events_of(store, out.saga_id, saga_event::compensation_failed);
    REQUIRE(failed.size() == 1);
    CHECK(failed[0].event.payload.at("kind") == "unavailable");
    CHECK(failed[0].event.payload.at("final") == false);
}

TEST_CASE("a step waiting out an outage still honours the saga's deadline and a shutdown", "[saga][outage]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    def.unavailable_tries["b"] = 1000000;
    SagaOptions options = fast_options();
    options.outage_backoff = RetryPolicy{1, 5ms, 2.0, 20ms, 0.0};
    Runner runner(def, store, options);
    auto out = run(ioc, [&] { return runner.run(TestData{}, {.timeout = 150ms}); }, 10s);
    CHECK(out.status == SagaStatus::compensated);
    CHECK(out.failure_kind == FailureKind::deadline);
    CHECK(out.failed_step == "b");
    CHECK(def.compensation_calls() == std::vector<std::string>{"~a#1"});

    ScriptedSaga def2;
    def2.unavailable_tries["b"] = 1000000;
    Runner runner2(def2, store, options);
    auto [error, outcome] = run(ioc, [&] {
        return run_while(runner2, RunOptions{}, [&]() -> awaitable<void> {
            co_await sleep_for(60ms);
            runner2.shutdown();
        });
    }, 10s);
    REQUIRE(error);
    CHECK_THROWS_WITH(std::rethrow_exception(error), Catch::Contains("interrupted by shutdown"));
    CHECK(def2.compensation_calls().empty());
}
