// Moving in-flight sagas to the next version of their definition, for the
// changes a team wants applied to sagas already under way (docs/versioning.md).
// Serving the old version beside the new one (SagaOrchestrator::serve) needs
// none of this; a migration is for when the old version must go.
//
//   using OrderV1ToV2 = boong::SagaMigration<OrderProcessingV1, OrderProcessingV2,
//       boong::Rename<"reserve", "hold_items">,   // same effect, new name: keeps its idempotency key
//       boong::SkipIfPassed<"check_fraud">,       // new step: a saga already past it goes on without it
//       boong::Remove<"notify">>;                 // gone: refused for a saga that still owes its compensation
//   auto results = co_await boong::migrate_sagas<OrderV1ToV2>(store, index,
//       {.by = "alice", .reason = "retire v1", .dry_run = true});
//
// The compiler checks the mapping: every step of the old version is kept,
// renamed or removed; every step new in the next one says what a saga that
// has passed its place does (SkipIfPassed or RunIfPassed); a step that had a
// compensation keeps one. Each saga is then checked on its own
// (plan_migration): only a blocked or failed saga moves, and only when what
// it completed is a prefix of the next version's order. A moved saga gets a
// SagaMigrated event naming who, why and what changed; an orchestrator that
// serves the next version takes it from there.
#pragma once

#include <boong/detail/fixed_string.hpp>
#include <boong/detail/saga_execution.hpp>
#include <boong/detail/saga_requests.hpp>
#include <boong/error.hpp>
#include <boong/event_store.hpp>
#include <boong/saga.hpp>
#include <boong/saga_index.hpp>
#include <boong/saga_state.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace boong {

// The rules of a migration from version N to version N+1.

// A step of version N is called `To` in N+1 and has the same effect: recorded
// progress moves to the new name, and its idempotency keys keep the old one
// (an effect asked for before the move is recognised after it).
template <detail::fixed_string From, detail::fixed_string To>
struct Rename {};
// A step new in N+1: a saga that has passed its place goes on without it (it
// is recorded as skipped: never run, never compensated).
template <detail::fixed_string Step>
struct SkipIfPassed {};
// A step new in N+1: a saga that has passed its place runs it first, out of
// its place, then goes on.
template <detail::fixed_string Step>
struct RunIfPassed {};
// A step of version N gone from N+1: a saga that completed it and would
// still owe its compensation is refused (nothing could undo it); otherwise
// its effect simply stays.
template <detail::fixed_string Step>
struct Remove {};

// A migration's rules as data, for plan_migration.
struct MigrationRules {
    std::string saga_type;
    SagaDefinition from, to;
    std::vector<StepPlace> from_steps, to_steps;
    std::vector<std::pair<std::string_view, std::string_view>> renamed;  // (old, new)
    std::vector<std::string_view> skip_if_passed, run_if_passed, removed;
};

// What a migration does to one saga, or why it cannot.
struct MigrationPlan {
    bool allowed = false;
    std::string refusal;  // !allowed: why
    // Every rename of the migration (also those of steps the saga never
    // reached: an attempt in flight when it stopped keeps its key).
    std::vector<std::pair<std::string, std::string>> renamed;
    std::vector<std::string> skipped;   // new steps it has passed, recorded as skipped
    std::vector<std::string> run_late;  // new steps it has passed, run before it goes on
    std::vector<std::string> dropped;   // removed steps it completed that owe no compensation

    json to_json() const;
};

// The one decision, without I/O: can `saga` move under `rules`, and how.
MigrationPlan plan_migration(const MigrationRules& rules, const SagaState& saga);

namespace detail {

enum class MigrationRuleKind { rename, skip_if_passed, run_if_passed, remove };

struct MigrationRuleInfo {
    MigrationRuleKind kind{};
    std::string_view step;     // the step it is about (Rename: the old name)
    std::string_view renamed;  // Rename: the new name
};

template <class Rule>
struct migration_rule {
    static constexpr bool valid = false;
    static constexpr MigrationRuleInfo info{};  // (so that only the static_assert speaks)
};
template <fixed_string From, fixed_string To>
struct migration_rule<Rename<From, To>> {
    static constexpr bool valid = true;
    static constexpr MigrationRuleInfo info{MigrationRuleKind::rename, From.view(), To.view()};
};
template <fixed_string S>
struct migration_rule<SkipIfPassed<S>> {
    static constexpr bool valid = true;
    static constexpr MigrationRuleInfo info{MigrationRuleKind::skip_if_passed, S.view(), {}};
};
template <fixed_string S>
struct migration_rule<RunIfPassed<S>> {
    static constexpr bool valid = true;
    static constexpr MigrationRuleInfo info{MigrationRuleKind::run_if_passed, S.view(), {}};
};
template <fixed_string S>
struct migration_rule<Remove<S>> {
    static constexpr bool valid = true;
    static constexpr MigrationRuleInfo info{MigrationRuleKind::remove, S.view(), {}};
};

// Indices, not pointers: GCC under -fsanitize=undefined refuses to compare a
// pointer into a static constexpr object with null in a constant expression.
inline constexpr std::size_t not_found = static_cast<std::size_t>(-1);

template <std::size_t N>
constexpr std::size_t find_place(const std::array<StepPlace, N>& steps, std::string_view name) {
    for (std::size_t i = 0; i < N; ++i) {
        if (steps[i].name == name) return i;
    }
    return not_found;
}

template <std::size_t R>
constexpr std::size_t find_rule(const std::array<MigrationRuleInfo, R>& rules, MigrationRuleKind kind,
                                std::string_view step) {
    for (std::size_t i = 0; i < R; ++i) {
        if (rules[i].kind == kind && rules[i].step == step) return i;
    }
    return not_found;
}

template <std::size_t N>
constexpr bool has_place(const std::array<StepPlace, N>& steps, std::string_view name) {
    return find_place(steps, name) != not_found;
}

template <std::size_t R>
constexpr bool has_rule(const std::array<MigrationRuleInfo, R>& rules, MigrationRuleKind kind, std::string_view step) {
    return find_rule(rules, kind, step) != not_found;
}

// The compile-time checks, one question each (so that each static_assert
// names what is wrong).
template <std::size_t F, std::size_t T, std::size_t R>
struct MigrationCheck {
    std::array<StepPlace, F> from;
    std::array<StepPlace, T> to;
    std::array<MigrationRuleInfo, R> rules;

    constexpr bool renames_known() const {
        for (const auto& r : rules) {
            if (r.kind != MigrationRuleKind::rename) continue;
            if (!has_place(from, r.step) || has_place(to, r.step)) return false;
            if (!has_place(to, r.renamed) || has_place(from, r.renamed)) return false;
        }
        return true;
    }
    constexpr bool removals_known() const {
        for (const auto& r : rules) {
            if (r.kind == MigrationRuleKind::remove && (!has_place(from, r.step) || has_place(to, r.step))) {
                return false;
            }
        }
        return true;
    }
    constexpr bool is_rename_target(std::string_view step) const {
        for (const auto& r : rules) {
            if (r.kind == MigrationRuleKind::rename && r.renamed == step) return true;
        }
        return false;
    }
    constexpr bool additions_known() const {
        for (const auto& r : rules) {
            const bool added = r.kind == MigrationRuleKind::skip_if_passed || r.kind == MigrationRuleKind::run_if_passed;
            if (added && (!has_place(to, r.step) || has_place(from, r.step) || is_rename_target(r.step))) {
                return false;
            }
        }
        return true;
    }
    constexpr bool each_rule_once() const {
        for (std::size_t i = 0; i < R; ++i) {
            for (std::size_t j = i + 1; j < R; ++j) {
                if (rules[i].step == rules[j].step) return false;
                if (rules[i].kind == MigrationRuleKind::rename && rules[j].kind == MigrationRuleKind::rename &&
                    rules[i].renamed == rules[j].renamed) {
                    return false;
                }
            }
        }
        return true;
    }
    // Every step of version N is kept (same name), renamed or removed.
    constexpr bool old_steps_mapped() const {
        for (const auto& s : from) {
            if (!has_place(to, s.name) && !has_rule(rules, MigrationRuleKind::rename, s.name) &&
                !has_rule(rules, MigrationRuleKind::remove, s.name)) {
                return false;
            }
        }
        return true;
    }
    // Every step new in N+1 says what a saga that has passed it does.
    constexpr bool new_steps_declared() const {
        for (const auto& s : to) {
            if (has_place(from, s.name) || is_rename_target(s.name)) continue;
            if (!has_rule(rules, MigrationRuleKind::skip_if_passed, s.name) &&
                !has_rule(rules, MigrationRuleKind::run_if_passed, s.name)) {
                return false;
            }
        }
        return true;
    }
    // A step that had a compensation keeps one, under whatever name.
    constexpr bool compensations_kept() const {
        for (const auto& s : from) {
            if (!s.has_compensation) continue;
            std::string_view next = s.name;
            if (const auto r = find_rule(rules, MigrationRuleKind::rename, s.name); r != not_found) {
                next = rules[r].renamed;
            }
            if (const auto t = find_place(to, next); t != not_found && !to[t].has_compensation) return false;
        }
        return true;
    }
};

}  // namespace detail

// A migration of a saga type from version N (FromSaga) to N+1 (ToSaga).
template <class FromSaga, class ToSaga, class... Rules>
class SagaMigration {
    static_assert(is_saga<FromSaga>::value && is_saga<ToSaga>::value,
                  "boong::SagaMigration<From, To, ...>: From and To must be boong::Saga<...> types");
    static_assert(FromSaga::name == ToSaga::name,
                  "boong::SagaMigration: From and To must be versions of one saga type (their classes declare the "
                  "same `name`)");
    static_assert(std::is_same_v<typename FromSaga::data_type, typename ToSaga::data_type>,
                  "boong::SagaMigration: the versions of a saga type share its data type");
    static_assert(ToSaga::version == FromSaga::version + 1,
                  "boong::SagaMigration: a migration moves sagas from version N to version N+1 (chain them for more)");
    static_assert((detail::migration_rule<Rules>::valid && ...),
                  "boong::SagaMigration: each rule must be boong::Rename<\"old\", \"new\">, boong::SkipIfPassed<\"step\">, "
                  "boong::RunIfPassed<\"step\"> or boong::Remove<\"step\">");

    static constexpr detail::MigrationCheck<FromSaga::step_count, ToSaga::step_count, sizeof...(Rules)> check{
        FromSaga::places, ToSaga::places, {detail::migration_rule<Rules>::info...}};

    static_assert(check.renames_known(),
                  "boong::SagaMigration: Rename<\"old\", \"new\">: \"old\" must be a step of From only and \"new\" a "
                  "step of To only");
    static_assert(check.removals_known(), "boong::SagaMigration: Remove<\"step\">: a step of From that To does not have");
    static_assert(check.additions_known(),
                  "boong::SagaMigration: SkipIfPassed/RunIfPassed<\"step\">: a step new in To (not in From, not a "
                  "rename's new name)");
    static_assert(check.each_rule_once(), "boong::SagaMigration: a step is named by one rule at most");
    static_assert(check.old_steps_mapped(),
                  "boong::SagaMigration: every step of From must be in To (same name), renamed (Rename) or removed "
                  "(Remove)");
    static_assert(check.new_steps_declared(),
                  "boong::SagaMigration: every step new in To must say what a saga that has passed its place does: "
                  "SkipIfPassed<\"step\"> or RunIfPassed<\"step\">");
    static_assert(check.compensations_kept(),
                  "boong::SagaMigration: a step of From that has a compensation must keep one in To (sagas that "
                  "completed it may still have to undo it)");

public:
    using from_type = FromSaga;
    using to_type = ToSaga;

    static const MigrationRules& rules() {
        static const MigrationRules r = [] {
            MigrationRules out;
            out.saga_type = std::string(FromSaga::name);
            out.from = SagaDefinition{FromSaga::version, FromSaga::fingerprint(), FromSaga::shape()};
            out.to = SagaDefinition{ToSaga::version, ToSaga::fingerprint(), ToSaga::shape()};
            out.from_steps.assign(FromSaga::places.begin(), FromSaga::places.end());
            out.to_steps.assign(ToSaga::places.begin(), ToSaga::places.end());
            for (const auto& rule : check.rules) {
                switch (rule.kind) {
                    case detail::MigrationRuleKind::rename: out.renamed.emplace_back(rule.step, rule.renamed); break;
                    case detail::MigrationRuleKind::skip_if_passed: out.skip_if_passed.push_back(rule.step); break;
                    case detail::MigrationRuleKind::run_if_passed: out.run_if_passed.push_back(rule.step); break;
                    case detail::MigrationRuleKind::remove: out.removed.push_back(rule.step); break;
                }
            }
            return out;
        }();
        return r;
    }

    static MigrationPlan plan(const SagaState& saga) { return plan_migration(rules(), saga); }
};

template <class T>
struct is_saga_migration : std::false_type {};
template <class F, class T, class... R>
struct is_saga_migration<SagaMigration<F, T, R...>> : std::true_type {};

// Which sagas to migrate, and the audit trail.
struct MigrationRequest {
    // The sagas to move; empty: every blocked or failed saga of the
    // migration's first version (up to `limit`).
    std::vector<std::string> saga_ids{};
    std::string by{};      // who asks (required): recorded in each SagaMigrated
    std::string reason{};  // why (required): recorded too
    bool dry_run = false;  // only say what would be done; append nothing
    std::size_t limit = 10000;  // 1..100000 sagas looked at, when saga_ids is empty
};

enum class MigrationOutcome {
    migrated,       // SagaMigrated appended
    would_migrate,  // dry run: it would be
    refused,        // plan_migration said no (the reason says why); left as it was
    conflict,       // it moved meanwhile (another owner, another migration); left to that one
};

std::string_view to_string(MigrationOutcome o) noexcept;

struct SagaMigrationResult {
    std::string saga_id;
    MigrationOutcome outcome = MigrationOutcome::refused;
    std::string reason;  // refused or conflict: why
    MigrationPlan plan;
};

namespace detail {

// The SagaMigrated event for `saga` under `plan`.
EventData migrated_event(const MigrationRules& rules, const SagaState& saga, const MigrationPlan& plan,
                         const MigrationRequest& request, IdGenerator& ids);
void validate_migration_request(const MigrationRequest& request);

}  // namespace detail

// Applies (or, with dry_run, plans) a migration: one result per saga looked
// at, in order. Each move is one append at the saga's version, so it cannot
// race an orchestrator or another migration (conflict). Throws for an
// invalid request (errc::invalid_argument) and when the store or the index
// cannot be reached (what was moved before stays moved; run it again).
template <class Migration, EventStore Store, SagaIndex Index>
boost::asio::awaitable<std::vector<SagaMigrationResult>> migrate_sagas(Store& store, Index& index,
                                                                      MigrationRequest request) {
    static_assert(is_saga_migration<Migration>::value,
                  "boong::migrate_sagas<Migration>: Migration must be a boong::SagaMigration<From, To, ...>");
    detail::validate_migration_request(request);
    const MigrationRules& rules = Migration::rules();
    std::vector<std::string> ids = std::move(request.saga_ids);
    if (ids.empty()) {
        // (named, not written inside the co_await: see docs/durability.md, "Compilers")
        std::vector<SagaPhase> phases{SagaPhase::blocked, SagaPhase::failed};
        const auto from_version = [&](const SagaRecord& r) { return r.definition_version == rules.from.version; };
        ids = co_await detail::select_sagas(index, std::move(phases), rules.saga_type, request.limit, from_version);
    }
    std::vector<SagaMigrationResult> results;
    results.reserve(ids.size());
    IdGenerator event_ids;
    for (auto& id : ids) {
        SagaMigrationResult result;
        result.saga_id = std::move(id);
        auto decide = [&](const SagaState& saga) {
            result.plan = plan_migration(rules, saga);
            if (!result.plan.allowed) return detail::SagaDecision{result.plan.refusal, {}};
            return detail::SagaDecision{{}, detail::migrated_event(rules, saga, result.plan, request, event_ids)};
        };
        auto applied = co_await detail::apply_to_saga(store, result.saga_id, request.dry_run, decide);
        switch (applied.applied) {
            case detail::Applied::appended: result.outcome = MigrationOutcome::migrated; break;
            case detail::Applied::dry_run: result.outcome = MigrationOutcome::would_migrate; break;
            case detail::Applied::refused: result.outcome = MigrationOutcome::refused; break;
            case detail::Applied::conflict: result.outcome = MigrationOutcome::conflict; break;
        }
        result.reason = std::move(applied.reason);
        results.push_back(std::move(result));
    }
    co_return results;
}

}  // namespace boong
