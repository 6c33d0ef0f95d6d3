// Running one attempt of a step as a child coroutine with its own deadline.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <exception>
#include <memory>

namespace boong::detail {

struct AttemptResult {
    std::exception_ptr error;  // null when the attempt completed
    bool timed_out = false;    // the attempt was cancelled because its deadline passed
};

// Shared by the child coroutine's completion, the deadline timer and the
// parent's cancellation slot; the last of them to finish frees it.
template <class Executor>
struct AttemptState {
    explicit AttemptState(const Executor& ex) : timer(ex) {}
    boost::asio::cancellation_signal signal;
    boost::asio::steady_timer timer;
    bool timed_out = false;
    bool finished = false;
};

// Runs `attempt` on `ex` (a coroutine of its own, so that a deadline or a
// cancellation can interrupt it without touching the caller's other work) and
// completes with its outcome. With a positive `timeout` the attempt is
// cancelled (terminal) when it passes; cancelling the awaiting operation is
// forwarded to the attempt. An attempt that ignores cancellation still runs
// to its end: cancellation in Asio is cooperative.
template <class Executor>
boost::asio::awaitable<AttemptResult> run_attempt(Executor ex, boost::asio::awaitable<void> attempt,
                                                  std::chrono::steady_clock::duration timeout) {
    namespace asio = boost::asio;
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(AttemptResult)>(
        [ex, timeout](auto handler, asio::awaitable<void> a) {
            auto state = std::make_shared<AttemptState<Executor>>(ex);
            auto slot = asio::get_associated_cancellation_slot(handler);
            if (slot.is_connected()) {
                slot.assign([state](asio::cancellation_type type) {
                    if (!state->finished) state->signal.emit(type);
                });
            }
            if (timeout > std::chrono::steady_clock::duration::zero()) {
                state->timer.expires_after(timeout);
                state->timer.async_wait([state](boost::system::error_code ec) {
                    if (ec || state->finished) return;
                    state->timed_out = true;
                    state->signal.emit(asio::cancellation_type::terminal);
                });
            }
            asio::co_spawn(ex, std::move(a),
                           asio::bind_cancellation_slot(
                               state->signal.slot(),
                               [state, slot, h = std::move(handler)](std::exception_ptr e) mutable {
                                   state->finished = true;
                                   if (slot.is_connected()) slot.clear();
                                   state->timer.cancel();
                                   std::move(h)(AttemptResult{e, state->timed_out && e != nullptr});
                               }));
        },
        asio::use_awaitable, std::move(attempt));
}

}  // namespace boong::detail
