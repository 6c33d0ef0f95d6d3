// The saga engine's decision after a failed attempt (boong/detail/attempt_policy.hpp),
// without coroutines: classification, then retry, retry in place (an outage)
// or give up, for actions and compensations alike.
#include <boong/detail/attempt_policy.hpp>

#include <boost/asio/error.hpp>

#include <catch2/catch.hpp>

#include <stdexcept>

namespace {

using boong::FailureKind;
using boong::detail::after_failure;
using boong::detail::AttemptResult;
using boong::detail::Next;
using namespace std::chrono_literals;

template <class E>
AttemptResult failed_with(E e) {
    return AttemptResult{std::make_exception_ptr(std::move(e)), false};
}

boong::StepPolicy policy() {
    boong::StepPolicy p;
    p.retry = boong::RetryPolicy{3, 100ms, 2.0, 1000ms, 0.0};
    p.compensation_retry = boong::RetryPolicy{2, 50ms, 3.0, 1000ms, 0.0};
    return p;
}

const boong::RetryPolicy outage{1, 10ms, 2.0, 40ms, 0.0};

}  // namespace

TEST_CASE("attempt policy: failures are classified by what ended the attempt", "[saga][attempt]") {
    using boong::detail::classify_attempt;
    CHECK(classify_attempt(failed_with(std::runtime_error("503")), 5s).kind == FailureKind::transient);
    CHECK(classify_attempt(failed_with(std::runtime_error("503")), 5s).error == "503");
    CHECK(classify_attempt(failed_with(boong::Rejection("declined")), 5s).kind == FailureKind::rejected);
    CHECK(classify_attempt(failed_with(boong::Unavailable("gateway")), 5s).kind == FailureKind::unavailable);
    CHECK(classify_attempt(failed_with(boong::Error(boong::errc::store_unavailable, "pg")), 5s).kind ==
          FailureKind::unavailable);
    CHECK(classify_attempt(failed_with(boong::Error(boong::errc::concurrency_conflict, "raced")), 5s).kind ==
          FailureKind::transient);
    CHECK(classify_attempt(failed_with(42), 5s).error == "unknown exception");
    // A deadline that passed wins over whatever the cancelled attempt threw.
    AttemptResult timed_out{std::make_exception_ptr(boong::Error(boost::asio::error::operation_aborted, "x")), true};
    const auto t = classify_attempt(timed_out, 250ms);
    CHECK(t.kind == FailureKind::timeout);
    CHECK(t.error == "timed out after 250 ms");
}

TEST_CASE("attempt policy: an action is retried with backoff until its attempts run out", "[saga][attempt]") {
    const auto p = policy();
    for (auto kind : {FailureKind::transient, FailureKind::timeout}) {
        auto d = after_failure(kind, 1, 0, false, p, true, outage, 0);
        CHECK(d.next == Next::retry);
        CHECK(d.delay == 100ms);
        d = after_failure(kind, 2, 0, false, p, true, outage, 0);
        CHECK(d.next == Next::retry);
        CHECK(d.delay == 200ms);
        d = after_failure(kind, 3, 0, false, p, true, outage, 0);
        CHECK(d.next == Next::give_up);
        CHECK_FALSE(d.compensate_uncertain);
    }
    // Imposed from outside, or refused: final at once.
    for (auto kind : {FailureKind::rejected, FailureKind::cancelled, FailureKind::deadline}) {
        CHECK(after_failure(kind, 1, 0, false, p, true, outage, 0).next == Next::give_up);
    }
}

TEST_CASE("attempt policy: an outage is the same attempt again, not counted, with a growing delay", "[saga][attempt]") {
    const auto p = policy();
    for (bool compensation : {false, true}) {
        for (int attempt : {1, 3, 50}) {  // even past the policy's attempts
            auto d = after_failure(FailureKind::unavailable, attempt, 1, compensation, p, true, outage, 0);
            CHECK(d.next == Next::retry_outage);
            CHECK(d.delay == 10ms);
            d = after_failure(FailureKind::unavailable, attempt, 3, compensation, p, true, outage, 0);
            CHECK(d.delay == 40ms);
            d = after_failure(FailureKind::unavailable, attempt, 30, compensation, p, true, outage, 0);
            CHECK(d.delay == 40ms);  // capped
            CHECK_FALSE(d.compensate_uncertain);
        }
    }
}

TEST_CASE("attempt policy: compensations follow their own retry policy; a rejection gives up at once",
          "[saga][attempt]") {
    const auto p = policy();
    auto d = after_failure(FailureKind::transient, 1, 0, true, p, true, outage, 0);
    CHECK(d.next == Next::retry);
    CHECK(d.delay == 50ms);
    CHECK(after_failure(FailureKind::timeout, 2, 0, true, p, true, outage, 0).next == Next::give_up);
    CHECK(after_failure(FailureKind::rejected, 1, 0, true, p, true, outage, 0).next == Next::give_up);
    // Never "compensate the compensation".
    auto uncertain = p;
    uncertain.compensate_uncertain = true;
    CHECK_FALSE(after_failure(FailureKind::transient, 2, 0, true, uncertain, true, outage, 0).compensate_uncertain);
}

TEST_CASE("attempt policy: with compensate_uncertain, an action that gave up uncertainly is compensated too",
          "[saga][attempt]") {
    auto p = policy();
    p.compensate_uncertain = true;
    for (auto kind : {FailureKind::transient, FailureKind::timeout, FailureKind::cancelled, FailureKind::deadline}) {
        const auto d = after_failure(kind, 3, 0, false, p, true, outage, 0);
        CHECK(d.next == Next::give_up);
        CHECK(d.compensate_uncertain);
    }
    // A rejection says nothing happened; a step without a compensation has nothing to run.
    CHECK_FALSE(after_failure(FailureKind::rejected, 1, 0, false, p, true, outage, 0).compensate_uncertain);
    CHECK_FALSE(after_failure(FailureKind::transient, 3, 0, false, p, false, outage, 0).compensate_uncertain);
    // Not while retries remain.
    CHECK_FALSE(after_failure(FailureKind::transient, 1, 0, false, p, true, outage, 0).compensate_uncertain);
}
