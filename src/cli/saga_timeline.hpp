// A saga's history as an operator reads it (`boong sagas show`): every
// attempt of every step and compensation, with its start, duration, outcome
// and error, between the saga's own transitions. Built from the saga's
// event stream alone, so it is a pure function tests drive with events.
#pragma once

#include <boong/event.hpp>
#include <boong/policy.hpp>
#include <boong/saga_state.hpp>

#include <optional>
#include <string>
#include <vector>

namespace boong::cli {

// One row of the timeline: an attempt ("step" or "compensation") or a
// transition of the saga itself ("saga": SagaStarted, CompensationStarted, ...).
struct TimelineEntry {
    std::string kind;   // "saga", "step" or "compensation"
    std::string name;   // the step, or for "saga" the event type
    int attempt = 0;    // attempts only
    Clock::time_point at{};
    std::optional<milliseconds> duration;  // attempts that ended
    // Attempts: "completed", "compensated", "failed", "running" (no end
    // recorded: in flight, or the process died). Saga rows: the phase it
    // entered ("running", "compensating", "completed", ...).
    std::string outcome;
    std::string failure_kind;  // a failed attempt's FailureKind
    std::string error;         // a failed attempt's error; a saga row's reason
    bool final = false;        // a failed attempt that was the last one
    // Outages the attempt waited out (FailureKind::unavailable: never final,
    // not counted as attempts): their errors, in order.
    std::vector<std::string> outages;
    std::string owner;  // SagaStarted/SagaResumed: the orchestrator that took it
    std::optional<milliseconds> lease;
};

struct SagaTimeline {
    SagaState state;  // the fold of the same events
    std::vector<TimelineEntry> entries;
};

// Throws Error(errc::not_found) for an empty stream and
// Error(errc::protocol_error) for a stream the fold cannot read.
SagaTimeline build_timeline(const std::vector<RecordedEvent>& events);

json to_json(const TimelineEntry& e);

}  // namespace boong::cli
