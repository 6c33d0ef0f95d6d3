// An EventStore kept in process memory: for unit tests, demos and tools. It
// honours the same contract as the durable stores (conflicts, idempotent
// appends, global order, snapshots) but loses everything when the process ends.
#pragma once

#include <boong/detail/post.hpp>
#include <boong/event_store.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <type_traits>

#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace boong {

class MemoryEventStore {
public:
    using executor_type = boost::asio::any_io_executor;

    explicit MemoryEventStore(executor_type ex);
    ~MemoryEventStore();
    MemoryEventStore(const MemoryEventStore&) = delete;
    MemoryEventStore& operator=(const MemoryEventStore&) = delete;

    executor_type get_executor() const { return ex_; }

    template <class Token>
    auto async_append(std::string stream, ExpectedVersion expected, std::vector<EventData> events, Token&& token) {
        return run<AppendResult>(std::forward<Token>(token), [this, stream = std::move(stream), expected,
                                                               events = std::move(events)]() mutable {
            return append(stream, expected, std::move(events));
        });
    }

    template <class Token>
    auto async_read_stream(std::string stream, std::int64_t from_version, std::size_t max_count, Token&& token) {
        return run<std::vector<RecordedEvent>>(std::forward<Token>(token), [=, this, stream = std::move(stream)] {
            return read_stream(stream, from_version, max_count);
        });
    }

    template <class Token>
    auto async_read_all(std::int64_t from_position, std::size_t max_count, Token&& token) {
        return run<std::vector<RecordedEvent>>(std::forward<Token>(token),
                                               [=, this] { return read_all(from_position, max_count); });
    }

    template <class Token>
    auto async_save_snapshot(Snapshot snapshot, Token&& token) {
        return run<void>(std::forward<Token>(token),
                         [this, snapshot = std::move(snapshot)]() mutable { save_snapshot(std::move(snapshot)); });
    }

    template <class Token>
    auto async_load_snapshot(std::string stream, Token&& token) {
        return run<std::optional<Snapshot>>(std::forward<Token>(token),
                                            [this, stream = std::move(stream)] { return load_snapshot(stream); });
    }

    // Synchronous forms of the operations above (thread-safe), for tools and tests.
    AppendResult append(const std::string& stream, ExpectedVersion expected, std::vector<EventData> events);
    std::vector<RecordedEvent> read_stream(const std::string& stream, std::int64_t from_version,
                                           std::size_t max_count) const;
    std::vector<RecordedEvent> read_all(std::int64_t from_position, std::size_t max_count) const;
    void save_snapshot(Snapshot snapshot);
    std::optional<Snapshot> load_snapshot(const std::string& stream) const;

    // The stream's current version (0 when it does not exist), and the last global position.
    std::int64_t stream_version(const std::string& stream) const;
    std::int64_t last_position() const;

private:
    // Runs `op` now (it only touches memory) and delivers its result or exception
    // through the handler's executor, as an async operation must.
    template <class T, class Token, class Op>
    auto run(Token&& token, Op op) {
        return boost::asio::async_initiate<Token, typename detail::completion<T>::signature>(
            [this](auto handler, Op o) {
                if constexpr (std::is_void_v<T>) {
                    std::exception_ptr error;
                    try {
                        o();
                    } catch (...) {
                        error = std::current_exception();
                    }
                    detail::post_completion(ex_, std::move(handler), error);
                } else {
                    std::exception_ptr error;
                    T result{};
                    try {
                        result = o();
                    } catch (...) {
                        error = std::current_exception();
                    }
                    detail::post_completion(ex_, std::move(handler), error, std::move(result));
                }
            },
            token, std::move(op));
    }

    struct State;
    executor_type ex_;
    std::unique_ptr<State> state_;
};

static_assert(EventStore<MemoryEventStore>);

}  // namespace boong
