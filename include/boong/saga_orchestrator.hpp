// Durable execution: a SagaRunner that shares its sagas with other processes
// through leases, takes over the sagas of processes that died, and resumes
// every interrupted saga at start-up.
//
//   boong::PostgresSagaIndex index(store);
//   boong::SagaOrchestrator<OrderSaga, boong::PostgresEventStore, boong::PostgresSagaIndex>
//       orchestrator(saga, store, index, config.saga, {.name = "orders-1"});
//   orchestrator.start();                         // resumes what is in flight, then keeps looking
//   auto outcome = co_await orchestrator.run(data);
//   ...
//   co_await orchestrator.stop();                 // interrupts (resumable) and releases the leases
//
// Guarantees (docs/durability.md): a saga runs in one orchestrator at a time
// while leases are honoured (each renews its leases every lease/3 and stops
// its sagas when it could not for most of a lease); a stale owner that still
// runs can never record anything, because the new owner's SagaResumed moved
// the stream's version. Steps run at least once, with a stable idempotency key.
#pragma once

#include <boong/detail/background.hpp>
#include <boong/detail/outage_log.hpp>
#include <boong/owner.hpp>
#include <boong/saga_leases.hpp>
#include <boong/saga_runner.hpp>

#include <boost/asio/bind_executor.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace boong {

struct OrchestratorOptions {
    // Unique among the orchestrators running at once, stable across restarts
    // (a restarted process takes its predecessor's sagas back at once).
    // Empty: "<hostname>-<pid>", which is unique but not stable.
    std::string name{};
    milliseconds lease{30000};          // how long a claim lasts unless renewed (>= 300 ms)
    milliseconds scan_interval{2000};   // how often to look for sagas to take over
    std::size_t claim_batch = 256;      // sagas claimed per query
    std::size_t max_running = 10000;    // no claims while this many sagas run here
    std::shared_ptr<spdlog::logger> logger{};  // null: spdlog's default logger
};

struct OrchestratorStats {
    std::uint64_t claimed = 0;    // sagas taken over (or back) and resumed
    std::uint64_t finished = 0;   // of those, how many reached an outcome here
    std::uint64_t lost = 0;       // sagas stopped here because another owner holds them
    std::uint64_t renew_failures = 0;
    std::uint64_t fenced = 0;     // times every saga here was stopped for want of renewal
};

template <class SagaT, class Store, class Leases>
class SagaOrchestrator {
public:
    static_assert(detail::always_false<SagaT>,
                  "boong::SagaOrchestrator<SagaT, Store, Leases>: SagaT must be a boong::Saga<...> type (`using "
                  "OrderProcessing = boong::Saga<boong::Step<...>, ...>;`), not the class that holds the step "
                  "functions");
    template <class... Args>
    explicit SagaOrchestrator(Args&&...) {}  // (no second error for the construction)
};

template <class... Stages, EventStore Store, SagaLeases Leases>
class SagaOrchestrator<detail::SagaType<Stages...>, Store, Leases> {
    using SagaT = detail::SagaType<Stages...>;

public:
    using Runner = SagaRunner<SagaT, Store>;
    using Definition = typename Runner::Definition;
    using Data = typename Runner::Data;
    using Outcome = typename Runner::Outcome;
    // Called (on the orchestrator's strand) when a saga this orchestrator
    // took over ends here: with its outcome, or with the exception that
    // stopped it (operation_aborted for a shutdown or a lost lease).
    using OutcomeCallback = std::function<void(const std::string& saga_id, std::exception_ptr, const Outcome&)>;

    // The definition, store and leases must outlive the orchestrator, and
    // stop() must have completed before it is destroyed (its background
    // loops and the sagas it took over refer to it).
    SagaOrchestrator(Definition& definition, Store& store, Leases& leases, SagaOptions saga = {},
                     OrchestratorOptions options = {})
        : leases_(leases),
          options_(checked(std::move(options))),
          owner_(make_owner(options_.name)),
          runner_(definition, store, std::move(saga), RunnerOptions{options_.logger, owner_, options_.lease}),
          background_(std::make_shared<detail::Background>(store.get_executor(), options_.logger)) {}

    // "name/incarnation", as recorded in the sagas it runs.
    const std::string& owner() const noexcept { return owner_; }
    Runner& runner() noexcept { return runner_; }

    // What to do with the outcomes of sagas taken over (default: log them).
    // Set before start().
    void on_outcome(OutcomeCallback callback) { on_outcome_ = std::move(callback); }

    // Starts claiming in-flight sagas (at once, then every scan_interval) and
    // renewing leases.
    void start() {
        background_->spawn("saga orchestrator " + owner_ + ": claims", claim_loop());
        background_->spawn("saga orchestrator " + owner_ + ": leases", renew_loop());
    }

    // New sagas, recorded as owned by this orchestrator: see SagaRunner::run.
    boost::asio::awaitable<Outcome> run(Data data) { return runner_.run(std::move(data)); }
    boost::asio::awaitable<Outcome> run(Data data, RunOptions options) {
        return runner_.run(std::move(data), std::move(options));
    }
    bool cancel(const std::string& saga_id, std::string reason = "cancelled through the API") {
        return runner_.cancel(saga_id, std::move(reason));
    }

    // Stops claiming and renewing, interrupts every saga here (each stays
    // resumable where it stood) and releases the leases so that others take
    // them over at once.
    boost::asio::awaitable<void> stop() {
        co_await background_->stop();
        runner_.shutdown();
        co_await wait_idle(std::chrono::seconds(10));
        try {
            co_await leases_.async_release(owner_, boost::asio::use_awaitable);
        } catch (const std::exception& e) {
            options_.logger->warn("saga orchestrator {}: could not release its leases (others take its sagas when "
                                  "they expire): {}",
                                  owner_, e.what());
        }
    }

    std::size_t running() const { return runner_.running(); }

    OrchestratorStats stats() const {
        OrchestratorStats s;
        s.claimed = claimed_.load();
        s.finished = finished_.load();
        s.lost = lost_.load();
        s.renew_failures = renew_failures_.load();
        s.fenced = fenced_.load();
        return s;
    }

private:
    static OrchestratorOptions checked(OrchestratorOptions o) {
        if (!o.logger) o.logger = spdlog::default_logger();
        if (o.lease < milliseconds(300) || o.lease > std::chrono::hours(24)) {
            throw Error(errc::invalid_config, "saga orchestrator: lease must be in 300 ms..24 h");
        }
        if (o.scan_interval < milliseconds(1)) throw Error(errc::invalid_config, "saga orchestrator: scan interval must be >= 1 ms");
        if (o.claim_batch < 1 || o.claim_batch > 10000) {
            throw Error(errc::invalid_config, "saga orchestrator: claim batch must be in 1..10000");
        }
        if (o.max_running < 1) throw Error(errc::invalid_config, "saga orchestrator: max running must be >= 1");
        return o;
    }

    boost::asio::awaitable<void> claim_loop() {
        auto& log = *options_.logger;
        while (!background_->stopping()) {
            bool full_batch = false;
            try {
                const std::size_t here = runner_.running();
                if (here < options_.max_running) {
                    const std::size_t want = std::min(options_.claim_batch, options_.max_running - here);
                    auto ids = co_await leases_.async_claim(std::string(SagaT::name), owner_, options_.lease, want,
                                                            boost::asio::use_awaitable);
                    full_batch = ids.size() == want;
                    if (!ids.empty()) log.info("saga orchestrator {}: took over {} sagas", owner_, ids.size());
                    for (auto& id : ids) resume(std::move(id));
                }
                if (auto lasted = claim_outage_.success(std::chrono::steady_clock::now())) {
                    log.info("saga orchestrator {}: looking for sagas to take over works again after {} s", owner_,
                             std::chrono::duration_cast<std::chrono::seconds>(*lasted).count());
                }
            } catch (const std::exception& e) {
                const auto now = std::chrono::steady_clock::now();
                log.log(claim_outage_.failure(now), "saga orchestrator {}: looking for sagas to take over failed (for {} s): {}",
                        owner_, claim_outage_.seconds(now), e.what());
            }
            if (!full_batch) co_await background_->sleep(options_.scan_interval);
        }
    }

    void resume(std::string id) {
        ++claimed_;
        runner_.async_resume(
            id, boost::asio::bind_executor(background_->get_executor(), [this, id](std::exception_ptr e, Outcome o) {
                ++finished_;
                if (on_outcome_) {
                    on_outcome_(id, e, o);
                    return;
                }
                if (!e) {
                    options_.logger->info("saga {} ({}): {} after being taken over", id, SagaT::name, to_string(o.status));
                    return;
                }
                try {
                    std::rethrow_exception(e);
                } catch (const Error& err) {
                    // Finished meanwhile, or another owner got it first: nothing to do.
                    const bool benign = err.code() == make_error_code(errc::saga_not_resumable) ||
                                        err.code() == make_error_code(errc::concurrency_conflict) ||
                                        err.code() == boost::asio::error::operation_aborted;
                    if (is_unavailable(err.code())) {
                        // Resumable as it stood: taken over again once its lease ends and the store answers.
                        options_.logger->info("saga {} ({}): interrupted, it resumes when the store answers: {}", id,
                                              SagaT::name, err.what());
                        return;
                    }
                    options_.logger->log(benign ? spdlog::level::debug : spdlog::level::err,
                                         "saga {} ({}): resuming it stopped: {}", id, SagaT::name, err.what());
                } catch (const std::exception& err) {
                    options_.logger->error("saga {} ({}): resuming it failed: {}", id, SagaT::name, err.what());
                }
            }));
    }

    boost::asio::awaitable<void> renew_loop() {
        auto& log = *options_.logger;
        const auto interval = options_.lease / 3;
        auto last_ok = std::chrono::steady_clock::now();
        bool fenced = false;
        while (!background_->stopping()) {
            co_await background_->sleep(interval);
            if (background_->stopping()) break;
            try {
                auto lost = co_await leases_.async_renew(owner_, options_.lease, runner_.running_ids(),
                                                         boost::asio::use_awaitable);
                last_ok = std::chrono::steady_clock::now();
                fenced = false;
                if (auto lasted = renew_outage_.success(last_ok)) {
                    log.info("saga orchestrator {}: renewing leases works again after {} s", owner_,
                             std::chrono::duration_cast<std::chrono::seconds>(*lasted).count());
                }
                for (const auto& id : lost) {
                    ++lost_;
                    log.warn("saga orchestrator {}: saga {} is held by another owner now; stopping it here", owner_, id);
                    runner_.interrupt(id, "its lease was taken over");
                }
            } catch (const std::exception& e) {
                ++renew_failures_;
                const auto now = std::chrono::steady_clock::now();
                log.log(renew_outage_.failure(now), "saga orchestrator {}: renewing leases failed (for {} s): {}",
                        owner_, renew_outage_.seconds(now), e.what());
                // Before the leases can expire, stop: another process may take
                // these sagas then, and one saga must not run in two places.
                if (!fenced && std::chrono::steady_clock::now() - last_ok >= options_.lease - interval &&
                    runner_.running() > 0) {
                    fenced = true;  // once per outage; sagas still unwinding need no second stop
                    ++fenced_;
                    log.error("saga orchestrator {}: leases not renewed for {} ms; stopping its {} sagas (they resume "
                              "when the database is back)",
                              owner_, options_.lease.count() - interval.count(), runner_.running());
                    runner_.shutdown();
                }
            }
        }
    }

    boost::asio::awaitable<void> wait_idle(std::chrono::steady_clock::duration limit) {
        const auto until = std::chrono::steady_clock::now() + limit;
        boost::asio::steady_timer t(background_->get_executor());
        while (runner_.running() > 0 && std::chrono::steady_clock::now() < until) {
            t.expires_after(milliseconds(5));
            co_await t.async_wait(boost::asio::use_awaitable);
        }
    }

    Leases& leases_;
    OrchestratorOptions options_;
    std::string owner_;
    Runner runner_;
    std::shared_ptr<detail::Background> background_;
    OutcomeCallback on_outcome_;
    detail::OutageLog claim_outage_, renew_outage_;  // on the background strand
    std::atomic<std::uint64_t> claimed_{0}, finished_{0}, lost_{0}, renew_failures_{0}, fenced_{0};
};

}  // namespace boong
