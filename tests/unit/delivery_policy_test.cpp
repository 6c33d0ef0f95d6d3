// The consumer's decisions (src/broker/delivery_policy.hpp), without I/O:
// how a handler's end is classified, what becomes of the message, when a
// reclaimed message is quarantined, and how the outage gate opens, probes
// and closes.
#include "broker/delivery_policy.hpp"

#include <boost/asio/error.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>

namespace {

using boong::detail::HandlerResult;
using boong::detail::OutageGate;
using boong::detail::Settle;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

template <class E>
std::exception_ptr thrown(E e) {
    return std::make_exception_ptr(std::move(e));
}

}  // namespace

TEST_CASE("delivery policy: a handler's end is classified by what it threw", "[delivery]") {
    using boong::detail::classify_handler;
    CHECK(classify_handler(nullptr, false).result == HandlerResult::succeeded);
    CHECK(classify_handler(thrown(std::runtime_error("boom")), false).result == HandlerResult::failed);
    CHECK(classify_handler(thrown(std::runtime_error("boom")), false).what == "boom");
    CHECK(classify_handler(thrown(boong::Rejection("no")), false).result == HandlerResult::rejected);
    // Every code that says "a dependency cannot be reached", and only those.
    CHECK(classify_handler(thrown(boong::Unavailable("gateway down")), false).result == HandlerResult::unavailable);
    CHECK(classify_handler(thrown(boong::Error(boong::errc::store_unavailable, "pg")), false).result ==
          HandlerResult::unavailable);
    CHECK(classify_handler(thrown(boong::Error(boong::errc::broker_unavailable, "redis")), false).result ==
          HandlerResult::unavailable);
    CHECK(classify_handler(thrown(boong::Error(boong::errc::protocol_error, "odd")), false).result ==
          HandlerResult::failed);
    CHECK(classify_handler(thrown(boong::Error(boong::errc::concurrency_conflict, "raced")), false).result ==
          HandlerResult::failed);
    CHECK(classify_handler(thrown(42), false).result == HandlerResult::failed);
    CHECK(classify_handler(thrown(42), false).what == "unknown exception");
    // Cancelled by our own stop: whatever it threw, it is nobody's fault.
    for (auto e : {thrown(std::runtime_error("x")), thrown(boong::Rejection("x")), thrown(boong::Unavailable("x")),
                   thrown(boong::Error(boost::asio::error::operation_aborted, "stop"))}) {
        CHECK(classify_handler(e, true).result == HandlerResult::abandoned);
    }
}

TEST_CASE("delivery policy: what becomes of a message after its handler", "[delivery]") {
    using boong::detail::settle;
    CHECK(settle(HandlerResult::succeeded, 1, 3) == Settle::ack);
    CHECK(settle(HandlerResult::succeeded, 9, 3) == Settle::ack);
    CHECK(settle(HandlerResult::failed, 1, 3) == Settle::redeliver);
    CHECK(settle(HandlerResult::failed, 2, 3) == Settle::redeliver);
    CHECK(settle(HandlerResult::failed, 3, 3) == Settle::dead_letter);
    CHECK(settle(HandlerResult::failed, 4, 3) == Settle::dead_letter);
    CHECK(settle(HandlerResult::rejected, 1, 3) == Settle::dead_letter);
    // An outage never counts, however many deliveries the message had.
    CHECK(settle(HandlerResult::unavailable, 1, 3) == Settle::hold);
    CHECK(settle(HandlerResult::unavailable, 3, 3) == Settle::hold);
    CHECK(settle(HandlerResult::unavailable, 1000, 3) == Settle::hold);
    CHECK(settle(HandlerResult::abandoned, 3, 3) == Settle::leave_pending);
}

TEST_CASE("delivery policy: a reclaimed message past max_deliveries is quarantined", "[delivery]") {
    using boong::detail::reclaim;
    using boong::detail::Reclaim;
    CHECK(reclaim(1, 3) == Reclaim::deliver);
    CHECK(reclaim(2, 3) == Reclaim::deliver);
    CHECK(reclaim(3, 3) == Reclaim::quarantine);
    CHECK(reclaim(50, 3) == Reclaim::quarantine);
    CHECK(reclaim(1, 1) == Reclaim::quarantine);
    const auto reason = boong::detail::quarantine_reason(3, "segfault");
    CHECK_THAT(reason, Catch::StartsWith("quarantined: 3 deliveries never settled"));
    CHECK_THAT(reason, Catch::Contains("last error: segfault"));
    CHECK_THAT(boong::detail::quarantine_reason(3, ""), !Catch::Contains("last error"));
}

TEST_CASE("delivery policy: the outage gate opens on the first unavailability, probes with growing backoff, and "
          "closes when a dependency answers",
          "[delivery]") {
    // No jitter, so the delays are exact: 100, 200, 400, 400 ms.
    const boong::RetryPolicy backoff{1, 100ms, 2.0, 400ms, 0.0};
    OutageGate gate(backoff, 7);
    const auto t0 = Clock::now();
    CHECK_FALSE(gate.open());
    CHECK_FALSE(gate.probe_due(t0 + 1h));
    CHECK_FALSE(gate.answered());  // nothing to end

    CHECK(gate.unavailable(t0, false));  // begins
    CHECK(gate.open());
    CHECK(gate.since() == t0);
    CHECK(gate.failures() == 1);
    CHECK(gate.next_probe() == t0 + 100ms);
    // Stragglers (handlers that were running) neither restart nor lengthen it.
    CHECK_FALSE(gate.unavailable(t0 + 10ms, false));
    CHECK(gate.failures() == 1);
    CHECK(gate.next_probe() == t0 + 100ms);

    CHECK_FALSE(gate.probe_due(t0 + 99ms));
    CHECK(gate.probe_due(t0 + 100ms));
    gate.probe_started();
    CHECK(gate.probing());
    CHECK_FALSE(gate.probe_due(t0 + 1h));  // one probe at a time

    // The probe fails: the next waits twice as long, then the cap holds.
    CHECK_FALSE(gate.unavailable(t0 + 110ms, true));
    CHECK(gate.failures() == 2);
    CHECK(gate.next_probe() == t0 + 110ms + 200ms);
    gate.probe_started();
    gate.unavailable(t0 + 400ms, true);
    CHECK(gate.next_probe() == t0 + 400ms + 400ms);
    gate.probe_started();
    gate.unavailable(t0 + 900ms, true);
    CHECK(gate.next_probe() == t0 + 900ms + 400ms);
    CHECK(gate.failures() == 4);

    // A probe cut short by a stop tells nothing: the next is due at once.
    gate.probe_started();
    gate.probe_inconclusive(t0 + 950ms);
    CHECK(gate.probe_due(t0 + 950ms));

    // Any handler that reaches its dependencies ends it.
    CHECK(gate.answered());
    CHECK_FALSE(gate.open());
    CHECK_FALSE(gate.probing());
    CHECK_FALSE(gate.answered());
    // The next outage starts over from the first delay.
    CHECK(gate.unavailable(t0 + 2s, false));
    CHECK(gate.next_probe() == t0 + 2s + 100ms);
}

TEST_CASE("delivery policy: probe delays are jittered within the policy's bounds and differ between consumers",
          "[delivery]") {
    const boong::RetryPolicy backoff{1, 1000ms, 2.0, 5000ms, 0.2};
    const auto t0 = Clock::now();
    bool differ = false;
    for (std::uint64_t salt = 0; salt < 50; ++salt) {
        OutageGate a(backoff, salt), b(backoff, salt + 1000);
        a.unavailable(t0, false);
        b.unavailable(t0, false);
        CHECK(a.next_probe() - t0 >= 800ms);
        CHECK(a.next_probe() - t0 <= 1200ms);
        differ = differ || a.next_probe() != b.next_probe();
        for (int i = 0; i < 10; ++i) {
            a.probe_started();
            a.unavailable(t0, true);
            CHECK(a.next_probe() - t0 <= 5000ms);
        }
    }
    CHECK(differ);
}
