// What a saga does after an attempt of a step or of a compensation failed:
// how the failure is classified, and whether to try again (counted or not),
// after how long, or give up. Pure functions, shared by steps and
// compensations and tested without coroutines (tests/unit/attempt_policy_test.cpp).
#pragma once

#include <boong/detail/backoff.hpp>
#include <boong/error.hpp>
#include <boong/policy.hpp>
#include <boong/saga_state.hpp>

#include <boost/system/system_error.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <string>

namespace boong::detail {

// How an attempt ended, as the engine saw it.
struct AttemptResult {
    std::exception_ptr error;  // null when the attempt completed
    bool timed_out = false;    // it failed because its deadline passed
};

// The kind of a failed attempt (not a stop imposed from outside: see
// SagaExecution::interruption) and its message.
struct ClassifiedFailure {
    FailureKind kind = FailureKind::transient;
    std::string error;
};

inline ClassifiedFailure classify_attempt(const AttemptResult& r, std::chrono::milliseconds timeout) {
    ClassifiedFailure f;
    if (r.timed_out) {
        f.kind = FailureKind::timeout;
        f.error = "timed out after " + std::to_string(timeout.count()) + " ms";
        return f;
    }
    try {
        std::rethrow_exception(r.error);
    } catch (const Rejection& e) {
        f.kind = FailureKind::rejected;
        f.error = e.what();
    } catch (const boost::system::system_error& e) {
        if (is_unavailable(e.code())) f.kind = FailureKind::unavailable;
        f.error = e.what();
    } catch (const std::exception& e) {
        f.error = e.what();
    } catch (...) {
        f.error = "unknown exception";
    }
    return f;
}

// What comes after a failed attempt.
enum class Next {
    retry,          // another attempt (attempt + 1), after `delay`
    retry_outage,   // the same attempt again after `delay`: a dependency was down, not counted
    give_up,        // final: compensate (an action) or end the saga failed (a compensation)
};

struct AttemptDecision {
    Next next = Next::give_up;
    std::chrono::milliseconds delay{0};
    // An action that gave up may have had its effect: compensate it too
    // (StepPolicy::compensate_uncertain). Never for a compensation.
    bool compensate_uncertain = false;
};

// After attempt `attempt` (1-based) of an action (`compensation` false) or a
// compensation failed with `kind`. `outage_tries`: tries of this attempt that
// met an outage, this one included when kind is unavailable. `salt` spreads the
// jitter (derived from the saga and the step).
inline AttemptDecision after_failure(FailureKind kind, int attempt, int outage_tries, bool compensation,
                                     const StepPolicy& policy, bool has_compensation, const RetryPolicy& outage_backoff,
                                     std::uint64_t salt) noexcept {
    AttemptDecision d;
    switch (kind) {
        case FailureKind::unavailable:
            d.next = Next::retry_outage;
            d.delay = backoff_delay(outage_backoff, outage_tries, salt ^ 2);
            return d;
        case FailureKind::transient:
        case FailureKind::timeout: {
            const auto& retry = compensation ? policy.compensation_retry : policy.retry;
            if (attempt < retry.attempts) {
                d.next = Next::retry;
                d.delay = backoff_delay(retry, attempt, compensation ? salt ^ 1 : salt);
                return d;
            }
            break;
        }
        case FailureKind::rejected:
            // Nothing happened: never retried, never compensated.
            return d;
        case FailureKind::cancelled:
        case FailureKind::deadline:
        case FailureKind::none:
            break;
    }
    d.next = Next::give_up;
    d.compensate_uncertain = !compensation && policy.compensate_uncertain && has_compensation;
    return d;
}

}  // namespace boong::detail
