#include <boong/detail/validate.hpp>
#include <boong/memory/sagas.hpp>
#include <boong/owner.hpp>

#include <algorithm>
#include <map>
#include <mutex>
#include <string_view>
#include <tuple>

namespace boong {

namespace {

bool in_flight(SagaPhase p) noexcept { return p == SagaPhase::running || p == SagaPhase::compensating; }
// What an owner may hold: an in-flight saga, or a blocked one it claimed to
// unblock (its SagaResumed follows).
bool holdable(SagaPhase p) noexcept { return in_flight(p) || p == SagaPhase::blocked; }

void check_limit(std::size_t limit, std::string_view what) {
    if (limit < 1 || limit > 10000) {
        throw Error(errc::invalid_argument,
                    std::string(what) + "'s limit must be in 1..10000, got " + std::to_string(limit));
    }
}

// A field of an object as text, as PostgreSQL's ->> gives it to the saga
// table's trigger: a string as it is, anything else as its JSON text, and ""
// for a missing field or null (events written by hand may hold anything; the
// index never fails on them).
std::string text(const json& object, const char* key) {
    if (!object.is_object()) return {};
    const auto it = object.find(key);
    if (it == object.end() || it->is_null()) return {};
    return it->is_string() ? it->get<std::string>() : it->dump();
}

// `digits` (1 to `max_digits` decimal digits) as a number, else `otherwise`:
// the trigger's rule for numbers in events.
std::int64_t digits_or(const std::string& digits, std::size_t max_digits, std::int64_t otherwise) {
    if (digits.empty() || digits.size() > max_digits ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return otherwise;
    }
    return std::stoll(digits);
}

// Never-leased first, then the longest expired; by id among equals (the
// sagas come in id order), as the table's ORDER BY lease_until NULLS FIRST, saga_id.
std::vector<std::string> take(std::vector<SagaRecord*> free, const std::string& owner, Clock::time_point until,
                              std::size_t max_count) {
    std::stable_sort(free.begin(), free.end(), [](const SagaRecord* a, const SagaRecord* b) {
        if (a->lease_until.has_value() != b->lease_until.has_value()) return !a->lease_until.has_value();
        return a->lease_until && *a->lease_until < *b->lease_until;
    });
    if (free.size() > max_count) free.resize(max_count);
    std::vector<std::string> taken;
    for (auto* r : free) {
        r->owner = owner;
        r->lease_until = until;
        taken.push_back(r->saga_id);
    }
    return taken;
}

}  // namespace

struct MemorySagaIndex::State {
    std::mutex mutex;
    std::int64_t position = 0;                // the store's events applied so far
    std::map<std::string, SagaRecord> sagas;  // by id: list pages in id order

    // Applies one phase event, as the PostgreSQL store's trigger does.
    void apply(const RecordedEvent& e, const PhaseRule& rule) {
        const std::string id = e.stream_id.substr(5);
        const auto& extra = e.event.metadata.extra;
        const std::string owner = text(extra, "owner");
        // The trigger's rule: 1 to 10 digits as text, else no lease.
        const std::int64_t lease_ms = digits_or(text(extra, "lease_ms"), 10, 0);
        const std::optional<Clock::time_point> lease_until =
            owner.empty() ? std::nullopt : std::optional(e.stored_at + milliseconds(lease_ms));
        const auto& payload = e.event.payload;

        if (e.event.type == saga_event::started) {
            if (sagas.contains(id)) return;
            SagaRecord r;
            r.saga_id = id;
            r.saga_type = text(payload, "saga_type");
            // Absent or unreadable: version 1 without a fingerprint, as
            // sagas recorded before definitions had versions.
            const json definition = payload.is_object() ? payload.value("definition", json()) : json();
            r.definition_version = digits_or(text(definition, "version"), 18, 1);
            r.fingerprint = text(definition, "fingerprint");
            r.phase = *rule.phase;
            r.version = e.version;
            if (const auto deadline = text(payload, "deadline"); !deadline.empty()) {
                try {
                    r.deadline = parse_timestamp(deadline);
                } catch (const std::exception&) {
                    // unreadable: no deadline, as in the table
                }
            }
            r.started_at = r.updated_at = e.stored_at;
            r.owner = owner;
            r.lease_until = lease_until;
            sagas.emplace(id, std::move(r));
            return;
        }
        const auto it = sagas.find(id);
        if (it == sagas.end()) return;
        SagaRecord& r = it->second;
        // Only an in-flight saga can be blocked, only a failed or blocked one
        // retried (the fold refuses the rest).
        if (rule.phase == SagaPhase::blocked && !holdable(r.phase)) return;
        const bool retry = e.event.type == saga_event::retry_requested;
        if (retry && r.phase != SagaPhase::failed && r.phase != SagaPhase::blocked) return;
        r.version = e.version;
        r.updated_at = e.stored_at;
        if (!rule.phase) {  // SagaResumed, SagaRetryRequested: the phase it names, and its owner
            if (const auto phase = saga_phase_from_string(text(payload, "phase")); phase && in_flight(*phase)) {
                r.phase = *phase;
            }
            r.failed_compensation.clear();
            r.compensation_error.clear();
            r.blocked_reason.clear();
            r.owner = retry ? std::string() : owner;
            // A retry is free at once: its lease ended as it was asked for.
            r.lease_until = retry ? std::optional(e.stored_at) : lease_until;
        } else if (*rule.phase == SagaPhase::compensating) {
            r.phase = SagaPhase::compensating;
            r.failed_step = text(payload, "failed_step");
            r.failure_kind = failure_kind_from_string(text(payload, "kind")).value_or(FailureKind::none);
            r.error = text(payload, "error");
        } else if (*rule.phase == SagaPhase::blocked) {  // frees the saga for one that serves its definition
            r.phase = SagaPhase::blocked;
            r.blocked_reason = text(payload, "reason");
            r.owner.clear();
            r.lease_until.reset();
        } else {  // terminal: frees the saga
            r.phase = *rule.phase;
            const bool failed = r.phase == SagaPhase::failed;
            r.failed_compensation = failed ? text(payload, "step") : std::string{};
            r.compensation_error = failed ? text(payload, "error") : std::string{};
            r.blocked_reason.clear();
            r.owner.clear();
            r.lease_until.reset();
        }
    }

    // SagaMigrated: a blocked or failed saga moves to the definition it names,
    // as the PostgreSQL store's migration trigger does.
    void migrate(const RecordedEvent& e) {
        const auto it = sagas.find(e.stream_id.substr(5));
        if (it == sagas.end()) return;
        SagaRecord& r = it->second;
        if (r.phase != SagaPhase::blocked && r.phase != SagaPhase::failed) return;
        const auto& payload = e.event.payload;
        const json to = payload.is_object() ? payload.value("to", json()) : json();
        const std::int64_t version = digits_or(text(to, "version"), 18, 0);
        if (version < 1) return;  // unreadable: changes nothing, as in the table
        r.definition_version = version;
        r.fingerprint = text(to, "fingerprint");
        r.updated_at = e.stored_at;
    }

    // SagaCancelRequested: a running saga is taken from its owner (whose next
    // renewal finds it lost); its lease runs out as it stands. As the
    // PostgreSQL store's cancel trigger does.
    void cancel(const RecordedEvent& e) {
        const auto it = sagas.find(e.stream_id.substr(5));
        if (it == sagas.end() || it->second.phase != SagaPhase::running) return;
        SagaRecord& r = it->second;
        r.version = e.version;
        r.updated_at = e.stored_at;
        r.owner.clear();
    }
};

MemorySagaIndex::MemorySagaIndex(MemoryEventStore& store) : store_(store), state_(std::make_unique<State>()) {}
MemorySagaIndex::~MemorySagaIndex() = default;

std::unique_lock<std::mutex> MemorySagaIndex::catch_up() {
    std::unique_lock lock(state_->mutex);
    constexpr std::size_t page = 1024;
    for (;;) {
        const auto batch = store_.read_all(state_->position + 1, page);
        for (const auto& e : batch) {
            state_->position = e.position;
            if (!e.stream_id.starts_with("saga-")) continue;
            if (const auto* rule = phase_rule(e.event.type)) {
                state_->apply(e, *rule);
            } else if (e.event.type == saga_event::migrated) {
                state_->migrate(e);
            } else if (e.event.type == saga_event::cancel_requested) {
                state_->cancel(e);
            }
        }
        if (batch.size() < page) break;
    }
    return lock;
}

std::vector<std::string> MemorySagaIndex::claim(const SagaClaim& request, const std::string& owner,
                                                milliseconds lease, std::size_t max_count) {
    detail::validate_owner(owner, "saga");
    detail::validate_lease(lease, "a saga");
    if (request.saga_type.empty()) throw Error(errc::invalid_argument, "claim: the saga type is empty");
    if (max_count == 0) return {};
    const auto lock = catch_up();
    const auto now = Clock::now();
    const auto served = [&](const SagaRecord& r) {
        const SagaDefinition recorded{r.definition_version, r.fingerprint, {}};
        return std::any_of(request.definitions.begin(), request.definitions.end(),
                           [&](const SagaDefinition& d) { return !definition_mismatch(recorded, d); });
    };
    std::vector<SagaRecord*> free;
    for (auto& [id, r] : state_->sagas) {
        if (r.saga_type != request.saga_type) continue;
        const bool expired = r.lease_until && *r.lease_until < now;
        const bool predecessor = !r.owner.empty() && owner_name(r.owner) == owner_name(owner) && r.owner != owner;
        if (in_flight(r.phase)) {
            const bool never_owned = r.owner.empty() && !r.lease_until && r.updated_at < now - lease;
            if (expired || never_owned || predecessor) free.push_back(&r);
        } else if (r.phase == SagaPhase::blocked && served(r)) {
            // SagaBlocked freed it: free at once, unless a claimant took it
            // since (it stays blocked until that one's SagaResumed).
            if (!r.lease_until || expired || predecessor) free.push_back(&r);
        }
    }
    return take(std::move(free), owner, now + lease, max_count);
}

std::vector<std::string> MemorySagaIndex::claim_orphans(const std::string& owner, milliseconds lease,
                                                        milliseconds idle, std::size_t max_count) {
    detail::validate_owner(owner, "saga");
    detail::validate_lease(lease, "a saga");
    if (idle.count() < 0) throw Error(errc::invalid_argument, "claim_orphans: idle must not be negative");
    if (max_count == 0) return {};
    const auto lock = catch_up();
    const auto now = Clock::now();
    std::vector<SagaRecord*> free;
    for (auto& [id, r] : state_->sagas) {
        if (!in_flight(r.phase)) continue;
        const bool long_expired = r.lease_until && *r.lease_until < now - idle;
        const bool never_owned = r.owner.empty() && !r.lease_until && r.updated_at < now - idle;
        if (long_expired || never_owned) free.push_back(&r);
    }
    return take(std::move(free), owner, now + lease, max_count);
}

std::vector<std::string> MemorySagaIndex::renew(const std::string& owner, milliseconds lease,
                                                const std::vector<std::string>& running) {
    detail::validate_owner(owner, "saga");
    detail::validate_lease(lease, "a saga");
    const auto lock = catch_up();
    const auto until = Clock::now() + lease;
    std::vector<std::string> lost;
    for (const auto& id : running) {
        const auto it = state_->sagas.find(id);
        if (it == state_->sagas.end() || !holdable(it->second.phase)) continue;
        const auto& r = it->second;
        if (r.owner == owner) {
            it->second.lease_until = until;
        } else if (in_flight(r.phase) || !r.owner.empty()) {
            lost.push_back(id);  // (a blocked saga nobody holds is not lost: its runner blocked it)
        }
    }
    return lost;
}

void MemorySagaIndex::release(const std::string& owner) {
    detail::validate_owner(owner, "saga");
    const auto lock = catch_up();
    // Expired from now on: strictly earlier than any later claim's clock.
    const auto expired = Clock::now() - milliseconds(1);
    for (auto& [id, r] : state_->sagas) {
        if (r.owner == owner && holdable(r.phase)) r.lease_until = expired;
    }
}

std::vector<SagaRecord> MemorySagaIndex::list(const SagaQuery& query) {
    check_limit(query.limit, "a saga query");
    const auto lock = catch_up();
    std::vector<SagaRecord> out;
    for (auto it = state_->sagas.upper_bound(query.after_id); it != state_->sagas.end() && out.size() < query.limit;
         ++it) {
        const auto& r = it->second;
        if (query.phase && r.phase != *query.phase) continue;
        if (!query.saga_type.empty() && r.saga_type != query.saga_type) continue;
        out.push_back(r);
    }
    return out;
}

std::vector<SagaRecord> MemorySagaIndex::stuck(milliseconds idle, std::size_t limit) {
    check_limit(limit, "a stuck query");
    if (idle.count() < 0) throw Error(errc::invalid_argument, "idle must not be negative");
    const auto lock = catch_up();
    const auto now = Clock::now();
    std::vector<SagaRecord> out;
    for (const auto& [id, r] : state_->sagas) {
        const bool unattended = in_flight(r.phase) && (r.lease_until ? *r.lease_until < now : r.updated_at < now - idle);
        if (r.phase == SagaPhase::failed || r.phase == SagaPhase::blocked || unattended) out.push_back(r);
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const SagaRecord& a, const SagaRecord& b) { return a.updated_at < b.updated_at; });
    if (out.size() > limit) out.resize(limit);
    return out;
}

std::optional<SagaRecord> MemorySagaIndex::find(const std::string& saga_id) {
    const auto lock = catch_up();
    const auto it = state_->sagas.find(saga_id);
    if (it == state_->sagas.end()) return std::nullopt;
    return it->second;
}

std::vector<std::pair<SagaPhase, std::int64_t>> MemorySagaIndex::count_by_phase() {
    const auto lock = catch_up();
    std::map<SagaPhase, std::int64_t> counts;
    for (const auto& [id, r] : state_->sagas) ++counts[r.phase];
    return {counts.begin(), counts.end()};
}

std::vector<DefinitionCount> MemorySagaIndex::count_definitions(const std::string& saga_type) {
    const auto lock = catch_up();
    std::map<std::tuple<std::string, std::int64_t, std::string, SagaPhase>, std::int64_t> counts;
    for (const auto& [id, r] : state_->sagas) {
        if (r.phase == SagaPhase::completed || r.phase == SagaPhase::compensated) continue;
        if (!saga_type.empty() && r.saga_type != saga_type) continue;
        ++counts[{r.saga_type, r.definition_version, r.fingerprint, r.phase}];
    }
    std::vector<DefinitionCount> out;
    for (const auto& [key, n] : counts) {
        const auto& [type, version, fingerprint, phase] = key;
        out.push_back({type, version, fingerprint, phase, n});
    }
    return out;
}

}  // namespace boong
