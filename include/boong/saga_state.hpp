// What a saga's event stream says about it: the fold used to resume a saga
// and to show operators where it stands.
#pragma once

#include <boong/event.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boong {

// Where a saga is. running and compensating are in flight (or interrupted);
// completed, compensated and failed are terminal — `failed` only until an
// operator resumes it. `blocked`: in flight, but no orchestrator that looked
// at it serves the definition it started on (docs/versioning.md); it goes on
// where it stood as soon as one that does takes it.
enum class SagaPhase { running, compensating, completed, compensated, failed, blocked };

// Why a step failed.
enum class FailureKind {
    none,
    transient,  // it threw; retried per policy
    timeout,    // an attempt passed the step timeout; retried per policy
    rejected,   // it threw boong::Rejection: never retried
    cancelled,  // the saga was cancelled, or a step of its parallel group failed
    deadline,   // the saga's overall deadline passed
    // A dependency could not be reached (boong::is_unavailable): not counted
    // as an attempt; the step is tried again with outage backoff until it
    // answers (recorded once per outage, never final).
    unavailable,
};

std::string_view to_string(SagaPhase p) noexcept;
std::string_view to_string(FailureKind k) noexcept;
std::optional<SagaPhase> saga_phase_from_string(std::string_view s) noexcept;
std::optional<FailureKind> failure_kind_from_string(std::string_view s) noexcept;

// The names of the events a saga records, one stream per saga ("saga-<id>").
namespace saga_event {
inline constexpr std::string_view started = "SagaStarted";
inline constexpr std::string_view resumed = "SagaResumed";
inline constexpr std::string_view step_started = "StepStarted";
inline constexpr std::string_view step_completed = "StepCompleted";
inline constexpr std::string_view step_failed = "StepFailed";
inline constexpr std::string_view compensation_started = "CompensationStarted";
inline constexpr std::string_view step_compensating = "StepCompensating";
inline constexpr std::string_view step_compensated = "StepCompensated";
inline constexpr std::string_view compensation_failed = "CompensationFailed";
inline constexpr std::string_view completed = "SagaCompleted";
inline constexpr std::string_view compensated = "SagaCompensated";
inline constexpr std::string_view failed = "SagaFailed";
inline constexpr std::string_view blocked = "SagaBlocked";
// An operator asked for a failed (or blocked) saga to be tried again: it is
// free at once for any orchestrator of its type, which resumes it in the
// phase named ("phase": compensating for a failed saga).
inline constexpr std::string_view retry_requested = "SagaRetryRequested";
// An operator moved a blocked or failed saga to the next version of its
// definition (saga_migration.hpp); it names who, why, and what changed.
inline constexpr std::string_view migrated = "SagaMigrated";
// An operator asked for a running saga to be cancelled (saga_cancel.hpp): it
// is taken from its owner, and whichever orchestrator resumes it compensates,
// as SagaRunner::cancel() does in process. It moves no phase by itself.
inline constexpr std::string_view cancel_requested = "SagaCancelRequested";
}  // namespace saga_event

inline std::string saga_stream(std::string_view saga_id) { return "saga-" + std::string(saga_id); }

// How a saga's phase follows from its events. This table is the one
// definition: the fold (SagaState::apply) and the in-memory saga index read
// it, and the PostgreSQL trigger that keeps the saga table follows it (each
// schema migration writes it out; a test holds the latest to this table).
// Events not listed leave the phase as it was.
struct PhaseRule {
    std::string_view event;
    // The phase the event moves the saga into; none for SagaResumed and
    // SagaRetryRequested, which name it in their payload ("phase": running
    // or compensating).
    std::optional<SagaPhase> phase;
};
inline constexpr std::array<PhaseRule, 8> phase_rules{{
    {saga_event::started, SagaPhase::running},
    {saga_event::resumed, std::nullopt},
    {saga_event::retry_requested, std::nullopt},
    {saga_event::compensation_started, SagaPhase::compensating},
    {saga_event::completed, SagaPhase::completed},
    {saga_event::compensated, SagaPhase::compensated},
    {saga_event::failed, SagaPhase::failed},
    {saga_event::blocked, SagaPhase::blocked},
}};

// The rule for an event type, or null when the event does not move the phase.
constexpr const PhaseRule* phase_rule(std::string_view type) noexcept {
    for (const auto& r : phase_rules) {
        if (r.event == type) return &r;
    }
    return nullptr;
}

constexpr bool is_terminal(SagaPhase p) noexcept {
    return p == SagaPhase::completed || p == SagaPhase::compensated || p == SagaPhase::failed;
}

// Which definition of a saga type a saga runs on: the version its class
// declares and the fingerprint of its ordered steps (SagaType::fingerprint).
// Sagas recorded before definitions had versions read as version 1 with no
// fingerprint.
struct SagaDefinition {
    std::int64_t version = 1;
    std::string fingerprint;  // empty: not recorded
    std::string shape;        // the steps as text (SagaType::shape); empty: not recorded

    json to_json() const;
};

// Why `served` cannot run a saga recorded on `recorded` (nullopt: it can).
// The versions must be equal; the fingerprints too when both are known (the
// same version with other steps means the definition was changed without
// a new version).
std::optional<std::string> definition_mismatch(const SagaDefinition& recorded, const SagaDefinition& served);

// A saga as its events describe it.
struct SagaState {
    std::string saga_id;
    std::string saga_type;
    SagaDefinition definition;                // what it started on (SagaStarted)
    SagaPhase phase = SagaPhase::running;
    // phase == blocked: why, and the in-flight phase it goes on in.
    std::string blocked_reason;
    SagaPhase blocked_from = SagaPhase::running;
    // Blocked because resuming it failed on its own definition (not for want
    // of one): an orchestrator does not take it back by itself; an
    // operator's resume does, once the cause is fixed.
    bool blocked_for_operator = false;
    json data;                                // the saga data as last recorded
    std::string correlation_id;
    std::optional<Clock::time_point> deadline;
    std::vector<std::string> completed;       // steps, in the order they completed
    // Steps to compensate when unwinding, in order: the completed ones, and
    // those that failed with an uncertain outcome under compensate_uncertain.
    std::vector<std::string> compensable;
    std::vector<std::string> compensated;     // steps, in the order they were compensated
    // Steps begun (StepStarted) whose completion is not recorded: their
    // effect may have happened, and the next attempt keeps their key.
    std::vector<std::string> begun;
    std::string failed_step;                  // the step whose failure started compensation
    FailureKind failure_kind = FailureKind::none;
    std::string error;                        // its error
    std::string failed_compensation;          // set when phase == failed
    std::string compensation_error;
    // Steps renamed by a migration, with the step name their idempotency
    // keys keep using (so that an effect asked for before the rename is
    // recognised after it).
    std::vector<std::pair<std::string, std::string>> key_steps;
    // An operator asked for it to be cancelled (SagaCancelRequested): a
    // resumed run compensates instead of going on. The reason, with who asked.
    bool cancel_requested = false;
    std::string cancel_reason;
    std::int64_t version = 0;                 // the stream version folded so far
    std::string last_event_id;
    Clock::time_point started_at{};
    Clock::time_point updated_at{};

    bool is_terminal() const noexcept { return boong::is_terminal(phase); }
    bool step_completed(std::string_view step) const noexcept;
    bool step_compensated(std::string_view step) const noexcept;
    // The step name in `step`'s idempotency keys: its own, unless a
    // migration renamed it.
    std::string_view key_step(std::string_view step) const noexcept;

    // Folds one event of the saga's stream; events must come in version order.
    // Throws boong::Error(errc::protocol_error) on an event it cannot read.
    void apply(const RecordedEvent& e);
};

// Folds a whole stream. Throws boong::Error(errc::not_found) when it is empty.
SagaState fold_saga(const std::vector<RecordedEvent>& events);

}  // namespace boong
