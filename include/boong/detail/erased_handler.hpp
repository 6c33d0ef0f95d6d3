// A type-erased completion handler for backends whose driver code lives in a
// .cpp file: the templated front-end wraps the caller's handler once, and the
// backend completes it later from any thread.
//
// Why not asio::any_completion_handler: in Boost 1.81 move-constructing one
// from another recurses (and crashes), and it neither keeps the caller's
// executor busy while the operation runs nor clears the cancellation slot.
// This small holder does exactly what the backends need and no more.
#pragma once

#include <boong/error.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

namespace boong::detail {

// What a void operation completes with, so one template serves both shapes.
struct Nothing {};

template <class T>
using value_or_nothing = std::conditional_t<std::is_void_v<T>, Nothing, T>;

// Holds a handler of signature void(std::exception_ptr, T), or
// void(std::exception_ptr) when T is void.
//  - While held, the handler's associated executor counts outstanding work, so
//    an io_context does not run out of work while the operation is pending.
//  - complete() may be called from any thread, once; the handler always runs
//    through its associated executor (post, never inline).
//  - on_cancel() hooks the handler's cancellation slot, if it has one; the
//    slot is cleared before the handler runs, as Asio requires.
//  - Destroyed without complete(), it completes with operation_aborted: a
//    handler is never dropped silently (for a coroutine that would leak it).
template <class T>
class ErasedHandler {
public:
    using value_type = value_or_nothing<T>;
    using cancel_function = std::function<void(boost::asio::cancellation_type)>;

    ErasedHandler() = default;

    template <class Handler, class Executor>
    ErasedHandler(Handler&& handler, const Executor& fallback)
        : impl_(std::make_unique<Impl<std::decay_t<Handler>, Executor>>(std::forward<Handler>(handler), fallback)) {}

    ErasedHandler(ErasedHandler&&) noexcept = default;
    ErasedHandler& operator=(ErasedHandler&& other) noexcept {
        if (this != &other) {
            abandon();
            impl_ = std::move(other.impl_);
        }
        return *this;
    }
    ErasedHandler(const ErasedHandler&) = delete;
    ErasedHandler& operator=(const ErasedHandler&) = delete;
    ~ErasedHandler() { abandon(); }

    // False once completed (or when default-constructed).
    explicit operator bool() const noexcept { return impl_ != nullptr; }

    void complete(std::exception_ptr error, value_type value = {}) {
        if (auto impl = std::move(impl_)) impl->complete(std::move(impl), std::move(error), std::move(value));
    }

    // Installs `f` in the handler's cancellation slot. Call it on the thread
    // that initiated the operation (slots are not thread-safe), before the
    // operation can complete; `f` runs on whichever thread emits the signal.
    void on_cancel(cancel_function f) {
        if (impl_) impl_->on_cancel(std::move(f));
    }

private:
    struct Base {
        virtual ~Base() = default;
        virtual void complete(std::unique_ptr<Base> self, std::exception_ptr error, value_type value) = 0;
        virtual void on_cancel(cancel_function f) = 0;
    };

    template <class Handler, class Executor>
    struct Impl final : Base {
        using handler_executor = boost::asio::associated_executor_t<Handler, Executor>;
        using tracked_executor = std::decay_t<decltype(boost::asio::prefer(
            std::declval<const handler_executor&>(), boost::asio::execution::outstanding_work.tracked))>;

        template <class H>
        Impl(H&& h, const Executor& fallback)
            : handler(std::forward<H>(h)),
              work(boost::asio::prefer(boost::asio::get_associated_executor(handler, fallback),
                                       boost::asio::execution::outstanding_work.tracked)) {}

        void complete(std::unique_ptr<Base> self, std::exception_ptr error, value_type value) override {
            auto slot = boost::asio::get_associated_cancellation_slot(handler);
            // The work-tracking executor travels with the handler, so the
            // caller's context stays busy until the handler has run.
            auto ex = work;
            boost::asio::post(ex, [h = std::move(handler), w = std::move(work), slot, error = std::move(error),
                                   value = std::move(value)]() mutable {
                if (slot.is_connected()) slot.clear();
                if constexpr (std::is_void_v<T>) {
                    (void)value;
                    std::move(h)(std::move(error));
                } else {
                    std::move(h)(std::move(error), std::move(value));
                }
            });
            self.reset();
        }

        void on_cancel(cancel_function f) override {
            auto slot = boost::asio::get_associated_cancellation_slot(handler);
            if (slot.is_connected()) slot.template emplace<Hook>(std::move(f));
        }

        struct Hook {
            // A constructor, not an aggregate: Asio constructs it with
            // parentheses, which only newer compilers accept for aggregates.
            explicit Hook(cancel_function fn) : f(std::move(fn)) {}
            cancel_function f;
            void operator()(boost::asio::cancellation_type type) { f(type); }
        };

        Handler handler;
        tracked_executor work;
    };

    void abandon() noexcept {
        if (!impl_) return;
        try {
            complete(std::make_exception_ptr(
                Error(boost::asio::error::make_error_code(boost::asio::error::operation_aborted),
                      "the operation was abandoned before it completed")));
        } catch (...) {
            // Posting failed (out of memory): nothing else can be done here.
        }
    }

    std::unique_ptr<Base> impl_;
};

// A completion handler that completes an ErasedHandler: what the type-erased
// fronts (AnyBroker, AnyEventStore) hand to the backend they hold.
template <class T>
struct CompleteErased {
    ErasedHandler<T> done;
    void operator()(std::exception_ptr e) requires std::is_void_v<T> { done.complete(std::move(e)); }
    template <class V>
    requires(!std::is_void_v<T>) void operator()(std::exception_ptr e, V&& value) {
        done.complete(std::move(e), std::forward<V>(value));
    }
};

}  // namespace boong::detail
