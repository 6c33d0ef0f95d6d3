// Test support: run a coroutine to completion on a fresh io_context, with a
// wall-clock guard so a hung test fails instead of hanging CI.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <type_traits>

namespace boong::test {

namespace asio = boost::asio;

// Runs `make()`'s awaitable on `ioc` until it completes and returns its
// result (rethrowing its exception). Fails if it does not complete within
// `limit`. Work that stays on the io_context afterwards is allowed: for tests
// whose components (orchestrators, relays) keep running in the background.
template <class MakeAwaitable>
auto run_until_done(asio::io_context& ioc, MakeAwaitable&& make,
                    std::chrono::steady_clock::duration limit = std::chrono::seconds(60)) {
    using Awaitable = std::invoke_result_t<MakeAwaitable&>;
    using T = typename Awaitable::value_type;
    std::exception_ptr error;
    bool done = false;
    std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> result{};
    if constexpr (std::is_void_v<T>) {
        asio::co_spawn(ioc, make(), [&](std::exception_ptr e) {
            error = e;
            done = true;
        });
    } else {
        asio::co_spawn(ioc, make(), [&](std::exception_ptr e, T value) {
            error = e;
            if (!e) result.emplace(std::move(value));
            done = true;
        });
    }
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < deadline) {
        if (ioc.run_one_for(std::chrono::milliseconds(50)) == 0 && ioc.stopped()) ioc.restart();
    }
    if (!done) throw std::runtime_error("test coroutine did not complete in time");
    if (error) std::rethrow_exception(error);
    if constexpr (!std::is_void_v<T>) return std::move(*result);
}

// The same, and then requires the io_context to run out of work: a timer or
// coroutine still pending after the test coroutine is a leak.
template <class MakeAwaitable>
auto run(asio::io_context& ioc, MakeAwaitable&& make,
         std::chrono::steady_clock::duration limit = std::chrono::seconds(60)) {
    using T = typename std::invoke_result_t<MakeAwaitable&>::value_type;
    std::exception_ptr error;
    std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> result{};
    try {
        if constexpr (std::is_void_v<T>) {
            run_until_done(ioc, make, limit);
        } else {
            result.emplace(run_until_done(ioc, make, limit));
        }
    } catch (...) {
        error = std::current_exception();
    }
    // Drain completions that are already due, then require no work left.
    ioc.restart();
    ioc.run_for(std::chrono::milliseconds(500));
    const bool leaked = !ioc.stopped();
    if (error) std::rethrow_exception(error);
    if (leaked) throw std::runtime_error("work was left on the io_context after the test coroutine");
    if constexpr (!std::is_void_v<T>) return std::move(*result);
}

// Runs `ioc` (and what keeps running on it in the background) until `done()`
// holds or `limit` passes; whether it holds.
inline bool run_until(asio::io_context& ioc, const std::function<bool()>& done,
                      std::chrono::milliseconds limit = std::chrono::seconds(15)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < end) {
        ioc.restart();
        ioc.run_for(std::chrono::milliseconds(5));
    }
    return done();
}

// Suspends the calling coroutine for `d` on its executor.
inline asio::awaitable<void> sleep_for(std::chrono::steady_clock::duration d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable);
}

}  // namespace boong::test
