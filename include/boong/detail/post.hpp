#pragma once

#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>

#include <exception>
#include <type_traits>
#include <utility>

namespace boong::detail {

// The completion signature of an operation yielding T (or nothing).
template <class T>
struct completion {
    using signature = void(std::exception_ptr, T);
};
template <>
struct completion<void> {
    using signature = void(std::exception_ptr);
};

// Completes `handler` with `args` through its associated executor (falling
// back to `ex`), never inline: an initiating function must not call its
// handler before returning.
template <class Executor, class Handler, class... Args>
void post_completion(const Executor& ex, Handler&& handler, Args&&... args) {
    auto hex = boost::asio::get_associated_executor(handler, ex);
    boost::asio::post(hex, boost::asio::append(std::forward<Handler>(handler), std::forward<Args>(args)...));
}

// An async operation whose work, `op()` -> T, only touches memory: it runs
// at once, and its result or exception is posted to the handler (the
// in-memory models of the concepts).
template <class T, class Executor, class Token, class Op>
auto async_immediate(const Executor& ex, Token&& token, Op op) {
    return boost::asio::async_initiate<Token, typename completion<T>::signature>(
        [ex](auto handler, Op o) {
            std::exception_ptr error;
            if constexpr (std::is_void_v<T>) {
                try {
                    o();
                } catch (...) {
                    error = std::current_exception();
                }
                post_completion(ex, std::move(handler), error);
            } else {
                T result{};
                try {
                    result = o();
                } catch (...) {
                    error = std::current_exception();
                }
                post_completion(ex, std::move(handler), error, std::move(result));
            }
        },
        token, std::move(op));
}

}  // namespace boong::detail
