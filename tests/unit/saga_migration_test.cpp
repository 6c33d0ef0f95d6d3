// Migrations between definition versions without I/O: the per-saga decision
// (plan_migration) for each kind of change, and the fold of SagaMigrated
// (renamed steps keep their idempotency keys, skipped steps count as passed).
#include "support/events.hpp"

#include <boong/saga_migration.hpp>

#include <catch2/catch.hpp>

using namespace boong;
using boong::test::recorded_saga_event;

namespace {

struct FlowData {
    int n = 0;
};
void to_json(json& j, const FlowData& d) { j = json{{"n", d.n}}; }
void from_json(const json& j, FlowData& d) { d.n = j.at("n").get<int>(); }

template <std::int64_t V>
class Flow {
public:
    static constexpr std::string_view name = "flow";
    static constexpr std::int64_t version = V;
    boost::asio::awaitable<void> step(StepContext<FlowData>&) { co_return; }
    boost::asio::awaitable<void> undo(StepContext<FlowData>&) { co_return; }
    boost::asio::awaitable<void> other(StepContext<FlowData>&) { co_return; }
};

template <detail::fixed_string N, std::int64_t V>
using S = Step<N, &Flow<V>::step, &Flow<V>::undo>;

using V1 = Saga<S<"a", 1>, S<"b", 1>, S<"c", 1>>;
using Renamed = SagaMigration<V1, Saga<S<"a", 2>, S<"b2", 2>, S<"c", 2>>, Rename<"b", "b2">>;
using InsertedSkip = SagaMigration<V1, Saga<S<"a", 2>, S<"x", 2>, S<"b", 2>, S<"c", 2>>, SkipIfPassed<"x">>;
using InsertedRun = SagaMigration<V1, Saga<S<"a", 2>, S<"x", 2>, S<"b", 2>, S<"c", 2>>, RunIfPassed<"x">>;
using Swapped = SagaMigration<V1, Saga<S<"a", 2>, S<"c", 2>, S<"b", 2>>>;
using RemovedB = SagaMigration<V1, Saga<S<"a", 2>, S<"c", 2>>, Remove<"b">>;
// b loses its compensation in version 2 (allowed only because b goes).
using RemovedPlain =
    SagaMigration<Saga<S<"a", 1>, Step<"b", &Flow<1>::other>>, Saga<S<"a", 2>>, Remove<"b">>;
// Grouped: b and x run side by side in version 2.
using Grouped = SagaMigration<V1, Saga<S<"a", 2>, Parallel<S<"b", 2>, S<"x", 2>>, S<"c", 2>>, SkipIfPassed<"x">>;

// A saga of version 1 as its events would fold: blocked where it stood.
SagaState saga_of(std::vector<std::string> completed, SagaPhase from = SagaPhase::running,
                  std::vector<std::string> compensated = {}) {
    SagaState s;
    s.saga_id = "s1";
    s.saga_type = "flow";
    s.definition = SagaDefinition{1, V1::fingerprint(), V1::shape()};
    s.phase = SagaPhase::blocked;
    s.blocked_from = from;
    s.completed = completed;
    s.compensable = std::move(completed);
    s.compensated = std::move(compensated);
    s.version = 5;
    return s;
}

}  // namespace

TEST_CASE("a migration's rules are the ones declared, with both definitions", "[saga][versioning][migration]") {
    const auto& r = Renamed::rules();
    CHECK(r.saga_type == "flow");
    CHECK(r.from.version == 1);
    CHECK(r.to.version == 2);
    CHECK(r.from.fingerprint == V1::fingerprint());
    CHECK(r.to.shape == "a+, b2+, c+");
    REQUIRE(r.renamed.size() == 1);
    CHECK(r.renamed[0] == std::pair<std::string_view, std::string_view>{"b", "b2"});
    CHECK(InsertedSkip::rules().skip_if_passed == std::vector<std::string_view>{"x"});
    CHECK(InsertedRun::rules().run_if_passed == std::vector<std::string_view>{"x"});
    CHECK(RemovedB::rules().removed == std::vector<std::string_view>{"b"});
}

TEST_CASE("a renamed step: every saga moves, and the rename is recorded for its keys", "[saga][versioning][migration]") {
    for (const auto& done : {std::vector<std::string>{}, {"a"}, {"a", "b"}}) {
        const auto plan = Renamed::plan(saga_of(done));
        CHECK(plan.allowed);
        CHECK(plan.renamed == std::vector<std::pair<std::string, std::string>>{{"b", "b2"}});
    }
}

TEST_CASE("an inserted step: a saga past its place skips it or runs it late, as declared", "[saga][versioning][migration]") {
    auto plan = InsertedSkip::plan(saga_of({"a", "b"}));
    CHECK(plan.allowed);
    CHECK(plan.skipped == std::vector<std::string>{"x"});
    CHECK(plan.run_late.empty());
    plan = InsertedRun::plan(saga_of({"a", "b"}));
    CHECK(plan.allowed);
    CHECK(plan.run_late == std::vector<std::string>{"x"});
    CHECK(plan.skipped.empty());
    // Not there yet: it runs x in its place, nothing to declare.
    plan = InsertedSkip::plan(saga_of({"a"}));
    CHECK(plan.allowed);
    CHECK(plan.skipped.empty());
    // Unwinding: new steps are not its concern.
    plan = InsertedSkip::plan(saga_of({"a", "b"}, SagaPhase::compensating));
    CHECK(plan.allowed);
    CHECK(plan.skipped.empty());
    // A new step beside a completed one in a parallel group runs with its group.
    plan = Grouped::plan(saga_of({"a", "b"}));
    CHECK(plan.allowed);
    CHECK(plan.skipped.empty());
    plan = Grouped::plan(saga_of({"a", "b", "c"}));
    CHECK(plan.allowed);
    CHECK(plan.skipped == std::vector<std::string>{"x"});
}

TEST_CASE("swapped steps: a saga whose progress is not a prefix of the new order is refused",
          "[saga][versioning][migration]") {
    const auto refused = Swapped::plan(saga_of({"a", "b"}));
    CHECK_FALSE(refused.allowed);
    CHECK(refused.refusal == "it completed 'b' but not 'c', which version 2 runs before it");
    CHECK(Swapped::plan(saga_of({"a"})).allowed);
    // b begun, not recorded complete: its effect may have happened, and c
    // could fail before anything undid it.
    SagaState begun = saga_of({"a"});
    begun.begun = {"b"};
    CHECK(Swapped::plan(begun).refusal == "it began 'b' but not 'c', which version 2 runs before it");
    CHECK(Renamed::plan(begun).allowed);  // b2 runs next, with b's key
    CHECK(Swapped::plan(saga_of({})).allowed);
    // Unwinding in the order it recorded: the order of the steps does not matter.
    CHECK(Swapped::plan(saga_of({"a", "b"}, SagaPhase::compensating)).allowed);
}

TEST_CASE("a removed step: refused while its compensation may still be owed", "[saga][versioning][migration]") {
    // Running with b done: if it failed later, nothing could undo b.
    auto plan = RemovedB::plan(saga_of({"a", "b"}));
    CHECK_FALSE(plan.allowed);
    CHECK(plan.refusal == "it completed 'b', whose compensation version 2 no longer has (it may still have to be undone)");
    CHECK_FALSE(RemovedB::plan(saga_of({"a", "b"}, SagaPhase::compensating)).allowed);
    // b already compensated: nothing owed.
    plan = RemovedB::plan(saga_of({"a", "b"}, SagaPhase::compensating, {"b"}));
    CHECK(plan.allowed);
    CHECK(RemovedB::plan(saga_of({"a"})).allowed);
    SagaState begun = saga_of({"a"});
    begun.begun = {"b"};
    CHECK(RemovedB::plan(begun).refusal == "it began 'b', which version 2 no longer has (its effect may have happened)");
    // A removed step without a compensation: its effect stays, and the plan says so.
    SagaState plain = saga_of({"a", "b"});
    plain.definition = SagaDefinition{1, RemovedPlain::from_type::fingerprint(), RemovedPlain::from_type::shape()};
    plan = RemovedPlain::plan(plain);
    CHECK(plan.allowed);
    CHECK(plan.dropped == std::vector<std::string>{"b"});
}

TEST_CASE("only a blocked or failed saga of the migration's first version moves", "[saga][versioning][migration]") {
    SagaState running = saga_of({"a"});
    running.phase = SagaPhase::running;
    CHECK_THAT(Renamed::plan(running).refusal, Catch::StartsWith("it is running: only a blocked or failed saga"));
    SagaState failed = saga_of({"a", "b"});
    failed.phase = SagaPhase::failed;
    CHECK(Renamed::plan(failed).allowed);
    SagaState later = saga_of({"a"});
    later.definition = Renamed::rules().to;
    CHECK_THAT(Renamed::plan(later).refusal,
               Catch::Contains("this migration starts from version 1: it started on version 2"));
    SagaState edited = saga_of({"a"});
    edited.definition.fingerprint = "0000000000000000";
    CHECK_THAT(Renamed::plan(edited).refusal, Catch::Contains("changed without a new version"));
    SagaState other = saga_of({"a"});
    other.saga_type = "orders";
    CHECK(Renamed::plan(other).refusal == "it is a saga of type 'orders', not 'flow'");
    SagaState unknown = saga_of({"a", "zz"});
    CHECK(Renamed::plan(unknown).refusal == "it recorded step 'zz', which version 1 does not have");
}

TEST_CASE("the fold of SagaMigrated: new definition, renamed steps keeping their keys, skipped steps passed",
          "[saga][versioning][migration]") {
    SagaState s;
    s.apply(recorded_saga_event("s1", 1, saga_event::started,
                     json{{"saga_type", "flow"}, {"data", json::object()},
                          {"definition", SagaDefinition{1, V1::fingerprint(), V1::shape()}.to_json()}}));
    s.apply(recorded_saga_event("s1", 2, saga_event::step_completed, json{{"step", "a"}, {"data", json::object()}}));
    s.apply(recorded_saga_event("s1", 3, saga_event::step_started, json{{"step", "b"}, {"attempt", 1}}));
    CHECK(s.begun == std::vector<std::string>{"b"});
    s.apply(recorded_saga_event("s1", 4, saga_event::step_completed, json{{"step", "b"}, {"data", json::object()}}));
    CHECK(s.begun.empty());
    s.apply(recorded_saga_event("s1", 5, saga_event::step_started, json{{"step", "c"}, {"attempt", 1}}));
    // Not blocked: the fold refuses it, as a migration never writes it.
    CHECK_THROWS_WITH(s.apply(recorded_saga_event("s1", 6, saga_event::migrated, json{{"to", {{"version", 2}}}})),
                      Catch::Contains("a running saga cannot be migrated"));
    s.apply(recorded_saga_event("s1", 6, saga_event::blocked, json{{"reason", "v1 retired"}, {"needs_operator", true}}));
    CHECK(s.blocked_for_operator);
    s.apply(recorded_saga_event("s1", 7, saga_event::migrated,
                     json{{"to", {{"version", 2}, {"fingerprint", "00000000000000aa"}, {"steps", "a+, x, b2+, c+"}}},
                          {"renamed", json::array({json::array({"b", "b2"}), json::array({"c", "c2"})})},
                          {"skipped", json::array({"x"})},
                          {"by", "alice"},
                          {"reason", "retire v1"}}));
    CHECK(s.phase == SagaPhase::blocked);
    CHECK(s.blocked_from == SagaPhase::running);
    CHECK_FALSE(s.blocked_for_operator);  // whoever serves version 2 takes it
    CHECK(s.definition.version == 2);
    CHECK(s.definition.fingerprint == "00000000000000aa");
    CHECK(s.completed == std::vector<std::string>{"a", "b2", "x"});
    CHECK(s.compensable == std::vector<std::string>{"a", "b2"});  // x was skipped: nothing to undo
    CHECK(s.key_step("b2") == "b");
    CHECK(s.key_step("a") == "a");
    CHECK(s.begun == std::vector<std::string>{"c2"});  // c was begun: c2 goes on with c's key
    CHECK(s.key_step("c2") == "c");
    // A second migration renames it again: the key stays the first name.
    s.apply(recorded_saga_event("s1", 8, saga_event::migrated,
                     json{{"to", {{"version", 3}}}, {"renamed", json::array({json::array({"b2", "b3"})})}}));
    CHECK(s.key_step("b3") == "b");
    CHECK(s.key_step("b2") == "b2");
    CHECK(s.completed == std::vector<std::string>{"a", "b3", "x"});
    // Never back to an earlier version.
    CHECK_THROWS_WITH(s.apply(recorded_saga_event("s1", 9, saga_event::migrated, json{{"to", {{"version", 2}}}})),
                      Catch::Contains("a migration must move to a later version"));
}

TEST_CASE("a migration request says who and why", "[saga][versioning][migration]") {
    MigrationRequest r;
    r.reason = "retire v1";
    CHECK_THROWS_WITH(detail::validate_migration_request(r), Catch::Contains("say who asks"));
    r.by = "alice";
    r.reason.clear();
    CHECK_THROWS_WITH(detail::validate_migration_request(r), Catch::Contains("say why"));
    r.reason = "retire v1";
    r.limit = 0;
    CHECK_THROWS_WITH(detail::validate_migration_request(r), Catch::Contains("limit must be in 1..100000"));
    r.limit = 10;
    CHECK_NOTHROW(detail::validate_migration_request(r));
}
