// A Broker kept in process memory: for unit tests and the demo. It honours the
// semantics of the Redis Streams backend (consumer groups starting at the
// beginning of a topic, pending messages redelivered after the visibility
// timeout, dead letters, graceful stop) but loses everything when the process ends.
#pragma once

#include <boong/broker.hpp>
#include <boong/detail/erased_handler.hpp>
#include <boong/detail/post.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <cstddef>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boong {

class MemoryBroker {
public:
    using executor_type = boost::asio::any_io_executor;
    using publish_signature = void(std::exception_ptr, std::string);
    using consume_signature = void(std::exception_ptr);

    // Consumers run on strands of `ex`; publish completions fall back to it.
    explicit MemoryBroker(executor_type ex);
    ~MemoryBroker();
    MemoryBroker(const MemoryBroker&) = delete;
    MemoryBroker& operator=(const MemoryBroker&) = delete;

    executor_type get_executor() const { return ex_; }

    // Appends `event` to `topic` and completes with its message id ("<n>-0",
    // n counting from 1 per topic). Thread-safe.
    template <class Token>
    auto async_publish(std::string topic, EventData event, Token&& token) {
        return boost::asio::async_initiate<Token, publish_signature>(
            [this](auto handler, std::string t, EventData e) {
                // Publishing only touches memory: do it now, complete through
                // the handler's executor.
                complete_now(std::move(handler), [&] { return publish(t, std::move(e)); });
            },
            token, std::move(topic), std::move(event));
    }

    // Runs a consumer until the operation gets terminal cancellation through
    // the token's cancellation slot, then stops gracefully; a second one cuts
    // the shutdown grace short. See boong::Broker for the semantics.
    template <class Token>
    auto async_consume(ConsumerOptions options, MessageHandler handler, Token&& token) {
        return boost::asio::async_initiate<Token, consume_signature>(
            [this](auto h, ConsumerOptions o, MessageHandler mh) {
                consume_impl(std::move(o), std::move(mh), detail::ErasedHandler<void>(std::move(h), ex_));
            },
            token, std::move(options), std::move(handler));
    }

    // The dead letters of `topic`, listed, sent back or dropped: see
    // boong::DeadLetterQueue. Memory operations: they complete through the
    // handler's executor, never inline.
    template <class Token>
    auto async_dead_letters(std::string topic, std::string after, std::size_t max_count, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::vector<DeadLetter>)>(
            [this](auto handler, std::string t, std::string a, std::size_t n) {
                complete_now(std::move(handler), [&] { return dead_letters(t, a, n); });
            },
            token, std::move(topic), std::move(after), max_count);
    }
    template <class Token>
    auto async_redrive(std::string topic, DeadLetterSelection selection, Token&& token) {
        return settle_dead_letters(std::move(topic), std::move(selection), true, std::forward<Token>(token));
    }
    template <class Token>
    auto async_drop(std::string topic, DeadLetterSelection selection, Token&& token) {
        return settle_dead_letters(std::move(topic), std::move(selection), false, std::forward<Token>(token));
    }

    // How the consumer groups of `topic` stand (see ConsumerGroupStatus).
    template <class Token>
    auto async_consumer_groups(std::string topic, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::vector<ConsumerGroupStatus>)>(
            [this](auto handler, std::string t) {
                complete_now(std::move(handler), [&] { return consumer_groups(t); });
            },
            token, std::move(topic));
    }

    // The synchronous forms (thread-safe), for tools and tests.
    std::string publish(const std::string& topic, EventData event);
    std::vector<ConsumerGroupStatus> consumer_groups(const std::string& topic) const;
    std::vector<DeadLetter> dead_letters(const std::string& topic, const std::string& after,
                                         std::size_t max_count) const;
    std::size_t redrive(const std::string& topic, const DeadLetterSelection& selection);
    std::size_t drop(const std::string& topic, const DeadLetterSelection& selection);

    // Inspection for tests and operators (thread-safe).
    // Messages of `topic` delivered to `group` and not acknowledged yet.
    std::size_t pending_count(std::string_view topic, std::string_view group) const;
    // Messages ever published to `topic`.
    std::size_t size(std::string_view topic) const;
    // All messages of `topic` in order (delivery_count 0, no group or consumer):
    // handy to read dead letters.
    std::vector<Delivery> read_topic(std::string_view topic) const;

private:
    void consume_impl(ConsumerOptions options, MessageHandler handler, detail::ErasedHandler<void> completion);

    template <class Token>
    auto settle_dead_letters(std::string topic, DeadLetterSelection selection, bool send_back, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::size_t)>(
            [this, send_back](auto handler, std::string t, DeadLetterSelection s) {
                complete_now(std::move(handler), [&] { return send_back ? redrive(t, s) : drop(t, s); });
            },
            token, std::move(topic), std::move(selection));
    }

    // Runs `f` now and completes `handler` with its result (or exception)
    // through the handler's executor.
    template <class Handler, class F>
    void complete_now(Handler handler, F&& f) {
        using R = decltype(f());
        std::exception_ptr error;
        R result{};
        try {
            result = f();
        } catch (...) {
            error = std::current_exception();
        }
        detail::post_completion(ex_, std::move(handler), error, std::move(result));
    }

    struct State;
    class Source;
    executor_type ex_;
    std::shared_ptr<State> state_;  // shared with running consumers, which may outlive the broker object
};

static_assert(Broker<MemoryBroker>);
static_assert(DeadLetterQueue<MemoryBroker>);

}  // namespace boong
