// Retry, timeout and compensation policies for saga steps.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>

namespace boong {

using std::chrono::milliseconds;

// How often, and how far apart, an operation is attempted.
// Attempt n (1-based) that failed waits
//   min(max_delay, initial_delay * multiplier^(n-1)) * (1 +/- jitter)
// before attempt n+1. A jitter of 0.2 spreads each delay over +/-20% so that
// sagas failing together do not retry together.
struct RetryPolicy {
    int attempts = 3;                 // total attempts, >= 1 (1 = no retry)
    milliseconds initial_delay{1000};
    double multiplier = 2.0;          // >= 1
    milliseconds max_delay{30000};
    double jitter = 0.2;              // in [0, 1]

    friend bool operator==(const RetryPolicy&, const RetryPolicy&) = default;
};

// The policy of one step: how its action and its compensation are retried and
// how long each attempt may take. A zero timeout means "no timeout".
struct StepPolicy {
    RetryPolicy retry{};
    milliseconds timeout{30000};
    RetryPolicy compensation_retry{};
    milliseconds compensation_timeout{5000};
    // A step that gave up by timing out, being cancelled or throwing anything
    // but boong::Rejection may have had its effect anyway (a charge that went
    // through before the reply was lost). When true, such a step is
    // compensated too, so its compensation must be a no-op when there is
    // nothing to undo (look the idempotency key up). A Rejection says nothing
    // happened, so it is never compensated.
    bool compensate_uncertain = false;

    friend bool operator==(const StepPolicy&, const StepPolicy&) = default;
};

// Options of one saga type. `defaults` applies to every step unless `steps`
// names the step; an override naming no step of the saga is refused when the
// runner is built.
struct SagaOptions {
    StepPolicy defaults{};
    std::map<std::string, StepPolicy, std::less<>> steps;
    // While a step or compensation fails because a dependency cannot be
    // reached (boong::is_unavailable: the store, the broker, or a step
    // throwing boong::Unavailable): how soon it is tried again. Such tries
    // are not attempts (the retry policy does not count them) and go on
    // until the dependency answers, the saga's deadline passes, or it is
    // stopped. (When the saga's own events cannot be stored, its run ends
    // with store_unavailable, the saga resumable as it stood.) Attempts unused.
    RetryPolicy outage_backoff{1, milliseconds(100), 2.0, milliseconds(5000), 0.2};

    const StepPolicy& policy_for(std::string_view step) const {
        auto it = steps.find(step);
        return it == steps.end() ? defaults : it->second;
    }
};

// Throws boong::Error(errc::invalid_config) naming `where` and the field when a
// value is out of range (attempts < 1, negative delays, multiplier < 1,
// jitter outside [0,1], max_delay < initial_delay, negative timeouts).
void validate(const RetryPolicy& p, std::string_view where);
void validate(const StepPolicy& p, std::string_view where);
void validate(const SagaOptions& o);

}  // namespace boong
