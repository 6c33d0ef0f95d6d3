// Where a saga's step attempts run (the saga's body, or one branch of a
// parallel group), and the one timer per lane that interrupts an attempt at
// its deadline. Private to the saga engine.
#pragma once

#include <boong/detail/attempt_policy.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <exception>
#include <memory>
#include <optional>
#include <utility>

namespace boong::detail {

// A strand for one saga. On an io_context, a strand of its executor type fits
// any_io_executor's small buffer, where a strand<any_io_executor> would cost an
// allocation on every copy of the executor.
inline boost::asio::any_io_executor make_saga_strand(const boost::asio::any_io_executor& ex) {
    namespace asio = boost::asio;
    if (const auto* io = ex.target<asio::io_context::executor_type>()) return asio::make_strand(*io);
    return asio::make_strand(ex);
}

// A coroutine of the saga (its body, or one branch of a parallel group), with
// the signal that interrupts whatever it awaits. A step attempt runs inline
// on its lane. Its deadline is watched by one timer per lane that stays armed
// across attempts: an attempt only moves `deadline`, and the timer, when it
// fires early, re-arms itself for the deadline then in force. Arming a timer
// for every attempt would cost more than the step. Shared (a shared_ptr) with
// the timer's handler, which may outlive the lane's coroutine.
struct AttemptLane {
    using time_point = boost::asio::steady_timer::time_point;

    AttemptLane(boost::asio::cancellation_signal& s, const boost::asio::any_io_executor& e) : signal(s), ex(e) {}

    boost::asio::cancellation_signal& signal;
    boost::asio::any_io_executor ex;
    // Made when first armed: most attempts complete before that (see
    // begin_attempt), and making a timer looks up its service under a mutex.
    std::optional<boost::asio::steady_timer> timer;
    time_point deadline = time_point::max();  // of the running attempt; max when none or no timeout
    bool armed = false;
    bool arm_queued = false;  // see begin_attempt
    bool timed_out = false;

    // Ends the lane: no timer may be left pending on the io_context.
    void close() {
        deadline = time_point::max();
        if (armed) timer->cancel();
    }

    // Whether the timer must be (re-)armed for the running attempt.
    bool needs_arming() const {
        return deadline != time_point::max() && (!armed || timer->expiry() > deadline);
    }

    // Arms (or re-arms) the lane's timer; static so the handler holds the lane alive.
    static void arm(const std::shared_ptr<AttemptLane>& lane, time_point at) {
        lane->armed = true;
        if (!lane->timer) lane->timer.emplace(lane->ex);
        lane->timer->expires_at(at);
        lane->timer->async_wait([lane](boost::system::error_code ec) {
            if (ec) return;  // cancelled or re-armed: the newer wait is in charge
            lane->armed = false;
            if (lane->deadline == time_point::max()) return;  // no attempt running: stay idle
            if (boost::asio::steady_timer::clock_type::now() < lane->deadline) {
                arm(lane, lane->deadline);  // a later attempt moved the deadline
                return;
            }
            lane->timed_out = true;
            lane->deadline = time_point::max();
            lane->signal.emit(boost::asio::cancellation_type::terminal);
        });
    }
};

// One attempt of an action or compensation on `lane`, interrupted at
// `deadline` (time_point::max() for none): begin_attempt, then the caller
// awaits the work itself (no coroutine frame of its own), then end_attempt.
// The timer is armed from a handler queued behind the attempt: an attempt
// that completes without suspending (the work was at hand) is over before it
// runs, and never costs a timer — arming one is a system call whenever it
// becomes the earliest. The deadline itself is fixed here, so a step that
// does suspend is interrupted on time all the same.
inline void begin_attempt(const std::shared_ptr<AttemptLane>& lane, AttemptLane::time_point deadline) {
    lane->timed_out = false;
    lane->deadline = deadline;
    if (lane->arm_queued || !lane->needs_arming()) return;
    lane->arm_queued = true;
    boost::asio::post(lane->ex, [lane] {
        lane->arm_queued = false;
        if (lane->needs_arming()) AttemptLane::arm(lane, lane->deadline);
    });
}

inline AttemptResult end_attempt(AttemptLane& lane, std::exception_ptr error) {
    lane.deadline = AttemptLane::time_point::max();
    const bool timed_out = error != nullptr && lane.timed_out;
    return AttemptResult{std::move(error), timed_out};
}

}  // namespace boong::detail
