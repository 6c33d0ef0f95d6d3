// The PostgreSQL EventStore (target Boong::postgres): the durable system of
// record. See docs/postgres.md for the schema, the guarantees and every option.
//
//   boong::PostgresStoreConfig cfg;
//   cfg.connection = "postgresql://app@db.internal:5432/orders?sslmode=verify-full";
//   boong::PostgresEventStore store(ioc.get_executor(), cfg);
//   co_await store.async_open(asio::use_awaitable);   // connects the pool, creates/upgrades the schema
//   auto r = co_await store.async_append("order-42", ExpectedVersion::no_stream(), events, asio::use_awaitable);
//
// The driver (libpqxx) blocks, so every operation runs on a pool of worker
// threads, one connection each, and completes through the caller's executor:
// the io_context never waits on the database. Appends that arrive together
// are written in one transaction (group commit).
#pragma once

#include <boong/config.hpp>
#include <boong/detail/erased_handler.hpp>
#include <boong/event_store.hpp>
#include <boong/transactional_store.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pqxx {
class transaction_base;  // libpqxx's transaction: see boong/postgres/transaction.hpp
}

namespace boong {

// The tables the store keeps, as schema-qualified, quoted SQL names (ready to
// paste into a query). Known once the store is open.
struct PostgresTableNames {
    std::string events;     // "public"."event_store"
    std::string snapshots;  // "public"."event_store_snapshots"
    std::string sagas;      // "public"."event_store_sagas": one row per saga (docs/durability.md)
    std::string outbox;     // "public"."event_store_outbox": relay cursors and leases
    std::string inbox;      // "public"."event_store_inbox": processed message ids per consumer
    std::string archive;    // "public"."event_store_archive": events moved out of `events` by async_archive
    std::string subject_keys;  // "public"."event_store_subject_keys": field encryption's keys (PostgresSubjectKeys)
};

// Which events async_archive moves out of the events table into the archive
// table (docs/postgres.md, "Archiving"). At least one of below_position and
// older_than must be set; with both, an event must match both. Whatever the
// policy, three kinds of event stay in the events table:
//  - each stream's newest event, so an append checks its expected version
//    against the events table alone;
//  - events younger than min_age: a retried append (after a lost reply)
//    is recognised as a replay by its event ids among these only;
//  - events above the lowest relay cursor (the outbox table): what a relay
//    has yet to publish.
struct ArchivePolicy {
    std::optional<std::int64_t> below_position;            // events at positions below this (>= 1)
    std::optional<std::chrono::milliseconds> older_than;   // events stored longer ago than this
    std::chrono::milliseconds min_age{std::chrono::hours(1)};  // never events younger than this (>= 0)
    std::int64_t batch_size = 10'000;  // events examined per transaction: 1..1,000,000
    bool dry_run = false;              // count what would move; move nothing
};

// What an archive run did (or, dry, would do).
struct ArchiveResult {
    std::int64_t archived = 0;  // events moved to the archive table
    std::int64_t kept = 0;      // events the policy matched that stay: their stream's newest
    std::int64_t transactions = 0;
    // The last position the run looked at: every event at or below it that
    // the policy matched is in the archive, but the kept ones.
    std::int64_t reached_position = 0;
    // The lowest relay cursor when it stopped the run (events above it are
    // not published yet); nullopt when the policy or the table's end did.
    std::optional<std::int64_t> held_by_relay;
};

// How a transaction handed to the store commits. Events are always written
// durably, whatever this says (and whatever the session or database sets).
enum class Durability {
    durable,  // synchronous_commit as the server has it (on): committed means on disk
    relaxed,  // synchronous_commit = off for this transaction: for state a crash may
              // lose harmlessly (leases, cursors), at a fraction of the cost
};

// What the store has done since it was opened: for tests, metrics and operators.
struct PostgresStoreStats {
    std::uint64_t appends = 0;              // appends that succeeded (idempotent replays included)
    std::uint64_t append_transactions = 0;  // transactions that carried appends: fewer than appends under load
    std::uint64_t events_written = 0;
    std::uint64_t replays = 0;         // appends answered from events already stored (a retry after a lost reply)
    std::uint64_t conflicts = 0;       // appends refused: version mismatch
    std::uint64_t duplicates = 0;      // appends refused: an event id stored elsewhere
    std::uint64_t batch_splits = 0;    // batches re-run one append at a time after an unexpected unique violation
    // Append transactions whose appends all expected the version this store
    // had left their streams at: written with no checks before the insert
    // (the unique indexes catch another writer). Most, when each stream has
    // one writer.
    std::uint64_t known_version_transactions = 0;
    std::uint64_t connects = 0;        // connections opened, reconnections included
    std::uint64_t connect_failures = 0;
    std::uint64_t connections_lost = 0;  // connections found broken (during an operation or while idle)
    std::uint64_t aborted = 0;           // operations cancelled before they started, or dropped at shutdown
    std::uint64_t read_ahead_pages = 0;  // read_all pages answered from a page fetched ahead
};

class PostgresEventStore {
public:
    using executor_type = boost::asio::any_io_executor;
    // What async_transact bodies receive (TransactionalStore).
    using transaction_type = pqxx::transaction_base;

    // Checks `config` (table names must pass is_sql_identifier; pool size,
    // group commit and timeouts must be in range) and throws
    // Error(errc::invalid_config) naming the problem. Connects nothing.
    PostgresEventStore(executor_type ex, PostgresStoreConfig config);
    // Operations not yet started complete with asio::error::operation_aborted;
    // running ones finish first (bounded by command_timeout).
    ~PostgresEventStore();
    PostgresEventStore(const PostgresEventStore&) = delete;
    PostgresEventStore& operator=(const PostgresEventStore&) = delete;

    executor_type get_executor() const { return ex_; }

    // Connects every pool connection and creates or upgrades the schema.
    // Fails with errc::store_unavailable naming host and port when the server
    // cannot be reached (within connect_timeout), errc::invalid_config when the
    // tables exist with another shape or a newer schema version. Completes with
    // void(std::exception_ptr). Other operations fail until it has succeeded;
    // after a failure, destroy the store and make a new one.
    template <class Token>
    auto async_open(Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr)>(
            [this](auto handler) { open_impl(detail::ErasedHandler<void>(std::move(handler), ex_)); }, token);
    }
    // The same, blocking the calling thread: for tools, tests and start-up code
    // that runs before the io_context. Throws what async_open would complete with.
    void open();

    template <class Token>
    auto async_append(std::string stream, ExpectedVersion expected, std::vector<EventData> events, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, AppendResult)>(
            [this](auto handler, std::string s, ExpectedVersion e, std::vector<EventData> ev) {
                append_impl(std::move(s), e, std::move(ev), detail::ErasedHandler<AppendResult>(std::move(handler), ex_));
            },
            token, std::move(stream), expected, std::move(events));
    }

    template <class Token>
    auto async_read_stream(std::string stream, std::int64_t from_version, std::size_t max_count, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::vector<RecordedEvent>)>(
            [this](auto handler, std::string s, std::int64_t from, std::size_t max) {
                read_stream_impl(std::move(s), from, max,
                                 detail::ErasedHandler<std::vector<RecordedEvent>>(std::move(handler), ex_));
            },
            token, std::move(stream), from_version, max_count);
    }

    template <class Token>
    auto async_read_all(std::int64_t from_position, std::size_t max_count, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::vector<RecordedEvent>)>(
            [this](auto handler, std::int64_t from, std::size_t max) {
                read_all_impl(from, max, detail::ErasedHandler<std::vector<RecordedEvent>>(std::move(handler), ex_));
            },
            token, from_position, max_count);
    }

    template <class Token>
    auto async_save_snapshot(Snapshot snapshot, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr)>(
            [this](auto handler, Snapshot s) {
                save_snapshot_impl(std::move(s), detail::ErasedHandler<void>(std::move(handler), ex_));
            },
            token, std::move(snapshot));
    }

    template <class Token>
    auto async_load_snapshot(std::string stream, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::optional<Snapshot>)>(
            [this](auto handler, std::string s) {
                load_snapshot_impl(std::move(s),
                                   detail::ErasedHandler<std::optional<Snapshot>>(std::move(handler), ex_));
            },
            token, std::move(stream));
    }

    // Moves the events `policy` matches from the events table to the archive
    // table, a batch per transaction (each moves its events atomically: a
    // reader sees every event exactly once, in one table or the other).
    // Archived events stay readable: read_stream and read_all return them as
    // before, at the same versions and positions, in the same order (they read
    // the archive when asked for what it holds). Completes with
    // void(std::exception_ptr, ArchiveResult); Error(errc::invalid_argument)
    // for a policy out of range. Cancelled, it stops after the batch in
    // flight (committed batches stay archived) with operation_aborted.
    template <class Token>
    auto async_archive(ArchivePolicy policy, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, ArchiveResult)>(
            [this](auto handler, ArchivePolicy p) {
                archive_impl(p, detail::ErasedHandler<ArchiveResult>(std::move(handler), ex_));
            },
            token, policy);
    }

    // Appends inside a transaction of yours (a body run by async_transact,
    // on a pool worker), so the events commit or roll back with the rest of
    // it: a service's state change and the events it emits, atomically. It
    // must be the transaction's first write (reads may come before): the
    // store's gap-free global order depends on it, and PostgreSQL refuses it
    // otherwise ("an append must be the first write of its transaction").
    // The transaction then commits durably (synchronous_commit on), even a
    // Durability::relaxed one: readers may see its events at once, and a crash
    // must not take them back.
    // Same checks and errors as async_append (ConcurrencyConflict, duplicate
    // ids, idempotent replays); a refused append writes nothing and leaves
    // the transaction usable. A race with another transaction appending to
    // the same stream at the same moment is errc::concurrency_conflict too,
    // but aborts the transaction: run it again.
    AppendResult append_in(pqxx::transaction_base& tx, std::string stream, ExpectedVersion expected,
                           std::vector<EventData> events);

    // Several appends to distinct streams in one call of the append function,
    // as the transaction's first write (the same rules as append_in): each
    // gets its own outcome, and one refused (a conflict, a duplicate id, a
    // bad argument) writes nothing and fails none of the others. Two appends
    // to one stream: errc::invalid_argument, nothing written. A race with
    // another transaction appending to one of the streams at the same moment
    // is errc::concurrency_conflict for the whole call, and aborts the
    // transaction: run it again.
    std::vector<StreamAppendOutcome> append_many_in(pqxx::transaction_base& tx, std::vector<StreamAppend> appends);

    // Reads a stream inside a transaction of yours (a body run by
    // async_transact), as that transaction sees it: a reaction that folds a
    // stream and appends to it with append_in reads and writes one snapshot
    // of it. Same checks and errors as async_read_stream.
    std::vector<RecordedEvent> read_stream_in(pqxx::transaction_base& tx, const std::string& stream,
                                              std::int64_t from_version = 1,
                                              std::size_t max_count = std::numeric_limits<std::size_t>::max()) const;
    // The same for several whole streams, in one statement (one round trip
    // and one snapshot), one answer per name in order: what the event bus
    // reads for the reactions of a shared transaction (HandlerContext::react_on).
    std::vector<std::vector<RecordedEvent>> read_streams_in(pqxx::transaction_base& tx,
                                                            const std::vector<std::string>& streams) const;

    // The inbox (TransactionalStore; see boong/inbox.hpp), in a transaction
    // of yours: whether `consumer` processed `message_id`, and recording that
    // it did (INSERT ... ON CONFLICT DO NOTHING after the append: false when
    // a concurrent twin recorded it first, and the transaction must roll
    // back). Error(errc::invalid_argument) for names not of 1..255 bytes.
    bool processed_in(pqxx::transaction_base& tx, const std::string& consumer, const std::string& message_id) const;
    bool record_processed_in(pqxx::transaction_base& tx, const std::string& consumer, const std::string& message_id);
    // The two above for several messages, one round trip each.
    std::vector<bool> processed_many_in(pqxx::transaction_base& tx, const std::string& consumer,
                                        const std::vector<std::string>& message_ids) const;
    std::vector<bool> record_processed_many_in(pqxx::transaction_base& tx, const std::string& consumer,
                                               const std::vector<std::string>& message_ids);

    PostgresStoreStats stats() const;
    // Throws Error(errc::store_unavailable) when the store is not open.
    const PostgresTableNames& tables() const;

    // Runs `body` in one transaction on a pool worker (it may block: it never
    // runs on the caller's executor) and commits it; completes `handler` on
    // the caller's executor. `what` names the operation in errors. A body
    // that throws rolls back; its exception reaches the handler as it is
    // (libpqxx's translated into boong::Error), and the connection stays in
    // the pool. The typed front-end is boong::async_transact
    // (boong/postgres/transaction.hpp).
    void transact(std::string what, Durability durability, std::function<void(pqxx::transaction_base&)> body,
                  detail::ErasedHandler<void> handler);
    const PostgresStoreConfig& config() const;
    // Where the store connects, as "host:port" (for logs and error messages).
    const std::string& endpoint() const;

private:
    void open_impl(detail::ErasedHandler<void> handler);
    void append_impl(std::string stream, ExpectedVersion expected, std::vector<EventData> events,
                     detail::ErasedHandler<AppendResult> handler);
    void read_stream_impl(std::string stream, std::int64_t from_version, std::size_t max_count,
                          detail::ErasedHandler<std::vector<RecordedEvent>> handler);
    void read_all_impl(std::int64_t from_position, std::size_t max_count,
                       detail::ErasedHandler<std::vector<RecordedEvent>> handler);
    void save_snapshot_impl(Snapshot snapshot, detail::ErasedHandler<void> handler);
    void load_snapshot_impl(std::string stream, detail::ErasedHandler<std::optional<Snapshot>> handler);
    void archive_impl(ArchivePolicy policy, detail::ErasedHandler<ArchiveResult> handler);

    struct Impl;
    executor_type ex_;
    std::unique_ptr<Impl> impl_;
};

static_assert(EventStore<PostgresEventStore>);

}  // namespace boong
