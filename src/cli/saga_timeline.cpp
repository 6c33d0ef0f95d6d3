#include "saga_timeline.hpp"

#include <chrono>
#include <map>
#include <tuple>

namespace boong::cli {

namespace {

using AttemptKey = std::tuple<bool, std::string, int>;  // compensation?, step, attempt

milliseconds between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration_cast<milliseconds>(to - from);
}

}  // namespace

SagaTimeline build_timeline(const std::vector<RecordedEvent>& events) {
    SagaTimeline t;
    t.state = fold_saga(events);
    // Attempts still open, by step and attempt: parallel branches interleave.
    std::map<AttemptKey, std::size_t> open;
    auto start = [&](bool compensation, const json& p, Clock::time_point at) {
        TimelineEntry e;
        e.kind = compensation ? "compensation" : "step";
        e.name = p.value("step", "");
        e.attempt = p.value("attempt", 0);
        e.at = at;
        e.outcome = "running";
        open[{compensation, e.name, e.attempt}] = t.entries.size();
        t.entries.push_back(std::move(e));
    };
    // The open attempt an end event closes; one without a recorded start
    // (written by hand, or by an older engine) gets a row of its own.
    auto attempt_of = [&](bool compensation, const json& p, Clock::time_point at) -> TimelineEntry& {
        const AttemptKey key{compensation, p.value("step", ""), p.value("attempt", 0)};
        if (auto it = open.find(key); it != open.end()) return t.entries[it->second];
        start(compensation, p, at);
        return t.entries.back();
    };
    auto finish = [&](bool compensation, const json& p, Clock::time_point at, std::string outcome) {
        TimelineEntry& e = attempt_of(compensation, p, at);
        e.duration = between(e.at, at);
        e.outcome = std::move(outcome);
        open.erase({compensation, e.name, e.attempt});
        return &e;
    };
    auto fail = [&](bool compensation, const json& p, Clock::time_point at) {
        const std::string kind = p.value("kind", "");
        if (kind == "unavailable") {
            // Not the attempt's end: the step is tried again, same attempt, once it answers.
            attempt_of(compensation, p, at).outages.push_back(p.value("error", ""));
            return;
        }
        TimelineEntry* e = finish(compensation, p, at, "failed");
        e->failure_kind = kind;
        e->error = p.value("error", "");
        e->final = p.value("final", false);
    };
    auto saga_row = [&](const RecordedEvent& r, std::string outcome, std::string reason) {
        TimelineEntry e;
        e.kind = "saga";
        e.name = r.event.type;
        e.at = r.event.metadata.timestamp;
        e.outcome = std::move(outcome);
        e.error = std::move(reason);
        if (const auto& x = r.event.metadata.extra; x.is_object()) {
            e.owner = x.value("owner", "");
            if (auto l = x.find("lease_ms"); l != x.end() && l->is_number_integer()) e.lease = milliseconds(l->get<std::int64_t>());
        }
        t.entries.push_back(std::move(e));
    };
    for (const auto& r : events) {
        const auto& type = r.event.type;
        const auto& p = r.event.payload;
        const auto at = r.event.metadata.timestamp;
        if (type == saga_event::step_started) {
            start(false, p, at);
        } else if (type == saga_event::step_completed) {
            finish(false, p, at, "completed");
        } else if (type == saga_event::step_failed) {
            fail(false, p, at);
        } else if (type == saga_event::step_compensating) {
            start(true, p, at);
        } else if (type == saga_event::step_compensated) {
            finish(true, p, at, "compensated");
        } else if (type == saga_event::compensation_failed) {
            fail(true, p, at);
        } else if (type == saga_event::started) {
            saga_row(r, "running", "");
        } else if (type == saga_event::resumed) {
            saga_row(r, p.value("phase", ""), "");
        } else if (type == saga_event::compensation_started) {
            saga_row(r, "compensating",
                     p.value("failed_step", "") + " failed (" + p.value("kind", "") + "): " + p.value("error", ""));
        } else if (type == saga_event::completed) {
            saga_row(r, "completed", "");
        } else if (type == saga_event::compensated) {
            saga_row(r, "compensated", "");
        } else if (type == saga_event::failed) {
            saga_row(r, "failed", "compensation of " + p.value("step", "") + " gave up: " + p.value("error", ""));
        } else if (type == saga_event::blocked) {
            saga_row(r, "blocked", p.value("reason", ""));
        } else if (type == saga_event::migrated) {
            const json to = p.value("to", json::object());
            saga_row(r, "migrated",
                     "to version " + (to.contains("version") ? to["version"].dump() : std::string("?")) + " by " +
                         p.value("by", "?") + ": " + p.value("reason", ""));
        } else if (type == saga_event::retry_requested) {
            saga_row(r, "retry requested",
                     "by " + p.value("by", "?") + (p.value("reason", "").empty() ? "" : ": " + p.value("reason", "")));
        } else if (type == saga_event::cancel_requested) {
            saga_row(r, "cancel requested", "by " + p.value("by", "?") + ": " + p.value("reason", ""));
        } else {
            saga_row(r, "", "");  // an event this boong does not know: shown, not interpreted
        }
    }
    return t;
}

json to_json(const TimelineEntry& e) {
    json j = {
        {"kind", e.kind},
        {"name", e.name},
        {"attempt", e.kind == "saga" ? json(nullptr) : json(e.attempt)},
        {"at", format_timestamp(e.at)},
        {"duration_ms", e.duration ? json(e.duration->count()) : json(nullptr)},
        {"outcome", e.outcome},
        {"failure_kind", e.failure_kind.empty() ? json(nullptr) : json(e.failure_kind)},
        {"error", e.error.empty() ? json(nullptr) : json(e.error)},
        {"final", e.kind == "saga" || e.outcome != "failed" ? json(nullptr) : json(e.final)},
        {"outages", e.outages},
        {"owner", e.owner.empty() ? json(nullptr) : json(e.owner)},
        {"lease_ms", e.lease ? json(e.lease->count()) : json(nullptr)},
    };
    return j;
}

}  // namespace boong::cli
