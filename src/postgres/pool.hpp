// The connection pool: N worker threads, each owning one connection, taking
// jobs from one queue. libpqxx blocks and its objects are not thread-safe, so
// each connection is only ever touched by its own thread, and the io_context
// only ever sees completions posted back to it.
#pragma once

#include "connection.hpp"

#include <boong/observer.hpp>

#include <boost/asio/cancellation_type.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace boong::pg {

// What the store counts (PostgresStoreStats is a snapshot of these).
// The pool's and the batcher's counts, and the observer they tell (boong/observer.hpp).
struct Counters {
    std::atomic<std::uint64_t> appends{0};
    std::atomic<std::uint64_t> append_transactions{0};
    std::atomic<std::uint64_t> events_written{0};
    std::atomic<std::uint64_t> replays{0};
    std::atomic<std::uint64_t> conflicts{0};
    std::atomic<std::uint64_t> duplicates{0};
    std::atomic<std::uint64_t> batch_splits{0};
    std::atomic<std::uint64_t> known_version_transactions{0};
    std::atomic<std::uint64_t> connects{0};
    std::atomic<std::uint64_t> connect_failures{0};
    std::atomic<std::uint64_t> connections_lost{0};
    std::atomic<std::uint64_t> aborted{0};
    std::atomic<std::uint64_t> read_ahead_pages{0};
    std::shared_ptr<Observer> observer;  // PostgresStoreConfig::observer; set before the pool starts

    static void add(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
        c.fetch_add(n, std::memory_order_relaxed);
    }
};

// The error an operation completes with when it never ran (cancelled, or the
// store was destroyed first).
std::exception_ptr aborted_error(const std::string& what, const char* why);

// A unit of work for a worker.
class Job {
public:
    virtual ~Job() = default;
    // Runs on a worker thread with a live session. Completes the operation on
    // success; throws on failure (the pool then translates the exception and
    // calls fail). Never leaves a transaction open on the session.
    virtual void run(Session& session) = 0;
    // Completes the operation with `error` (whatever run has not completed).
    virtual void fail(std::exception_ptr error) noexcept = 0;
    // What the job does, for messages: "read_all from 7".
    virtual std::string describe() const = 0;
    // Whether it may write events (then an unknown outcome is worth saying
    // how to retry).
    virtual bool appends() const noexcept { return false; }

    // When it was queued (set by Pool::submit when an observer wants the wait).
    std::chrono::steady_clock::time_point queued_at{};
};

class Pool {
public:
    // Runs once, on the last worker to finish its first connection attempt,
    // with that worker's session, or with the first connection error.
    using ReadyFunction = std::function<void(Session* session, std::exception_ptr error)>;

    Pool(ConnectTarget target, int size, std::shared_ptr<Counters> counters);
    ~Pool();  // shutdown()
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;

    // Starts the workers; each connects at once. Call once.
    void start(ReadyFunction ready);

    // Fails queued jobs with operation_aborted, lets running ones finish and
    // joins the workers. Later submissions fail at once. Idempotent.
    void shutdown();

    // Statements every session registers before running a job (set once,
    // before the first job, and never changed).
    void set_statements(Statements statements);

    // Queues `job` (at the front when `urgent`). Fails it at once when the
    // pool is shutting down.
    void submit(std::shared_ptr<Job> job, bool urgent = false);

    // A function for a cancellation slot: removes the job from the queue if no
    // worker has taken it yet and fails it with operation_aborted. Safe to call
    // from any thread, and after the pool is gone (then it does nothing).
    std::function<void(boost::asio::cancellation_type)> canceller(const std::shared_ptr<Job>& job) const;

    const ConnectTarget& target() const noexcept { return target_; }

private:
    struct Shared;
    void work(std::size_t index);
    std::unique_ptr<Session> connect();
    void execute(Job& job, std::unique_ptr<Session>& session);

    ConnectTarget target_;
    std::size_t size_;
    std::shared_ptr<Counters> counters_;
    std::shared_ptr<Shared> shared_;
    Statements statements_;
    std::atomic<bool> statements_set_{false};
    std::vector<std::thread> threads_;
};

}  // namespace boong::pg
