// An EventStore kept in process memory: for unit tests, demos and tools. It
// honours the same contract as the durable stores (conflicts, idempotent
// appends, global order, snapshots, transactions with an inbox) but loses
// everything when the process ends.
#pragma once

#include <boong/detail/post.hpp>
#include <boong/event_store.hpp>
#include <boong/transactional_store.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <type_traits>

#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace boong {

class MemoryEventStore {
public:
    using executor_type = boost::asio::any_io_executor;
    class Transaction;
    // What async_transact bodies receive (TransactionalStore).
    using transaction_type = Transaction;

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

    // Runs body(Transaction&) with the store held: what it appends and records
    // commits when it returns, and is undone if it throws (the exception
    // propagates). Inside, the store is used through the *_in functions; its
    // other functions, or a nested transact, on the same thread throw
    // Error(errc::invalid_argument) rather than deadlock.
    template <class Body>
    auto transact(Body&& body) -> std::invoke_result_t<Body&, Transaction&>;

    // transact as an async operation (TransactionalStore): the body runs at
    // once, on the caller's thread (it only touches memory); the completion
    // is posted through the handler's executor.
    template <class Body, class Token>
    auto async_transact(Body body, Token&& token) {
        using R = std::invoke_result_t<Body&, Transaction&>;
        return run<R>(std::forward<Token>(token), [this, body = std::move(body)]() mutable { return transact(body); });
    }

    AppendResult append_in(Transaction& tx, const std::string& stream, ExpectedVersion expected,
                           std::vector<EventData> events);
    std::vector<StreamAppendOutcome> append_many_in(Transaction& tx, std::vector<StreamAppend> appends);
    std::vector<RecordedEvent> read_stream_in(Transaction& tx, const std::string& stream,
                                              std::int64_t from_version = 1,
                                              std::size_t max_count = std::numeric_limits<std::size_t>::max()) const;
    std::vector<std::vector<RecordedEvent>> read_streams_in(Transaction& tx,
                                                            const std::vector<std::string>& streams) const;
    bool processed_in(Transaction& tx, const std::string& consumer, const std::string& message_id) const;
    bool record_processed_in(Transaction& tx, const std::string& consumer, const std::string& message_id);
    std::vector<bool> processed_many_in(Transaction& tx, const std::string& consumer,
                                        const std::vector<std::string>& message_ids) const;
    std::vector<bool> record_processed_many_in(Transaction& tx, const std::string& consumer,
                                               const std::vector<std::string>& message_ids);

private:
    template <class T, class Token, class Op>
    auto run(Token&& token, Op op) {
        return detail::async_immediate<T>(ex_, std::forward<Token>(token), std::move(op));
    }

    struct State;
    void check_transaction(const Transaction& tx) const;
    executor_type ex_;
    std::unique_ptr<State> state_;
};

// One transaction on a MemoryEventStore: holds the store until it commits or
// is destroyed (then everything it did is undone).
class MemoryEventStore::Transaction {
public:
    ~Transaction();  // rolls back unless committed
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

    // `undo` runs (latest first) if the transaction rolls back: for a body's
    // writes to memory of its own, so that they roll back with its events.
    void on_rollback(std::function<void()> undo) { undo_.push_back(std::move(undo)); }

private:
    friend class MemoryEventStore;
    explicit Transaction(MemoryEventStore& store);
    void commit() noexcept;
    void rollback() noexcept;

    MemoryEventStore& store_;
    std::size_t log_size_ = 0;      // the log and the streams as they were at the start
    std::size_t stream_count_ = 0;
    std::vector<std::pair<std::string, std::string>> recorded_;  // inbox entries added
    std::vector<std::function<void()>> undo_;
    bool done_ = false;
};

template <class Body>
auto MemoryEventStore::transact(Body&& body) -> std::invoke_result_t<Body&, Transaction&> {
    Transaction tx(*this);
    if constexpr (std::is_void_v<std::invoke_result_t<Body&, Transaction&>>) {
        body(tx);
        tx.commit();
    } else {
        auto result = body(tx);
        tx.commit();
        return result;
    }
}

template <class Body, class Token>
auto async_transact(MemoryEventStore& store, Body body, Token&& token) {
    return store.async_transact(std::move(body), std::forward<Token>(token));
}

static_assert(TransactionalStore<MemoryEventStore>);

}  // namespace boong
