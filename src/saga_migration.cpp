#include <boong/saga_migration.hpp>

#include <algorithm>

namespace boong {

namespace {

bool contains(const std::vector<std::string_view>& list, std::string_view name) {
    return std::find(list.begin(), list.end(), name) != list.end();
}

const StepPlace* place_of(const std::vector<StepPlace>& steps, std::string_view name) {
    const auto it = std::find_if(steps.begin(), steps.end(), [&](const StepPlace& s) { return s.name == name; });
    return it == steps.end() ? nullptr : &*it;
}

// The name a step of version N has in N+1; none when it was removed.
std::optional<std::string_view> next_name(const MigrationRules& m, std::string_view step) {
    for (const auto& [from, to] : m.renamed) {
        if (from == step) return to;
    }
    if (contains(m.removed, step)) return std::nullopt;
    return step;
}

std::string in_quotes(std::string_view s) { return "'" + std::string(s) + "'"; }

}  // namespace

json MigrationPlan::to_json() const {
    json renames = json::array();
    for (const auto& [from, to] : renamed) renames.push_back(json::array({from, to}));
    json out{{"allowed", allowed}, {"renamed", std::move(renames)}, {"skipped", skipped}, {"run_late", run_late},
             {"dropped", dropped}};
    if (!allowed) out["refusal"] = refusal;
    return out;
}

MigrationPlan plan_migration(const MigrationRules& m, const SagaState& s) {
    MigrationPlan plan;
    const std::string next_version = "version " + std::to_string(m.to.version);
    auto refuse = [&](std::string why) {
        plan.refusal = std::move(why);
        return plan;
    };
    if (s.saga_type != m.saga_type) {
        return refuse("it is a saga of type " + in_quotes(s.saga_type) + ", not " + in_quotes(m.saga_type));
    }
    if (auto why = definition_mismatch(s.definition, m.from)) {
        return refuse("this migration starts from version " + std::to_string(m.from.version) + ": " + *why);
    }
    if (s.phase != SagaPhase::blocked && s.phase != SagaPhase::failed) {
        return refuse("it is " + std::string(to_string(s.phase)) +
                      ": only a blocked or failed saga is migrated (stop serving version " +
                      std::to_string(m.from.version) + " and its sagas are blocked)");
    }
    for (const auto& [from, to] : m.renamed) plan.renamed.emplace_back(from, to);

    // What it still owes: compensations of steps it completed. A removed step
    // with a compensation cannot be undone by N+1.
    for (const auto& step : s.compensable) {
        if (s.step_compensated(step)) continue;
        const StepPlace* old_place = place_of(m.from_steps, step);
        if (old_place == nullptr) {
            return refuse("it recorded step " + in_quotes(step) + ", which version " + std::to_string(m.from.version) +
                          " does not have");
        }
        if (!next_name(m, step)) {
            if (old_place->has_compensation) {
                return refuse("it completed " + in_quotes(step) + ", whose compensation " + next_version +
                              " no longer has (it may still have to be undone)");
            }
            plan.dropped.push_back(step);
        }
    }

    const bool forward = s.phase == SagaPhase::blocked && s.blocked_from == SagaPhase::running;
    if (forward) {
        // What it did must be a prefix of N+1's order: every step of an
        // earlier stage than its last one done is done too, or new and
        // declared (skipped or run late). A step begun but not recorded
        // complete counts as done: its effect may have happened, and it runs
        // next (with its key) to settle it.
        struct Done {
            std::string_view step;  // its name in version N+1
            bool begun;
        };
        std::vector<Done> done;
        for (const auto* list : {&s.completed, &s.begun}) {
            for (const auto& step : *list) {
                if (!place_of(m.from_steps, step)) {
                    return refuse("it recorded step " + in_quotes(step) + ", which version " +
                                  std::to_string(m.from.version) + " does not have");
                }
                if (const auto next = next_name(m, step)) {
                    done.push_back({*next, list == &s.begun});
                } else if (list == &s.begun) {
                    return refuse("it began " + in_quotes(step) + ", which " + next_version +
                                  " no longer has (its effect may have happened)");
                }
            }
        }
        const auto is_done = [&](std::string_view step) {
            return std::any_of(done.begin(), done.end(), [&](const Done& d) { return d.step == step; });
        };
        std::optional<std::size_t> last_stage;
        const Done* last = nullptr;
        for (const auto& d : done) {
            const StepPlace* p = place_of(m.to_steps, d.step);
            if (p && (!last_stage || p->stage > *last_stage)) {
                last_stage = p->stage;
                last = &d;
            }
        }
        if (last_stage) {
            for (const auto& t : m.to_steps) {
                if (t.stage >= *last_stage || is_done(t.name)) continue;
                if (contains(m.skip_if_passed, t.name)) {
                    plan.skipped.emplace_back(t.name);
                } else if (contains(m.run_if_passed, t.name)) {
                    plan.run_late.emplace_back(t.name);
                } else {
                    return refuse(std::string(last->begun ? "it began " : "it completed ") + in_quotes(last->step) +
                                  " but not " + in_quotes(t.name) + ", which " + next_version + " runs before it");
                }
            }
        }
    }
    plan.allowed = true;
    return plan;
}

std::string_view to_string(MigrationOutcome o) noexcept {
    switch (o) {
        case MigrationOutcome::migrated: return "migrated";
        case MigrationOutcome::would_migrate: return "would_migrate";
        case MigrationOutcome::refused: return "refused";
        case MigrationOutcome::conflict: return "conflict";
    }
    return "?";
}

namespace detail {

void validate_migration_request(const MigrationRequest& request) {
    if (request.by.empty()) throw Error(errc::invalid_argument, "migrate sagas: say who asks (by)");
    if (request.reason.empty()) throw Error(errc::invalid_argument, "migrate sagas: say why (reason)");
    if (request.saga_ids.empty() && (request.limit < 1 || request.limit > 100000)) {
        throw Error(errc::invalid_argument, "migrate sagas: limit must be in 1..100000");
    }
}

EventData migrated_event(const MigrationRules& rules, const SagaState& saga, const MigrationPlan& plan,
                         const MigrationRequest& request, IdGenerator& ids) {
    EventData e;
    e.event_id = ids.next();
    e.type = std::string(saga_event::migrated);
    json renames = json::array();
    for (const auto& [from, to] : plan.renamed) renames.push_back(json::array({from, to}));
    e.payload = json{{"from", rules.from.to_json()}, {"to", rules.to.to_json()}, {"renamed", std::move(renames)},
                     {"skipped", plan.skipped},      {"run_late", plan.run_late}, {"dropped", plan.dropped},
                     {"by", request.by},             {"reason", request.reason}};
    e.metadata.timestamp = Clock::now();
    e.metadata.correlation_id = saga.correlation_id;
    e.metadata.causation_id = saga.last_event_id;
    return e;
}

}  // namespace detail

}  // namespace boong
