// Definition versions without I/O: what a definition's shape and fingerprint
// are, the rule that says whether a definition may run a recorded saga, the
// fold of SagaStarted's definition and of SagaBlocked, and a runner refusing
// to resume a saga that started on another definition.
#include "support/async.hpp"
#include "support/events.hpp"
#include "support/scripted_saga.hpp"

#include <boong/memory/store.hpp>
#include <boong/saga_runner.hpp>

#include <catch2/catch.hpp>

using namespace boong;
using namespace boong::test;

namespace {

using Steps = ScriptedSaga;
using Grouped = Saga<Step<"a", &Steps::a, &Steps::undo_a>,
                     Parallel<Step<"b", &Steps::b, &Steps::undo_b>, Step<"c", &Steps::c>>, Step<"d", &Steps::d>>;
// The same steps, the group split: another definition.
using Split = Saga<Step<"a", &Steps::a, &Steps::undo_a>, Step<"b", &Steps::b, &Steps::undo_b>, Step<"c", &Steps::c>,
                   Step<"d", &Steps::d>>;
// The same steps, b's compensation dropped.
using NoUndoB = Saga<Step<"a", &Steps::a, &Steps::undo_a>, Parallel<Step<"b", &Steps::b>, Step<"c", &Steps::c>>,
                     Step<"d", &Steps::d>>;

class Versioned {
public:
    static constexpr std::string_view name = "versioned";
    static constexpr std::int64_t version = 7;
    boost::asio::awaitable<void> a(StepContext<TestData>&) { co_return; }
};
using Seven = Saga<Step<"a", &Versioned::a>>;

}  // namespace

TEST_CASE("a definition's shape names its steps in order, its groups and its compensations", "[saga][versioning]") {
    CHECK(Grouped::shape() == "a+, [b+ | c], d");
    CHECK(Split::shape() == "a+, b+, c, d");
    CHECK(Grouped::version == 1);  // a class without a version tag is version 1
    CHECK(Seven::version == 7);
    // The fingerprint is 16 hex digits of the shape, stable across builds:
    // changing the order, the grouping or a compensation changes it.
    CHECK(Grouped::fingerprint().size() == 16);
    CHECK(Grouped::fingerprint() == detail::saga_fingerprint("a+, [b+ | c], d"));
    CHECK(detail::saga_fingerprint("") == "cbf29ce484222325");  // FNV-1a's offset basis: the hash is FNV-1a 64
    CHECK(Grouped::fingerprint() != Split::fingerprint());
    CHECK(Grouped::fingerprint() != NoUndoB::fingerprint());
}

TEST_CASE("a definition runs a recorded saga only when versions match, and fingerprints when both are known",
          "[saga][versioning]") {
    const SagaDefinition v1{1, "00000000000000aa", "a+, b"};
    CHECK_FALSE(definition_mismatch(v1, v1));
    // Recorded before definitions had versions: version 1, any steps.
    CHECK_FALSE(definition_mismatch(SagaDefinition{}, v1));
    const auto other_version = definition_mismatch(v1, SagaDefinition{2, "00000000000000aa", "a+, b"});
    REQUIRE(other_version);
    CHECK(*other_version == "it started on version 1, not version 2");
    const auto edited = definition_mismatch(v1, SagaDefinition{1, "00000000000000bb", "a+, x, b"});
    REQUIRE(edited);
    CHECK_THAT(*edited, Catch::Contains("steps 'a+, b'") && Catch::Contains("has steps 'a+, x, b'") &&
                            Catch::Contains("changed without a new version"));
}

TEST_CASE("the fold reads SagaStarted's definition and SagaBlocked's reason", "[saga][versioning]") {
    SagaState s;
    s.apply(recorded_saga_event("v", 1, "SagaStarted",
                     json{{"saga_type", "t"},
                          {"data", json::object()},
                          {"definition", {{"version", 3}, {"fingerprint", "0123456789abcdef"}, {"steps", "a+"}}}}));
    CHECK(s.definition.version == 3);
    CHECK(s.definition.fingerprint == "0123456789abcdef");
    CHECK(s.definition.shape == "a+");
    s.apply(recorded_saga_event("v", 2, "CompensationStarted", json{{"failed_step", "a"}}));
    s.apply(recorded_saga_event("v", 3, "SagaBlocked", json{{"reason", "nobody serves it"}, {"phase", "compensating"}}));
    CHECK(s.phase == SagaPhase::blocked);
    CHECK(s.blocked_from == SagaPhase::compensating);
    CHECK(s.blocked_reason == "nobody serves it");
    CHECK_FALSE(s.is_terminal());
    s.apply(recorded_saga_event("v", 4, "SagaResumed", json{{"phase", "compensating"}}));
    CHECK(s.phase == SagaPhase::compensating);
    CHECK(s.blocked_reason.empty());

    // Without a definition: version 1, nothing else known.
    SagaState old;
    old.apply(recorded_saga_event("o", 1, "SagaStarted", json{{"saga_type", "t"}, {"data", json::object()}}));
    CHECK(old.definition.version == 1);
    CHECK(old.definition.fingerprint.empty());
    // A terminal saga cannot be blocked; a definition version below 1 is unreadable.
    old.apply(recorded_saga_event("o", 2, "SagaCompleted", json::object()));
    CHECK_THROWS_WITH(old.apply(recorded_saga_event("o", 3, "SagaBlocked", json{{"reason", "x"}})),
                      Catch::Contains("a completed saga cannot be blocked"));
    SagaState bad;
    CHECK_THROWS_WITH(bad.apply(recorded_saga_event("b", 1, "SagaStarted",
                                         json{{"saga_type", "t"}, {"data", json::object()},
                                              {"definition", {{"version", 0}}}})),
                      Catch::Contains("definition version must be >= 1"));
}

TEST_CASE("a runner records its definition, and refuses to resume a saga that started on another", "[saga][versioning]") {
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    def.plans["b"].actions = {Act::hang};
    SagaRunner<Grouped, MemoryEventStore> grouped(def, store, fast_options());
    RunOptions o;
    o.saga_id = "pinned";
    bool ended = false;
    grouped.async_run(TestData{}, o, [&](std::exception_ptr, auto) { ended = true; });
    REQUIRE(run_until(
        ioc, [&] { return std::find(def.calls.begin(), def.calls.end(), "b#1") != def.calls.end(); },
        std::chrono::seconds(5)));
    grouped.shutdown();
    REQUIRE(run_until(ioc, [&] { return ended; }, std::chrono::seconds(5)));
    const auto events = store.read_stream(saga_stream("pinned"), 1, 1);
    REQUIRE(events.size() == 1);
    CHECK(events[0].event.payload.at("definition") ==
          json({{"version", 1}, {"fingerprint", Grouped::fingerprint()}, {"steps", "a+, [b+ | c], d"}}));

    // The same saga type with the group split: the saga is left as it is.
    SagaRunner<Split, MemoryEventStore> split(def, store, fast_options());
    const auto before = store.read_stream(saga_stream("pinned"), 1, 1000).size();
    try {
        run_until_done(ioc, [&] { return split.resume("pinned"); });
        FAIL("resumed on another definition");
    } catch (const Error& e) {
        CHECK(e.code() == errc::definition_mismatch);
        CHECK_THAT(e.what(), Catch::Contains("steps 'a+, [b+ | c], d'") && Catch::Contains("has steps 'a+, b+, c, d'"));
    }
    CHECK(store.read_stream(saga_stream("pinned"), 1, 1000).size() == before);
    // Its own definition goes on.
    def.plans["b"].actions = {Act::ok};
    auto outcome = run_until_done(ioc, [&] { return grouped.resume("pinned"); });
    CHECK(outcome.status == SagaStatus::completed);
}
