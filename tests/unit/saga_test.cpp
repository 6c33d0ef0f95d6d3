// The saga engine: forward, compensation in reverse order, recorded events.
#include "support/async.hpp"
#include "support/scripted_saga.hpp"

#include <boong/saga_runner.hpp>
#include <boong/log.hpp>
#include <boong/memory/store.hpp>

#include <catch2/catch.hpp>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/ringbuffer_sink.h>

#include <sstream>

using namespace boong;
using namespace boong::test;
using boost::asio::awaitable;

namespace {

std::vector<std::string> types_of(const std::vector<RecordedEvent>& events) {
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e.event.type);
    return out;
}

std::vector<std::string> steps_with_type(const std::vector<RecordedEvent>& events, std::string_view type) {
    std::vector<std::string> out;
    for (const auto& e : events) {
        if (e.event.type == type) out.push_back(e.event.payload.at("step").get<std::string>());
    }
    return out;
}

}  // namespace

TEST_CASE("a saga whose steps all succeed completes and records every transition", "[saga]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    SagaRunner<FourSteps, MemoryEventStore> runner(def, store, fast_options());

    auto out = run(ioc, [&] { return runner.run(TestData{}, {.correlation_id = "order-42"}); });
    CHECK(out.status == SagaStatus::completed);
    CHECK(out.failure_kind == FailureKind::none);
    CHECK(out.data.value == 4);
    CHECK(out.data.trail == std::vector<std::string>{"a", "b", "c", "d"});
    CHECK(def.calls == std::vector<std::string>{"a#1", "b#1", "c#1", "d#1"});
    CHECK(def.idempotency_keys.front() == out.saga_id + ":a");
    CHECK(runner.running() == 0);

    auto events = store.read_stream(saga_stream(out.saga_id), 1, 1000);
    CHECK(types_of(events) == std::vector<std::string>{"SagaStarted", "StepStarted", "StepCompleted", "StepStarted",
                                                       "StepCompleted", "StepStarted", "StepCompleted",
                                                       "StepStarted", "StepCompleted", "SagaCompleted"});
    CHECK(out.version == static_cast<std::int64_t>(events.size()));
    for (std::size_t i = 0; i < events.size(); ++i) {
        const auto& e = events[i];
        CHECK(is_uuid(e.event.event_id));
        CHECK(e.event.schema_version == 1);
        CHECK(e.event.metadata.correlation_id == "order-42");
        CHECK(e.event.metadata.timestamp != Clock::time_point{});
        // Each transition is caused by the one before it.
        if (i > 0) CHECK(e.event.metadata.causation_id == events[i - 1].event.event_id);
    }
    CHECK(events.front().event.payload.at("saga_type") == "scripted");
    // The data as each step left it travels with the step's completion.
    CHECK(events[6].event.payload.at("data").at("value") == 3);

    const SagaState state = fold_saga(events);
    CHECK(state.phase == SagaPhase::completed);
    CHECK(state.completed == std::vector<std::string>{"a", "b", "c", "d"});
}

TEST_CASE("a failure at step k compensates steps k-1..1 in reverse order, once each", "[saga][compensation]") {
    const std::vector<std::string> names{"a", "b", "c", "d"};
    for (std::size_t k = 0; k < names.size(); ++k) {
        DYNAMIC_SECTION("failure at step " << names[k]) {
            boost::asio::io_context ioc;
            MemoryEventStore store(ioc.get_executor());
            ScriptedSaga def;
            def.plans[names[k]].actions = {Act::fail};
            SagaRunner<FourSteps, MemoryEventStore> runner(def, store, fast_options());

            auto out = run(ioc, [&] { return runner.run(TestData{}); });
            CHECK(out.status == SagaStatus::compensated);
            CHECK(out.failed_step == names[k]);
            CHECK(out.failure_kind == FailureKind::transient);
            CHECK(out.error == names[k] + " failed (transient)");

            std::vector<std::string> expected_comp;
            std::vector<std::string> expected_steps;
            for (std::size_t j = k; j-- > 0;) {
                expected_comp.push_back("~" + names[j] + "#1");
                expected_steps.push_back(names[j]);
            }
            CHECK(def.compensation_calls() == expected_comp);
            CHECK(out.compensated_steps == expected_steps);

            auto events = store.read_stream(saga_stream(out.saga_id), 1, 1000);
            CHECK(steps_with_type(events, saga_event::step_compensated) == expected_steps);
            // The failing step was attempted 3 times (the default), each failure recorded.
            CHECK(steps_with_type(events, saga_event::step_failed) ==
                  std::vector<std::string>(3, names[k]));
            CHECK(types_of(events).back() == "SagaCompensated");
            const SagaState state = fold_saga(events);
            CHECK(state.phase == SagaPhase::compensated);
            CHECK(state.failed_step == names[k]);
        }
    }
}

TEST_CASE("a step without compensation is skipped when unwinding", "[saga][compensation]") {
    using Saga3 = Saga<Step<"a", &Steps::a, &Steps::undo_a>, Step<"b", &Steps::b>, Step<"c", &Steps::c>>;
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    def.plans["c"].actions = {Act::reject};
    SagaRunner<Saga3, MemoryEventStore> runner(def, store, fast_options());
    auto out = run(ioc, [&] { return runner.run(TestData{}); });
    CHECK(out.status == SagaStatus::compensated);
    CHECK(def.compensation_calls() == std::vector<std::string>{"~a#1"});
    CHECK(out.compensated_steps == std::vector<std::string>{"a"});
}

TEST_CASE("a saga id can be given, and reusing it is a conflict", "[saga]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    SagaRunner<FourSteps, MemoryEventStore> runner(def, store, fast_options());
    auto out = run(ioc, [&] { return runner.run(TestData{}, {.saga_id = "order-7"}); });
    CHECK(out.saga_id == "order-7");
    CHECK(store.stream_version("saga-order-7") == out.version);
    REQUIRE_THROWS_AS(run(ioc, [&] { return runner.run(TestData{}, {.saga_id = "order-7"}); }), ConcurrencyConflict);
    // Nothing of the second run reached the store or the steps.
    CHECK(store.stream_version("saga-order-7") == out.version);
    CHECK(def.calls.size() == 4);
}

TEST_CASE("runner options are validated", "[saga][config]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    SagaOptions bad = fast_options();
    bad.steps["no_such_step"] = StepPolicy{};
    REQUIRE_THROWS_WITH((SagaRunner<FourSteps, MemoryEventStore>(def, store, bad)),
                        Catch::Contains("no_such_step"));
    SagaOptions zero = fast_options();
    zero.defaults.retry.attempts = 0;
    REQUIRE_THROWS_AS((SagaRunner<FourSteps, MemoryEventStore>(def, store, zero)), Error);
}

TEST_CASE("a declined saga (a Rejection) logs one line at info; a fault logs warnings", "[saga][logs]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(100);
    auto logger = std::make_shared<spdlog::logger>("saga-logs", sink);
    logger->set_level(spdlog::level::trace);
    RunnerOptions options;
    options.logger = logger;
    const auto count = [&](spdlog::level::level_enum level) {
        std::size_t n = 0;
        for (const auto& line : sink->last_raw()) n += line.level == level ? 1 : 0;
        return n;
    };
    ScriptedSaga declined;
    declined.plans["b"].actions = {Act::reject};
    SagaRunner<FourSteps, MemoryEventStore> runner(declined, store, fast_options(), options);
    CHECK(run_until_done(ioc, [&] { return runner.run(TestData{}); }).status == SagaStatus::compensated);
    CHECK(count(spdlog::level::info) == 1);
    CHECK(count(spdlog::level::warn) == 0);
    CHECK(count(spdlog::level::err) == 0);

    // A fault that outlives its retries is worth warnings.
    sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(100);
    options.logger = std::make_shared<spdlog::logger>("saga-logs", sink);
    options.logger->set_level(spdlog::level::trace);
    ScriptedSaga broken;
    broken.plans["b"].actions = {Act::fail, Act::fail, Act::fail};
    SagaRunner<FourSteps, MemoryEventStore> faulty(broken, store, fast_options(), options);
    CHECK(run_until_done(ioc, [&] { return faulty.run(TestData{}); }).status == SagaStatus::compensated);
    CHECK(count(spdlog::level::warn) == 4);  // three attempts, then the compensation starting
    CHECK(count(spdlog::level::info) == 1);  // compensated
}

TEST_CASE("JSON lines: each record one object, saga id, step and correlation id as fields", "[saga][logs]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    std::ostringstream out;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    auto logger = std::make_shared<spdlog::logger>("orders", sink);
    logger->set_formatter(std::make_unique<JsonLinesFormatter>());
    logger->set_level(spdlog::level::info);
    RunnerOptions options;
    options.logger = logger;
    ScriptedSaga declined;
    declined.plans["b"].actions = {Act::reject};
    SagaRunner<FourSteps, MemoryEventStore> runner(declined, store, fast_options(), options);
    RunOptions run;
    run.saga_id = "s-json";
    run.correlation_id = "order-42";
    CHECK(run_until_done(ioc, [&] { return runner.run(TestData{}, run); }).status == SagaStatus::compensated);
    logger->info("a line \xff not from a saga");
    std::istringstream lines(out.str());
    std::vector<json> records;
    for (std::string line; std::getline(lines, line);) records.push_back(json::parse(line));
    REQUIRE(records.size() == 2);
    CHECK(records[0].at("level") == "info");
    CHECK(records[0].at("logger") == "orders");
    CHECK(records[0].at("saga_id") == "s-json");
    CHECK(records[0].at("step") == "b");
    CHECK(records[0].at("correlation_id") == "order-42");
    CHECK(records[0].at("message") == "compensating after rejected failure: b rejected");
    CHECK(records[0].at("time").get<std::string>().ends_with("Z"));
    // Not from saga code: the message as it is (invalid UTF-8 replaced, never dropped).
    CHECK_FALSE(records[1].contains("saga_id"));
    CHECK(records[1].at("message") == "a line \xef\xbf\xbd not from a saga");
}
