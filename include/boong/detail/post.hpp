#pragma once

#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/post.hpp>

#include <exception>
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

}  // namespace boong::detail
