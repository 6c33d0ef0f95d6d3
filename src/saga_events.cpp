#include <boong/saga.hpp>
#include <boong/saga_state.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

namespace boong {
namespace {

constexpr std::array<std::pair<SagaPhase, std::string_view>, 6> kPhases{{
    {SagaPhase::running, "running"},
    {SagaPhase::compensating, "compensating"},
    {SagaPhase::completed, "completed"},
    {SagaPhase::compensated, "compensated"},
    {SagaPhase::failed, "failed"},
    {SagaPhase::blocked, "blocked"},
}};

constexpr std::array<std::pair<FailureKind, std::string_view>, 7> kKinds{{
    {FailureKind::none, "none"},
    {FailureKind::transient, "transient"},
    {FailureKind::timeout, "timeout"},
    {FailureKind::rejected, "rejected"},
    {FailureKind::cancelled, "cancelled"},
    {FailureKind::deadline, "deadline"},
    {FailureKind::unavailable, "unavailable"},
}};

template <class Table, class E>
std::string_view name_of(const Table& table, E value) noexcept {
    for (const auto& [v, n] : table) {
        if (v == value) return n;
    }
    return "unknown";
}

template <class E, class Table>
std::optional<E> value_of(const Table& table, std::string_view name) noexcept {
    for (const auto& [v, n] : table) {
        if (n == name) return v;
    }
    return std::nullopt;
}

}  // namespace

std::string_view to_string(SagaPhase p) noexcept { return name_of(kPhases, p); }
std::string_view to_string(FailureKind k) noexcept { return name_of(kKinds, k); }
std::string_view to_string(SagaStatus s) noexcept {
    switch (s) {
        case SagaStatus::completed: return "completed";
        case SagaStatus::compensated: return "compensated";
        case SagaStatus::failed: return "failed";
    }
    return "unknown";
}
std::optional<SagaPhase> saga_phase_from_string(std::string_view s) noexcept {
    return value_of<SagaPhase>(kPhases, s);
}
std::optional<FailureKind> failure_kind_from_string(std::string_view s) noexcept {
    return value_of<FailureKind>(kKinds, s);
}

namespace detail {

std::string saga_fingerprint(std::string_view shape) {
    std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a, 64 bits: stable across builds and platforms
    for (const unsigned char c : shape) h = (h ^ c) * 0x100000001b3ULL;
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 15; i >= 0; --i, h >>= 4) out[static_cast<std::size_t>(i)] = digits[h & 0xf];
    return out;
}

}  // namespace detail

json SagaDefinition::to_json() const {
    return json{{"version", version}, {"fingerprint", fingerprint}, {"steps", shape}};
}

std::optional<std::string> definition_mismatch(const SagaDefinition& recorded, const SagaDefinition& served) {
    if (recorded.version != served.version) {
        return "it started on version " + std::to_string(recorded.version) + ", not version " +
               std::to_string(served.version);
    }
    if (!recorded.fingerprint.empty() && !served.fingerprint.empty() && recorded.fingerprint != served.fingerprint) {
        std::string why = "it started on version " + std::to_string(recorded.version) + " with steps '" +
                          (recorded.shape.empty() ? recorded.fingerprint : recorded.shape) +
                          "', but this build's version " + std::to_string(served.version) + " has steps '" +
                          (served.shape.empty() ? served.fingerprint : served.shape) +
                          "' (the definition changed without a new version)";
        return why;
    }
    return std::nullopt;
}

bool SagaState::step_completed(std::string_view step) const noexcept {
    return std::find(completed.begin(), completed.end(), step) != completed.end();
}

bool SagaState::step_compensated(std::string_view step) const noexcept {
    return std::find(compensated.begin(), compensated.end(), step) != compensated.end();
}

std::string_view SagaState::key_step(std::string_view step) const noexcept {
    for (const auto& [name, key] : key_steps) {
        if (name == step) return key;
    }
    return step;
}

namespace {

// A migration's renames, applied at once (so that a swap of two names works).
void rename_steps(SagaState& s, const std::vector<std::pair<std::string, std::string>>& renamed) {
    const auto renamed_to = [&](const std::string& step) -> const std::string& {
        for (const auto& [from, to] : renamed) {
            if (from == step) return to;
        }
        return step;
    };
    for (auto* list : {&s.completed, &s.compensable, &s.compensated, &s.begun}) {
        for (auto& step : *list) step = renamed_to(step);
    }
    s.failed_step = renamed_to(s.failed_step);
    s.failed_compensation = renamed_to(s.failed_compensation);
    std::vector<std::pair<std::string, std::string>> keys;
    for (const auto& [from, to] : renamed) keys.emplace_back(to, std::string(s.key_step(from)));
    for (auto& [step, key] : s.key_steps) {
        const bool moved = std::any_of(renamed.begin(), renamed.end(), [&](const auto& r) { return r.first == step; });
        const bool taken = std::any_of(keys.begin(), keys.end(), [&](const auto& k) { return k.first == step; });
        if (!moved && !taken) keys.emplace_back(step, key);
    }
    std::erase_if(keys, [](const auto& k) { return k.first == k.second; });
    s.key_steps = std::move(keys);
}

}  // namespace

void SagaState::apply(const RecordedEvent& e) {
    const auto& type = e.event.type;
    const auto& p = e.event.payload;
    auto fail = [&](const std::string& why) {
        return Error(errc::protocol_error, "saga stream '" + e.stream_id + "' version " + std::to_string(e.version) +
                                               " (" + type + "): " + why);
    };
    if (e.version != version + 1) {
        throw fail("expected version " + std::to_string(version + 1) + " next");
    }
    try {
        // The fields each event sets; the phase comes from phase_rules below.
        if (type == saga_event::started) {
            constexpr std::string_view prefix = "saga-";
            saga_id = e.stream_id.starts_with(prefix) ? e.stream_id.substr(prefix.size()) : e.stream_id;
            saga_type = p.at("saga_type").get<std::string>();
            if (auto d = p.find("definition"); d != p.end() && !d->is_null()) {
                definition.version = d->at("version").get<std::int64_t>();
                definition.fingerprint = d->value("fingerprint", "");
                definition.shape = d->value("steps", "");
                if (definition.version < 1) throw fail("definition version must be >= 1");
            }
            data = p.at("data");
            correlation_id = e.event.metadata.correlation_id;
            if (auto it = p.find("deadline"); it != p.end() && !it->is_null()) {
                deadline = parse_timestamp(it->get<std::string>());
            }
            started_at = e.event.metadata.timestamp;
        } else if (version == 0) {
            throw fail("a saga stream must start with " + std::string(saga_event::started));
        } else if (type == saga_event::step_started) {
            auto step = p.at("step").get<std::string>();
            if (!step_completed(step) && std::find(begun.begin(), begun.end(), step) == begun.end()) {
                begun.push_back(std::move(step));
            }
        } else if (type == saga_event::step_completed) {
            auto step = p.at("step").get<std::string>();
            std::erase(begun, step);
            if (!step_completed(step)) {
                completed.push_back(step);
                compensable.push_back(std::move(step));
            }
            data = p.at("data");
        } else if (type == saga_event::step_failed) {
            if (p.value("compensate", false)) compensable.push_back(p.at("step").get<std::string>());
        } else if (type == saga_event::compensation_started) {
            failed_step = p.value("failed_step", "");
            error = p.value("error", "");
            failure_kind = failure_kind_from_string(p.value("kind", "")).value_or(FailureKind::transient);
        } else if (type == saga_event::step_compensated) {
            auto step = p.at("step").get<std::string>();
            if (!step_compensated(step)) compensated.push_back(std::move(step));
        } else if (type == saga_event::completed) {
            if (auto it = p.find("data"); it != p.end()) data = *it;
        } else if (type == saga_event::failed) {
            failed_compensation = p.at("step").get<std::string>();
            compensation_error = p.value("error", "");
        } else if (type == saga_event::resumed || type == saga_event::retry_requested) {
            if (type == saga_event::retry_requested && phase != SagaPhase::failed && phase != SagaPhase::blocked) {
                throw fail("only a failed or blocked saga can be retried, not a " + std::string(to_string(phase)) + " one");
            }
            failed_compensation.clear();
            compensation_error.clear();
            blocked_reason.clear();
            blocked_for_operator = false;
        } else if (type == saga_event::blocked) {
            if (phase == SagaPhase::running || phase == SagaPhase::compensating) {
                blocked_from = phase;
            } else if (phase != SagaPhase::blocked) {
                throw fail("a " + std::string(to_string(phase)) + " saga cannot be blocked");
            }
            blocked_reason = p.value("reason", "");
            blocked_for_operator = p.value("needs_operator", false);
        } else if (type == saga_event::cancel_requested) {
            if (phase != SagaPhase::running) {
                throw fail("only a running saga can be cancelled, not a " + std::string(to_string(phase)) + " one");
            }
            cancel_requested = true;
            cancel_reason = p.value("reason", "");
            if (auto by = p.value("by", ""); !by.empty()) cancel_reason += " (by " + by + ")";
        } else if (type == saga_event::migrated) {
            if (phase != SagaPhase::blocked && phase != SagaPhase::failed) {
                throw fail("a " + std::string(to_string(phase)) + " saga cannot be migrated");
            }
            const auto& to = p.at("to");
            SagaDefinition next{to.at("version").get<std::int64_t>(), to.value("fingerprint", ""), to.value("steps", "")};
            if (next.version <= definition.version) throw fail("a migration must move to a later version");
            std::vector<std::pair<std::string, std::string>> renamed;
            for (const auto& r : p.value("renamed", json::array())) {
                renamed.emplace_back(r.at(0).get<std::string>(), r.at(1).get<std::string>());
            }
            rename_steps(*this, renamed);
            for (const auto& step : p.value("skipped", json::array())) {
                auto name = step.get<std::string>();
                if (!step_completed(name)) completed.push_back(std::move(name));  // passed, never compensated
            }
            definition = std::move(next);
            // An operator moved it on purpose: whoever serves the new version takes it.
            blocked_for_operator = false;
        }
        // StepStarted, StepCompensating and CompensationFailed describe
        // attempts; they have no rule and leave the phase as it was.
        if (const PhaseRule* rule = phase_rule(type)) {
            if (rule->phase) {
                phase = *rule->phase;
            } else {
                auto to = saga_phase_from_string(p.at("phase").get<std::string>());
                if (!to || (*to != SagaPhase::running && *to != SagaPhase::compensating)) {
                    throw fail("cannot resume into phase " + p.at("phase").dump());
                }
                phase = *to;
            }
        }
    } catch (const json::exception& ex) {
        throw fail(std::string("malformed payload: ") + ex.what());
    }
    version = e.version;
    last_event_id = e.event.event_id;
    updated_at = e.event.metadata.timestamp;
}

SagaState fold_saga(const std::vector<RecordedEvent>& events) {
    if (events.empty()) throw Error(errc::not_found, "no such saga (its stream is empty)");
    SagaState s;
    for (const auto& e : events) s.apply(e);
    return s;
}

}  // namespace boong
