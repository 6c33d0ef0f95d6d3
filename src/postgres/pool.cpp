#include "pool.hpp"

#include <boong/detail/backoff.hpp>

#include <boost/asio/error.hpp>

#include <spdlog/spdlog.h>

#include <pthread.h>

#include <algorithm>

namespace boong::pg {
namespace {

// Reconnection after a failed attempt: 100 ms doubling to 5 s, +-20 %.
constexpr RetryPolicy kReconnect{0, std::chrono::milliseconds(100), 2.0, std::chrono::milliseconds(5000), 0.2};
// A job that hits a serialization failure or deadlock runs this often at most.
constexpr int kAttempts = 3;

}  // namespace

std::exception_ptr aborted_error(const std::string& what, const char* why) {
    return std::make_exception_ptr(
        Error(boost::asio::error::make_error_code(boost::asio::error::operation_aborted), what + ": " + why));
}

struct Pool::Shared {
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<std::shared_ptr<Job>> jobs;
    bool stopping = false;
    std::shared_ptr<Counters> counters;

    // Start-up: how many workers have tried their first connection.
    ReadyFunction ready;
    std::size_t started = 0;
    std::exception_ptr first_error;

    // Reconnection backoff, shared by all workers: when the server is down,
    // one failed attempt holds them all back, instead of each trying in turn.
    int failures = 0;
    std::chrono::steady_clock::time_point next_attempt{};
    std::string last_error;
    // When the last failure was logged: attempts made before it (every
    // worker at start-up, or after the server went away) failed with it, and
    // are not logged again.
    std::chrono::steady_clock::time_point logged_failure{};
};

Pool::Pool(ConnectTarget target, int size, std::shared_ptr<Counters> counters)
    : target_(std::move(target)),
      size_(static_cast<std::size_t>(std::max(size, 1))),
      counters_(std::move(counters)),
      shared_(std::make_shared<Shared>()) {
    shared_->counters = counters_;
}

Pool::~Pool() { shutdown(); }

void Pool::shutdown() {
    std::deque<std::shared_ptr<Job>> queued;
    {
        std::lock_guard lock(shared_->mutex);
        shared_->stopping = true;
        queued.swap(shared_->jobs);
    }
    shared_->wake.notify_all();
    for (auto& job : queued) {
        Counters::add(counters_->aborted);
        job->fail(aborted_error(job->describe(), "the event store was destroyed before it ran"));
    }
    queued.clear();
    for (auto& t : threads_) {
        if (t.joinable()) t.join();
    }
}

void Pool::start(ReadyFunction ready) {
    shared_->ready = std::move(ready);
    threads_.reserve(size_);
    for (std::size_t i = 0; i < size_; ++i) threads_.emplace_back([this, i] { work(i); });
}

void Pool::set_statements(Statements statements) {
    statements_ = std::move(statements);
    statements_set_.store(true, std::memory_order_release);
}

void Pool::submit(std::shared_ptr<Job> job, bool urgent) {
    if (counters_->observer) job->queued_at = std::chrono::steady_clock::now();
    {
        std::lock_guard lock(shared_->mutex);
        if (!shared_->stopping) {
            if (urgent) {
                shared_->jobs.push_front(std::move(job));
            } else {
                shared_->jobs.push_back(std::move(job));
            }
        }
    }
    if (!job) {  // moved into the queue
        shared_->wake.notify_one();
        return;
    }
    Counters::add(counters_->aborted);
    job->fail(aborted_error(job->describe(), "the event store is shutting down"));
}

std::function<void(boost::asio::cancellation_type)> Pool::canceller(const std::shared_ptr<Job>& job) const {
    return [weak_shared = std::weak_ptr<Shared>(shared_), weak_job = std::weak_ptr<Job>(job)](
               boost::asio::cancellation_type) {
        auto shared = weak_shared.lock();
        auto queued = weak_job.lock();
        if (!shared || !queued) return;
        {
            std::lock_guard lock(shared->mutex);
            auto it = std::find(shared->jobs.begin(), shared->jobs.end(), queued);
            if (it == shared->jobs.end()) return;  // running or done: it completes normally
            shared->jobs.erase(it);
        }
        Counters::add(shared->counters->aborted);
        queued->fail(aborted_error(queued->describe(), "cancelled before it started"));
    };
}

std::unique_ptr<Session> Pool::connect() {
    auto& s = *shared_;
    {
        std::lock_guard lock(s.mutex);
        const auto now = std::chrono::steady_clock::now();
        if (s.failures > 0 && now < s.next_attempt) {
            const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(s.next_attempt - now);
            throw Error(errc::store_unavailable, s.last_error + " (next connection attempt in " +
                                                     std::to_string(wait.count()) + " ms)");
        }
    }
    const auto attempted = std::chrono::steady_clock::now();
    try {
        auto session = std::make_unique<Session>(target_);
        Counters::add(counters_->connects);
        std::lock_guard lock(s.mutex);
        if (s.failures > 0) spdlog::info("postgres: connected to {} again", target_.endpoint);
        s.failures = 0;
        return session;
    } catch (const Error& e) {
        Counters::add(counters_->connect_failures);
        std::lock_guard lock(s.mutex);
        ++s.failures;
        const auto delay = detail::backoff_delay(kReconnect, s.failures, reinterpret_cast<std::uintptr_t>(this));
        s.next_attempt = std::chrono::steady_clock::now() + delay;
        s.last_error = e.what();
        if (attempted >= s.logged_failure) {
            spdlog::warn("postgres: {}; retrying in {} ms", e.what(), delay.count());
            s.logged_failure = std::chrono::steady_clock::now();
        } else {
            spdlog::debug("postgres: {} (again, from another connection)", e.what());
        }
        throw;
    }
}

void Pool::work(std::size_t index) {
    const std::string name = "boong-pg-" + std::to_string(index);
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    auto& s = *shared_;

    std::unique_ptr<Session> session;
    std::exception_ptr error;
    try {
        session = connect();
    } catch (...) {
        error = std::current_exception();
    }
    ReadyFunction ready;
    {
        std::lock_guard lock(s.mutex);
        if (error && !s.first_error) s.first_error = error;
        if (++s.started == size_) {
            ready = std::move(s.ready);
            error = s.first_error;
        }
    }
    if (ready) ready(error ? nullptr : session.get(), error);

    for (;;) {
        std::shared_ptr<Job> job;
        {
            std::unique_lock lock(s.mutex);
            s.wake.wait(lock, [&] { return s.stopping || !s.jobs.empty(); });
            if (s.jobs.empty()) return;  // stopping, and nothing left
            job = std::move(s.jobs.front());
            s.jobs.pop_front();
        }
        if (counters_->observer) {
            detail::observe(counters_->observer, &Observer::pool_waited,
                            std::chrono::steady_clock::now() - job->queued_at);
        }
        execute(*job, session);
    }
}

void Pool::execute(Job& job, std::unique_ptr<Session>& session) {
    for (int attempt = 1;; ++attempt) {
        if (session && !session->usable()) {
            Counters::add(counters_->connections_lost);
            spdlog::warn("postgres: a connection to {} was closed by the server while idle; reconnecting",
                         target_.endpoint);
            session.reset();
        }
        if (!session) {
            try {
                session = connect();
            } catch (...) {
                job.fail(translate(std::current_exception(), target_, job.describe(), job.appends()).error);
                return;
            }
        }
        try {
            if (statements_set_.load(std::memory_order_acquire)) session->prepare(statements_);
            job.run(*session);
            return;
        } catch (...) {
            Failure f = translate(std::current_exception(), target_, job.describe(), job.appends());
            if (f.connection_lost) {
                Counters::add(counters_->connections_lost);
                session.reset();
            }
            if (f.retryable && attempt < kAttempts) continue;
            job.fail(f.error);
            return;
        }
    }
}

}  // namespace boong::pg
