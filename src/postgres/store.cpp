#include "batcher.hpp"
#include "connection.hpp"
#include "pool.hpp"
#include "read_ahead.hpp"
#include "rows.hpp"
#include "schema.hpp"

#include <boong/detail/validate.hpp>
#include <boong/postgres/store.hpp>

#include <pqxx/nontransaction>
#include <pqxx/transaction>
#include <pqxx/result>
#include <spdlog/spdlog.h>

#include <atomic>
#include <charconv>
#include <future>
#include <limits>
#include <type_traits>
#include <unordered_set>

namespace boong {
namespace {

using pg::from_micros;
using pg::to_event;
using pg::to_int64;
using pg::to_json_value;

// Batch transactions in flight at once (at most the pool size): while one
// waits for its commit to reach the disk, others are checked and written on
// other connections. Measured with bench_postgres: 4 beat 2 by ~9 % for
// 100-event appends and made no difference for single-event ones.
constexpr std::size_t kMaxBatchesInFlight = 4;

void check_config(const PostgresStoreConfig& c) {
    auto refuse = [](const std::string& why) { throw Error(errc::invalid_config, "PostgreSQL event store: " + why); };
    auto identifier = [&](const char* what, const std::string& name) {
        if (!is_sql_identifier(name)) {
            refuse(std::string(what) + " '" + name +
                   "' is not a plain SQL identifier (lower-case letters, digits and _, not starting with a digit, at "
                   "most 63 characters, not a reserved word; PostgreSQL would fold upper case)");
        }
    };
    if (c.connection.empty()) refuse("the connection string is empty");
    identifier("table name", c.table_name);
    identifier("snapshot table name", c.snapshot_table_name);
    if (c.table_name == c.snapshot_table_name) refuse("the snapshot table must differ from the events table");
    if (c.pool_size < 1 || c.pool_size > 1024) refuse("pool size " + std::to_string(c.pool_size) + " is not in 1..1024");
    if (c.connect_timeout.count() < 0) refuse("connect timeout is negative");
    if (c.command_timeout.count() < 0) refuse("command timeout is negative");
    if (c.group_commit_max_events < 1 || c.group_commit_max_events > 100000) {
        refuse("group commit max events " + std::to_string(c.group_commit_max_events) + " is not in 1..100000");
    }
    if (c.group_commit_delay.count() < 0 || c.group_commit_delay > std::chrono::seconds(1)) {
        refuse("group commit delay is not in 0..1 s");
    }
}

std::int64_t clamp_count(std::size_t n) {
    return static_cast<std::int64_t>(std::min<std::size_t>(n, std::numeric_limits<std::int64_t>::max()));
}

// A read or snapshot operation: `body` runs on a worker and returns the result.
template <class T, class Body>
class Operation final : public pg::Job {
public:
    Operation(std::string what, Body body, detail::ErasedHandler<T> handler, bool appends)
        : what_(std::move(what)), body_(std::move(body)), handler_(std::move(handler)), appends_(appends) {}

    void run(pg::Session& session) override {
        if constexpr (std::is_void_v<T>) {
            body_(session);
            handler_.complete(nullptr);
        } else {
            handler_.complete(nullptr, body_(session));
        }
    }
    void fail(std::exception_ptr error) noexcept override {
        try {
            handler_.complete(std::move(error));
        } catch (...) {
            // Out of memory while posting: the handler's destructor aborts it.
        }
    }
    std::string describe() const override { return what_; }
    bool appends() const noexcept override { return appends_; }
    detail::ErasedHandler<T>& handler() noexcept { return handler_; }

private:
    std::string what_;
    Body body_;
    detail::ErasedHandler<T> handler_;
    bool appends_;
};

// Names (message ids, streams) as one JSON array parameter (no SQL array
// quoting to get wrong).
std::string json_array(const std::vector<std::string>& names) { return json(names).dump(); }

// A stream's events from version `from` on, at most `limit`, from the events
// table and the archive together (one statement).
std::vector<RecordedEvent> read_stream_rows(pqxx::transaction_base& tx, const std::string& stream, std::int64_t from,
                                            std::int64_t limit) {
    const pqxx::result rows = tx.exec_prepared(pg::kReadStreamStatement, stream, from, limit);
    std::vector<RecordedEvent> out;
    out.reserve(rows.size());
    for (const auto& row : rows) out.push_back(to_event(row, 0, stream));
    return out;
}

void check_archive_policy(const ArchivePolicy& p) {
    auto refuse = [](const std::string& why) { throw Error(errc::invalid_argument, "archive policy: " + why); };
    if (!p.below_position && !p.older_than) refuse("neither below_position nor older_than is set: nothing to archive");
    if (p.below_position && *p.below_position < 1) refuse("below_position must be >= 1");
    if (p.older_than && p.older_than->count() < 0) refuse("older_than is negative");
    if (p.min_age.count() < 0) refuse("min_age is negative");
    if (p.batch_size < 1 || p.batch_size > 1'000'000) {
        refuse("batch_size " + std::to_string(p.batch_size) + " is not in 1..1000000");
    }
}

// One archive batch: the next batch_size events above $1 (the last
// position examined) and below $2, in position order; of those stored
// before now - $3 ms, the ones not their stream's newest move (or, dry,
// are counted). Events above the lowest relay cursor are not examined.
// Answers: events examined, the last position examined, matched, moved,
// whether every examined event was old enough, and the lowest relay cursor
// when the first event above it is old enough (the relay holds the run back).
// stored_at grows with position (both are taken under the append lock), so
// a batch that meets a young event ends the run.
std::string archive_batch_sql(const pg::Names& n, bool dry_run) {
    const std::string old_enough = "pg_catalog.now() - $3::bigint * interval '1 millisecond'";
    std::string sql = R"(WITH fence AS MATERIALIZED (
    SELECT min(o.position) AS relay FROM )" + n.outbox + R"( o
), scan AS MATERIALIZED (
    SELECT e.position, e.stream_id, e.version, e.stored_at < )" + old_enough + R"( AS old
    FROM )" + n.events + R"( e
    WHERE e.position > $1::bigint AND e.position < $2::bigint
      AND e.position <= coalesce((SELECT relay FROM fence), 9223372036854775807)
    ORDER BY e.position LIMIT $4::bigint
), picked AS MATERIALIZED (
    SELECT s.position FROM scan s
    WHERE s.old AND EXISTS (SELECT 1 FROM )" + n.events + R"( newer
                            WHERE newer.stream_id = s.stream_id AND newer.version > s.version)
))";
    if (!dry_run) {
        // Copied first, then deleted: the events table's trigger lets a
        // DELETE through only when the archive holds the row (schema
        // version 6), and each row is deleted only after `archived` gave it.
        // A row another run is moving meanwhile: the insert waits for that
        // run's transaction, then (it committed) skips the row, which is
        // then not deleted here either.
        sql += R"(, archived AS (
    INSERT INTO )" + n.archive + R"( (position, stream_id, version, event_id, type, schema_version, payload,
                                   metadata, stored_at, transaction_id)
    SELECT e.position, e.stream_id, e.version, e.event_id, e.type, e.schema_version, e.payload, e.metadata,
           e.stored_at, e.transaction_id
    FROM )" + n.events + R"( e JOIN picked p ON e.position = p.position
    ON CONFLICT DO NOTHING
    RETURNING position
), moved AS (
    DELETE FROM )" + n.events + R"( e USING archived a WHERE e.position = a.position
    RETURNING 1
))";
    }
    sql += R"(
SELECT (SELECT count(*) FROM scan), (SELECT coalesce(max(position), $1::bigint) FROM scan),
       (SELECT count(*) FROM scan WHERE old), (SELECT count(*) FROM )" + std::string(dry_run ? "picked" : "moved") +
           R"(),
       (SELECT coalesce(bool_and(old), true) FROM scan),
       (SELECT f.relay FROM fence f WHERE EXISTS (
           SELECT 1 FROM (SELECT e.stored_at FROM )" + n.events + R"( e
                          WHERE e.position > f.relay AND e.position < $2::bigint ORDER BY e.position LIMIT 1) x
           WHERE x.stored_at < )" + old_enough + R"()))";
    return sql;
}

struct ArchiveBatch {
    std::int64_t examined = 0;
    std::int64_t last = 0;
    std::int64_t matched = 0;
    std::int64_t moved = 0;
    bool all_old = true;
    std::optional<std::int64_t> relay;
};

enum class State { idle, opening, open, failed };

}  // namespace

static std::shared_ptr<pg::Counters> make_counters(const PostgresStoreConfig& config) {
    auto counters = std::make_shared<pg::Counters>();
    counters->observer = config.observer;
    return counters;
}

struct PostgresEventStore::Impl {
    explicit Impl(PostgresStoreConfig c)
        : config(std::move(c)),
          target(pg::make_connect_target(config)),
          counters(make_counters(config)),
          pool(target, config.pool_size, counters),
          batcher(pool,
                  pg::BatchSettings{
                      .max_events = static_cast<std::size_t>(config.group_commit_max_events),
                      .delay = config.group_commit_delay,
                      .max_in_flight = std::min<std::size_t>(kMaxBatchesInFlight,
                                                             static_cast<std::size_t>(config.pool_size))},
                  counters) {}

    // Appends waiting for a batch are failed, then the pool fails what is
    // queued and joins its workers (running jobs finish). Only then do the
    // members go, so no worker ever sees a half-destroyed store.
    ~Impl() {
        batcher.stop();
        pool.shutdown();
    }

    // Connects the pool; the last worker to connect migrates the schema.
    void start(std::function<void(std::exception_ptr)> done) {
        State expected = State::idle;
        if (!state.compare_exchange_strong(expected, State::opening)) {
            done(std::make_exception_ptr(
                Error(errc::invalid_config, "the PostgreSQL event store at " + target.endpoint + " was already opened")));
            return;
        }
        pool.start([this, done = std::move(done)](pg::Session* session, std::exception_ptr error) {
            if (!error) {
                try {
                    names = pg::resolve_names(session->connection(), config);
                    tables = PostgresTableNames{names.events, names.snapshots, names.sagas,
                                                names.outbox, names.inbox, names.archive, names.subject_keys};
                    pg::migrate(session->connection(), names);
                    pool.set_statements(pg::statements(names));
                } catch (...) {
                    error = pg::translate(std::current_exception(), target, "opening the event store").error;
                }
            }
            if (error) {
                open_error = error;
                state.store(State::failed, std::memory_order_release);
            } else {
                batcher.start();
                state.store(State::open, std::memory_order_release);
                spdlog::info("postgres: event store {} open at {} ({} connections, schema version {})", names.events,
                             target.endpoint, config.pool_size, pg::kSchemaVersion);
            }
            done(error);
        });
    }

    void require_open() const {
        switch (state.load(std::memory_order_acquire)) {
            case State::open: return;
            case State::failed: {
                throw Error(errc::store_unavailable, "the PostgreSQL event store at " + target.endpoint +
                                                         " failed to open (" + describe(open_error) +
                                                         "); make a new one");
            }
            default:
                throw Error(errc::store_unavailable, "the PostgreSQL event store at " + target.endpoint +
                                                         " is not open: call async_open and wait for it first");
        }
    }

    template <class T, class Body>
    void submit(std::string what, Body body, detail::ErasedHandler<T> handler, bool appends = false) {
        auto job =
            std::make_shared<Operation<T, Body>>(std::move(what), std::move(body), std::move(handler), appends);
        job->handler().on_cancel(pool.canceller(job));
        pool.submit(std::move(job));
    }

    PostgresStoreConfig config;
    pg::ConnectTarget target;
    std::shared_ptr<pg::Counters> counters;
    pg::Names names;  // set by the open, before state becomes open
    PostgresTableNames tables;
    std::atomic<State> state{State::idle};
    std::exception_ptr open_error;
    pg::Pool pool;
    pg::Batcher batcher;
    pg::ReadAhead read_ahead{pool, counters};
    // Expires with the store: what a multi-job operation (archive) checks
    // before it submits its next job.
    std::shared_ptr<int> lifetime = std::make_shared<int>(0);
};

PostgresEventStore::PostgresEventStore(executor_type ex, PostgresStoreConfig config) : ex_(std::move(ex)) {
    check_config(config);
    impl_ = std::make_unique<Impl>(std::move(config));
}

PostgresEventStore::~PostgresEventStore() = default;

void PostgresEventStore::open_impl(detail::ErasedHandler<void> handler) {
    auto shared = std::make_shared<detail::ErasedHandler<void>>(std::move(handler));
    impl_->start([shared](std::exception_ptr error) { shared->complete(std::move(error)); });
}

void PostgresEventStore::open() {
    std::promise<void> opened;
    auto result = opened.get_future();
    impl_->start([p = &opened](std::exception_ptr error) {
        if (error) {
            p->set_exception(std::move(error));
        } else {
            p->set_value();
        }
    });
    result.get();
}

void PostgresEventStore::append_impl(std::string stream, ExpectedVersion expected, std::vector<EventData> events,
                                     detail::ErasedHandler<AppendResult> handler) {
    std::shared_ptr<pg::AppendRequest> request;
    try {
        impl_->require_open();
        detail::validate_append(stream, expected, events);
        const bool head_known = impl_->batcher.head_known(stream, expected);
        request = std::make_shared<pg::AppendRequest>(std::move(stream), expected, events, head_known);
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    request->handler = std::move(handler);
    request->handler.on_cancel(impl_->batcher.canceller(request));
    impl_->batcher.submit(std::move(request));
}

void PostgresEventStore::read_stream_impl(std::string stream, std::int64_t from_version, std::size_t max_count,
                                          detail::ErasedHandler<std::vector<RecordedEvent>> handler) {
    std::string what;
    try {
        impl_->require_open();
        detail::validate_stream_id(stream);
        what = "read_stream '" + stream + "' from version " + std::to_string(from_version);
        detail::validate_read("read_stream '" + stream + "'", from_version, max_count);
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    const auto limit = clamp_count(max_count);
    impl_->submit(
        std::move(what),
        [stream = std::move(stream), from_version, limit](pg::Session& session) {
            pqxx::nontransaction tx(session.connection(), "boong-read-stream");
            return read_stream_rows(tx, stream, from_version, limit);
        },
        std::move(handler));
}

void PostgresEventStore::read_all_impl(std::int64_t from_position, std::size_t max_count,
                                       detail::ErasedHandler<std::vector<RecordedEvent>> handler) {
    try {
        impl_->require_open();
        detail::validate_read("read_all", from_position, max_count);
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    const auto limit = clamp_count(max_count);
    if (impl_->read_ahead.serve(from_position, limit, handler)) return;
    impl_->submit(
        "read_all from position " + std::to_string(from_position),
        [from_position, limit, &ahead = impl_->read_ahead](pg::Session& session) {
            return ahead.fetch(session, from_position, limit);
        },
        std::move(handler));
}

void PostgresEventStore::save_snapshot_impl(Snapshot snapshot, detail::ErasedHandler<void> handler) {
    try {
        impl_->require_open();
        detail::validate_snapshot(snapshot);
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    std::string what = "save_snapshot of '" + snapshot.stream_id + "'";
    impl_->submit(
        std::move(what),
        [s = std::move(snapshot)](pg::Session& session) {
            const std::string taken_at =
                s.taken_at == Clock::time_point{} ? std::string() : format_timestamp(s.taken_at);
            const char* taken = taken_at.empty() ? nullptr : taken_at.c_str();  // NULL: the server's now()
            pqxx::nontransaction tx(session.connection(), "boong-save-snapshot");
            const pqxx::row row = tx.exec_prepared1(pg::kSaveSnapshotStatement, s.stream_id, s.version, s.type,
                                                    s.schema_version, s.state.dump(), taken);
            const std::int64_t current = to_int64(row[0]);
            if (s.version > current) {
                throw Error(errc::invalid_argument, "snapshot of '" + s.stream_id + "' at version " +
                                                        std::to_string(s.version) + " is ahead of the stream (version " +
                                                        std::to_string(current) + ")");
            }
        },
        std::move(handler));
}

// An archive run is one pool job per batch, the next submitted when one
// completes: no job holds a connection for the whole run, and the store's
// destructor waits only for the batch in flight.
void PostgresEventStore::archive_impl(ArchivePolicy policy, detail::ErasedHandler<ArchiveResult> handler) {
    struct Run {
        ArchivePolicy policy;
        std::string sql;
        std::int64_t below = std::numeric_limits<std::int64_t>::max();
        std::int64_t age_ms = 0;
        ArchiveResult result;
        detail::ErasedHandler<ArchiveResult> handler;
        std::atomic<bool> cancelled{false};

        void finish(std::exception_ptr error) {
            if (error) {
                handler.complete(std::move(error));
            } else {
                handler.complete(nullptr, result);
            }
        }

        static void step(Impl* impl, std::weak_ptr<int> alive, executor_type ex, std::shared_ptr<Run> run) {
            if (run->cancelled.load()) {
                return run->finish(pg::aborted_error(
                    "archive at position " + std::to_string(run->result.reached_position), "cancelled"));
            }
            const std::int64_t last = run->result.reached_position;
            auto batch = [sql = run->sql, last, below = run->below, age = run->age_ms,
                          size = run->policy.batch_size](pg::Session& session) {
                pqxx::work tx(session.connection(), "boong-archive");
                const pqxx::row row = tx.exec_params1(sql, last, below, age, size);
                ArchiveBatch b;
                b.examined = to_int64(row[0]);
                b.last = to_int64(row[1]);
                b.matched = to_int64(row[2]);
                b.moved = to_int64(row[3]);
                b.all_old = row[4].as<bool>();
                if (!row[5].is_null()) b.relay = to_int64(row[5]);
                tx.commit();
                return b;
            };
            auto next = [impl, alive, ex, run](std::exception_ptr error, ArchiveBatch b) {
                if (error) return run->finish(std::move(error));
                ArchiveResult& r = run->result;
                r.archived += b.moved;
                r.kept += b.matched - b.moved;
                r.transactions += 1;
                r.reached_position = b.last;
                if (b.examined == run->policy.batch_size && b.all_old) {
                    if (alive.expired()) {
                        return run->finish(pg::aborted_error("archive at position " + std::to_string(b.last),
                                                             "the event store was destroyed"));
                    }
                    return step(impl, alive, ex, run);
                }
                if (b.examined < run->policy.batch_size) r.held_by_relay = b.relay;
                spdlog::info("postgres: archive {}: {} events {}, {} kept as their stream's newest, up to position {}",
                             run->policy.dry_run ? "(dry run)" : "done", r.archived,
                             run->policy.dry_run ? "would move" : "moved", r.kept, r.reached_position);
                run->finish(nullptr);
            };
            impl->submit("archive from position " + std::to_string(last + 1), std::move(batch),
                         detail::ErasedHandler<ArchiveBatch>(std::move(next), ex));
        }
    };
    auto run = std::make_shared<Run>();
    try {
        impl_->require_open();
        check_archive_policy(policy);
        run->policy = policy;
        run->sql = archive_batch_sql(impl_->names, policy.dry_run);
        if (policy.below_position) run->below = *policy.below_position;
        run->age_ms = std::max(policy.min_age, policy.older_than.value_or(std::chrono::milliseconds(0))).count();
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    run->handler = std::move(handler);
    run->handler.on_cancel([weak = std::weak_ptr<Run>(run)](boost::asio::cancellation_type) {
        if (auto r = weak.lock()) r->cancelled.store(true);
    });
    Run::step(impl_.get(), impl_->lifetime, ex_, std::move(run));
}

void PostgresEventStore::load_snapshot_impl(std::string stream,
                                            detail::ErasedHandler<std::optional<Snapshot>> handler) {
    try {
        impl_->require_open();
        detail::validate_stream_id(stream);
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    std::string what = "load_snapshot of '" + stream + "'";
    impl_->submit(
        std::move(what),
        [stream = std::move(stream)](pg::Session& session) -> std::optional<Snapshot> {
            pqxx::nontransaction tx(session.connection(), "boong-load-snapshot");
            const pqxx::result rows = tx.exec_prepared(pg::kLoadSnapshotStatement, stream);
            if (rows.empty()) return std::nullopt;
            const auto& row = rows[0];
            Snapshot s;
            s.stream_id = stream;
            s.version = to_int64(row[0]);
            s.type.assign(row[1].c_str(), row[1].size());
            s.schema_version = static_cast<int>(to_int64(row[2]));
            s.state = to_json_value(row[3]);
            s.taken_at = from_micros(to_int64(row[4]));
            return s;
        },
        std::move(handler));
}

PostgresStoreStats PostgresEventStore::stats() const {
    const auto& c = *impl_->counters;
    auto get = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    PostgresStoreStats s;
    s.appends = get(c.appends);
    s.append_transactions = get(c.append_transactions);
    s.events_written = get(c.events_written);
    s.replays = get(c.replays);
    s.conflicts = get(c.conflicts);
    s.duplicates = get(c.duplicates);
    s.batch_splits = get(c.batch_splits);
    s.known_version_transactions = get(c.known_version_transactions);
    s.connects = get(c.connects);
    s.connect_failures = get(c.connect_failures);
    s.connections_lost = get(c.connections_lost);
    s.aborted = get(c.aborted);
    s.read_ahead_pages = get(c.read_ahead_pages);
    return s;
}

AppendResult PostgresEventStore::append_in(pqxx::transaction_base& tx, std::string stream, ExpectedVersion expected,
                                           std::vector<EventData> events) {
    std::vector<StreamAppend> one;
    one.push_back(StreamAppend{std::move(stream), expected, std::move(events)});
    auto outcome = std::move(append_many_in(tx, std::move(one)).front());
    if (outcome.error) std::rethrow_exception(outcome.error);
    return *outcome.result;
}

std::vector<StreamAppendOutcome> PostgresEventStore::append_many_in(pqxx::transaction_base& tx,
                                                                  std::vector<StreamAppend> appends) {
    impl_->require_open();
    detail::require_distinct_streams(appends);
    std::vector<StreamAppendOutcome> out(appends.size());
    // The appends that pass the checks, and where each one's outcome goes.
    std::vector<pg::AppendRequest> requests;
    std::vector<std::size_t> slot;
    requests.reserve(appends.size());
    for (std::size_t i = 0; i < appends.size(); ++i) {
        auto& a = appends[i];
        try {
            detail::validate_append(a.stream, a.expected, a.events);
        } catch (const Error&) {
            out[i].error = std::current_exception();
            continue;
        }
        requests.emplace_back(std::move(a.stream), a.expected, a.events);
        slot.push_back(i);
    }
    if (requests.empty()) return out;
    std::string doc = "[";
    for (std::size_t k = 0; k < requests.size(); ++k) {
        if (k) doc += ',';
        doc += requests[k].json;
    }
    doc += ']';
    pqxx::result rows;
    try {
        // Careful (every id checked): a unique violation here aborts the caller's whole transaction.
        rows = tx.exec_prepared(pg::kAppendStatement, doc, true);
    } catch (const pqxx::unique_violation&) {
        // Another transaction appended to a stream (or stored one of these
        // ids) between this one's checks and its insert. This transaction is
        // aborted; run it again, and its checks see what the other wrote.
        const std::string what = requests.size() == 1 ? "append to '" + requests.front().stream + "'"
                                                      : "append to " + std::to_string(requests.size()) + " streams";
        throw Error(errc::concurrency_conflict, what + ": another transaction appended at the same time; nothing "
                                                       "was written: run the transaction again");
    }
    if (rows.size() != requests.size()) {
        throw Error(errc::protocol_error, "the append function returned " + std::to_string(rows.size()) +
                                              " verdicts for " + std::to_string(requests.size()) + " appends");
    }
    for (const auto& row : rows) {
        const auto k = static_cast<std::size_t>(to_int64(row[0]));
        if (k >= requests.size()) throw Error(errc::protocol_error, "the append function returned a bad index");
        auto& o = out[slot[k]];
        if (auto error = pg::verdict_error(requests[k], row)) {
            o.error = std::move(error);
            continue;
        }
        pg::Counters::add(impl_->counters->appends);
        o.result = AppendResult{to_int64(row[3]), to_int64(row[4]), to_int64(row[5])};
    }
    return out;
}

std::vector<RecordedEvent> PostgresEventStore::read_stream_in(pqxx::transaction_base& tx, const std::string& stream,
                                                              std::int64_t from_version, std::size_t max_count) const {
    impl_->require_open();
    detail::validate_stream_id(stream);
    detail::validate_read("read_stream '" + stream + "'", from_version, max_count);
    return read_stream_rows(tx, stream, from_version, clamp_count(max_count));
}

std::vector<std::vector<RecordedEvent>> PostgresEventStore::read_streams_in(
    pqxx::transaction_base& tx, const std::vector<std::string>& streams) const {
    impl_->require_open();
    for (const auto& s : streams) detail::validate_stream_id(s);
    std::vector<std::vector<RecordedEvent>> out(streams.size());
    if (streams.empty()) return out;
    const pqxx::result rows = tx.exec_prepared(pg::kReadStreamsStatement, json_array(streams));
    for (const auto& row : rows) {
        const auto i = to_int64(row[0]);
        if (i < 1 || i > static_cast<std::int64_t>(streams.size())) {
            throw Error(errc::protocol_error, "read_streams_in: the server answered for stream " + std::to_string(i) +
                                                  " of " + std::to_string(streams.size()));
        }
        auto& slot = out[static_cast<std::size_t>(i - 1)];
        slot.push_back(to_event(row, 1, streams[static_cast<std::size_t>(i - 1)]));
    }
    return out;
}

bool PostgresEventStore::processed_in(pqxx::transaction_base& tx, const std::string& consumer,
                                      const std::string& message_id) const {
    detail::validate_inbox_entry(consumer, message_id);
    return !tx.exec_prepared(pg::kInboxProcessedStatement, consumer, message_id).empty();
}

bool PostgresEventStore::record_processed_in(pqxx::transaction_base& tx, const std::string& consumer,
                                             const std::string& message_id) {
    detail::validate_inbox_entry(consumer, message_id);
    return tx.exec_prepared(pg::kInboxRecordStatement, consumer, message_id).affected_rows() == 1;
}

namespace {

// For each id in order: whether `found` holds it.
std::vector<bool> members(const std::vector<std::string>& ids, const pqxx::result& found) {
    std::unordered_set<std::string_view> in;
    for (const auto& row : found) in.insert(std::string_view(row[0].c_str(), row[0].size()));
    std::vector<bool> out;
    out.reserve(ids.size());
    for (const auto& id : ids) out.push_back(in.count(id) > 0);
    return out;
}

}  // namespace

std::vector<bool> PostgresEventStore::processed_many_in(pqxx::transaction_base& tx, const std::string& consumer,
                                                        const std::vector<std::string>& message_ids) const {
    detail::validate_inbox_entries(consumer, message_ids, false);
    if (message_ids.empty()) return {};
    return members(message_ids, tx.exec_prepared(pg::kInboxProcessedManyStatement, consumer, json_array(message_ids)));
}

std::vector<bool> PostgresEventStore::record_processed_many_in(pqxx::transaction_base& tx, const std::string& consumer,
                                                               const std::vector<std::string>& message_ids) {
    detail::validate_inbox_entries(consumer, message_ids, true);
    if (message_ids.empty()) return {};
    return members(message_ids, tx.exec_prepared(pg::kInboxRecordManyStatement, consumer, json_array(message_ids)));
}

const PostgresTableNames& PostgresEventStore::tables() const {
    impl_->require_open();
    return impl_->tables;
}

void PostgresEventStore::transact(std::string what, Durability durability,
                                  std::function<void(pqxx::transaction_base&)> body,
                                  detail::ErasedHandler<void> handler) {
    try {
        impl_->require_open();
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    impl_->submit(
        std::move(what),
        [body = std::move(body), durability](pg::Session& session) {
            pqxx::work tx(session.connection(), "boong-transact");
            if (durability == Durability::relaxed) tx.exec("SET LOCAL synchronous_commit = off");
            try {
                body(tx);
            } catch (const pqxx::failure&) {
                throw;  // the driver's: translated, the session checked
            } catch (const Error&) {
                throw;  // already one of ours (a ConcurrencyConflict of append_in, a Rejection...)
            } catch (...) {
                // The caller's own: it reaches the caller as it is; the
                // transaction rolls back and the session stays in the pool.
                throw pg::CallerError{std::current_exception()};
            }
            tx.commit();
        },
        std::move(handler), /*appends=*/true);
}

const PostgresStoreConfig& PostgresEventStore::config() const { return impl_->config; }

const std::string& PostgresEventStore::endpoint() const { return impl_->target.endpoint; }

}  // namespace boong
