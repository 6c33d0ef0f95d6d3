// The decisions every broker's consumer takes, as pure functions and one small
// state machine, so that they are written once and tested without I/O:
// what becomes of a message once its handler has run, whether a reclaimed
// message may be handled again, and when a consumer paused by an outage tries
// again (docs/guarantees.md, "Outages" and "Poison messages").
#pragma once

#include <boong/detail/backoff.hpp>
#include <boong/error.hpp>
#include <boong/policy.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <string>

namespace boong::detail {

// How a handler ended.
enum class HandlerResult {
    succeeded,
    failed,       // the message's own failure: counts towards max_deliveries
    rejected,     // boong::Rejection: can never succeed
    unavailable,  // a dependency could not be reached (boong::is_unavailable): not the message's fault
    abandoned,    // our own stop cancelled it
};

struct HandlerOutcome {
    HandlerResult result = HandlerResult::succeeded;
    std::string what;  // the exception's message, for failures
};

// `error` is what the handler threw (null: it completed); `cancelled_by_stop`
// whether the consumer's own shutdown cancelled it (which wins: whatever it
// threw then, the message stays pending for another consumer).
inline HandlerOutcome classify_handler(const std::exception_ptr& error, bool cancelled_by_stop) {
    if (!error) return {};
    HandlerOutcome o{HandlerResult::failed, describe(error)};
    if (cancelled_by_stop) {
        o.result = HandlerResult::abandoned;
    } else if (is_unavailable(error)) {
        o.result = HandlerResult::unavailable;
    } else {
        try {
            std::rethrow_exception(error);
        } catch (const Rejection&) {
            o.result = HandlerResult::rejected;
        } catch (...) {
        }
    }
    return o;
}

// What the consumer does with the message next.
enum class Settle {
    ack,            // done
    redeliver,      // leave it pending: delivered again after the visibility timeout
    dead_letter,    // to "<topic>.dlq", with the reason
    hold,           // keep it here until the outage ends (no delivery counted)
    leave_pending,  // stopping: another consumer takes it
};

// `delivery_count` counts this delivery (1 for the first).
constexpr Settle settle(HandlerResult result, int delivery_count, int max_deliveries) noexcept {
    switch (result) {
        case HandlerResult::succeeded: return Settle::ack;
        case HandlerResult::rejected: return Settle::dead_letter;
        case HandlerResult::unavailable: return Settle::hold;
        case HandlerResult::abandoned: return Settle::leave_pending;
        case HandlerResult::failed: break;
    }
    return delivery_count >= max_deliveries ? Settle::dead_letter : Settle::redeliver;
}

// A message pending longer than the visibility timeout is being reclaimed
// after `deliveries_before` deliveries that never settled it (each one's
// handler failed, or its consumer died or hung). Past max_deliveries it is
// quarantined: dead-lettered as it is, never decoded or handled again, so
// that a message which kills its consumer stops doing so.
enum class Reclaim { deliver, quarantine };

constexpr Reclaim reclaim(int deliveries_before, int max_deliveries) noexcept {
    return deliveries_before >= max_deliveries ? Reclaim::quarantine : Reclaim::deliver;
}

// The reason a quarantined message's dead letter gives.
inline std::string quarantine_reason(int deliveries, const std::string& last_error) {
    std::string r = "quarantined: " + std::to_string(deliveries) +
                    " deliveries never settled (handlers failed, or their consumers died or hung while handling "
                    "it); not decoded or handled again";
    if (!last_error.empty()) r += " (last error: " + last_error + ")";
    return r;
}

// A consumer's view of its dependencies. Closed while they answer; open
// (paused) from the first handler that found one unavailable until one
// answers again. While open, the consumer fetches nothing and holds what
// failed; one held message at a time is tried again (a probe) after a backoff
// that grows with each probe that fails. Handlers already running when the
// outage began that fail too are stragglers: they neither start nor lengthen it.
class OutageGate {
public:
    using time_point = std::chrono::steady_clock::time_point;

    explicit OutageGate(RetryPolicy backoff, std::uint64_t salt = 0) noexcept : backoff_(backoff), salt_(salt) {}

    bool open() const noexcept { return probes_failed_ > 0; }
    // When the outage began (meaningful while open).
    time_point since() const noexcept { return since_; }
    // Probes that failed in this outage (1 once it began).
    int failures() const noexcept { return probes_failed_; }

    // A handler found a dependency unavailable at `now`; `probe`: it was the
    // probe. True when this began an outage.
    bool unavailable(time_point now, bool probe) noexcept {
        if (!open()) {
            since_ = now;
            probes_failed_ = 1;
            probing_ = false;
            next_probe_ = now + backoff_delay(backoff_, probes_failed_, salt_);
            return true;
        }
        if (probe) {
            ++probes_failed_;
            probing_ = false;
            next_probe_ = now + backoff_delay(backoff_, probes_failed_, salt_ + static_cast<std::uint64_t>(probes_failed_));
        }
        return false;
    }

    // A handler reached its dependencies: it succeeded, or failed for a
    // reason of the message's own. True when this ended an outage.
    bool answered() noexcept {
        const bool ended = open();
        probes_failed_ = 0;
        probing_ = false;
        return ended;
    }

    // A probe (cancelled by a stop, say) ended without telling either way:
    // the next one is due at once.
    void probe_inconclusive(time_point now) noexcept {
        probing_ = false;
        next_probe_ = now;
    }

    // Whether a held message should be tried now.
    bool probe_due(time_point now) const noexcept { return open() && !probing_ && now >= next_probe_; }
    void probe_started() noexcept { probing_ = true; }
    bool probing() const noexcept { return probing_; }
    time_point next_probe() const noexcept { return next_probe_; }

private:
    RetryPolicy backoff_;
    std::uint64_t salt_;
    int probes_failed_ = 0;
    bool probing_ = false;
    time_point since_{};
    time_point next_probe_{};
};

}  // namespace boong::detail
