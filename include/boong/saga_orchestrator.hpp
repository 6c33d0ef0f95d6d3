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
// An orchestrator serves one saga type: new sagas start on the newest
// definition (SagaT); earlier versions registered with serve<OlderSagaT>()
// finish the sagas that started on them (docs/versioning.md). A saga whose
// definition nobody here serves is moved to the `blocked` phase, with the
// reason, never left looking attended.
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
#include <boong/saga_index.hpp>
#include <boong/saga_leases.hpp>
#include <boong/saga_runner.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
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
    // In-flight sagas of any type that nobody has held this long (their
    // type's orchestrators would have taken them) are taken here and, when
    // this orchestrator cannot run them, blocked with the reason. 0: never.
    // Otherwise >= lease.
    milliseconds orphan_after{std::chrono::minutes(5)};
    std::shared_ptr<spdlog::logger> logger{};  // null: spdlog's default logger
    // Told of claims, lost sagas, self-fencing, renewal failures and blocked
    // sagas, and (through its runners) of every saga's run; null: none.
    std::shared_ptr<Observer> observer{};
};

struct OrchestratorStats {
    std::uint64_t claimed = 0;    // sagas taken over (or back) and resumed
    std::uint64_t finished = 0;   // of those, how many reached an outcome here
    std::uint64_t lost = 0;       // sagas stopped here because another owner holds them
    std::uint64_t renew_failures = 0;
    std::uint64_t fenced = 0;     // times every saga here was stopped for want of renewal
    std::uint64_t blocked = 0;    // sagas moved to `blocked` here (no definition served here fits them)
};

namespace detail {

// An earlier version of a saga type, served beside the newest: only resumes.
template <class Data>
class ServedVersion {
public:
    using Callback = std::function<void(std::exception_ptr, SagaOutcome<Data>)>;
    virtual ~ServedVersion() = default;
    virtual const SagaDefinition& definition() const noexcept = 0;
    // Completes `done` through `executor`.
    virtual void resume(SagaState state, boost::asio::any_io_executor executor, Callback done) = 0;
    virtual std::size_t running() const = 0;
    virtual std::vector<std::string> running_ids() const = 0;
    virtual void shutdown() = 0;
    virtual bool interrupt(const std::string& saga_id, std::string reason) = 0;
    virtual bool cancel(const std::string& saga_id, std::string reason) = 0;
};

template <class SagaT, class Store>
class ServedVersionOf final : public ServedVersion<typename SagaT::data_type> {
public:
    using Callback = typename ServedVersion<typename SagaT::data_type>::Callback;
    ServedVersionOf(typename SagaT::definition_type& definition, Store& store, SagaOptions saga, RunnerOptions runner)
        : runner_(definition, store, std::move(saga), std::move(runner)) {}
    const SagaDefinition& definition() const noexcept override { return runner_.definition(); }
    void resume(SagaState state, boost::asio::any_io_executor executor, Callback done) override {
        runner_.async_resume(std::move(state), boost::asio::bind_executor(std::move(executor), std::move(done)));
    }
    std::size_t running() const override { return runner_.running(); }
    std::vector<std::string> running_ids() const override { return runner_.running_ids(); }
    void shutdown() override { runner_.shutdown(); }
    bool interrupt(const std::string& id, std::string reason) override { return runner_.interrupt(id, std::move(reason)); }
    bool cancel(const std::string& id, std::string reason) override { return runner_.cancel(id, std::move(reason)); }

private:
    SagaRunner<SagaT, Store> runner_;
};

}  // namespace detail

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
        : store_(store),
          leases_(leases),
          options_(checked(std::move(options))),
          owner_(make_owner(options_.name)),
          runner_(definition, store, std::move(saga), runner_options()),
          background_(std::make_shared<detail::Background>(store.get_executor(), options_.logger)) {}

    // "name/incarnation", as recorded in the sagas it runs.
    const std::string& owner() const noexcept { return owner_; }
    // The newest definition's runner: new sagas start there.
    Runner& runner() noexcept { return runner_; }

    // Also serves an earlier version of the saga type (same name and data
    // type, a lower version): the sagas that started on it resume on it.
    // Call before start(); the definition must outlive the orchestrator.
    template <class OlderSagaT>
    void serve(typename OlderSagaT::definition_type& definition, SagaOptions saga = {}) {
        static_assert(is_saga<OlderSagaT>::value,
                      "boong::SagaOrchestrator::serve<OlderSagaT>: OlderSagaT must be a boong::Saga<...> type");
        static_assert(OlderSagaT::name == SagaT::name,
                      "boong::SagaOrchestrator::serve<OlderSagaT>: an earlier version of the same saga type (its "
                      "class declares the same `name`)");
        static_assert(std::is_same_v<typename OlderSagaT::data_type, Data>,
                      "boong::SagaOrchestrator::serve<OlderSagaT>: the versions of a saga type share its data type "
                      "(evolve the data with fields that have defaults)");
        static_assert(OlderSagaT::version < SagaT::version,
                      "boong::SagaOrchestrator::serve<OlderSagaT>: only versions older than the newest (the "
                      "orchestrator's SagaT) are served beside it");
        if (started_) throw Error(errc::invalid_config, "saga orchestrator: serve() must come before start()");
        for (const auto& v : older_) {
            if (v->definition().version == OlderSagaT::version) {
                throw Error(errc::invalid_config, "saga orchestrator: version " + std::to_string(OlderSagaT::version) +
                                                      " of " + std::string(SagaT::name) + " is served already");
            }
        }
        older_.push_back(std::make_unique<detail::ServedVersionOf<OlderSagaT, Store>>(definition, store_, std::move(saga),
                                                                                     runner_options()));
    }

    // The definitions served here, newest first.
    std::vector<SagaDefinition> definitions() const {
        std::vector<SagaDefinition> out{runner_.definition()};
        for (const auto& v : older_) out.push_back(v->definition());
        return out;
    }

    // What to do with the outcomes of sagas taken over (default: log them).
    // Set before start().
    void on_outcome(OutcomeCallback callback) { on_outcome_ = std::move(callback); }

    // Starts claiming in-flight sagas (at once, then every scan_interval) and
    // renewing leases.
    void start() {
        started_ = true;
        std::string served;
        for (const auto& d : definitions()) served += (served.empty() ? "" : ", ") + std::to_string(d.version);
        options_.logger->info("saga orchestrator {}: serving {} version{} {} (new sagas start on {})", owner_,
                              SagaT::name, older_.empty() ? "" : "s", served, SagaT::version);
        background_->spawn("saga orchestrator " + owner_ + ": claims", claim_loop());
        background_->spawn("saga orchestrator " + owner_ + ": leases", renew_loop());
    }

    // New sagas, recorded as owned by this orchestrator: see SagaRunner::run.
    boost::asio::awaitable<Outcome> run(Data data) { return runner_.run(std::move(data)); }
    boost::asio::awaitable<Outcome> run(Data data, RunOptions options) {
        return runner_.run(std::move(data), std::move(options));
    }
    bool cancel(const std::string& saga_id, std::string reason = "cancelled through the API") {
        if (runner_.cancel(saga_id, reason)) return true;
        for (auto& v : older_) {
            if (v->cancel(saga_id, reason)) return true;
        }
        return false;
    }

    // Resumes a saga here, on the definition it started on among those served
    // (an operator's retry of a failed saga, say): see SagaRunner::async_resume.
    // errc::definition_mismatch, the saga left as it is, when none fits it.
    boost::asio::awaitable<Outcome> resume(std::string saga_id) {
        SagaState state = co_await detail::read_saga(store_, std::move(saga_id));
        if (!definition_mismatch(state.definition, runner_.definition())) {
            co_return co_await runner_.async_resume(std::move(state), boost::asio::use_awaitable);
        }
        for (auto& v : older_) {
            if (!definition_mismatch(state.definition, v->definition())) {
                co_return co_await resume_on(*v, std::move(state));
            }
        }
        throw Error(errc::definition_mismatch, "saga " + state.saga_id + " (" + state.saga_type +
                                                   ") cannot resume here: " + unserved_reason(state.definition));
    }

    // Stops claiming and renewing, interrupts every saga here (each stays
    // resumable where it stood) and releases the leases so that others take
    // them over at once.
    boost::asio::awaitable<void> stop() {
        co_await background_->stop();
        shutdown_all();
        co_await wait_idle(std::chrono::seconds(10));
        try {
            co_await leases_.async_release(owner_, boost::asio::use_awaitable);
        } catch (const std::exception& e) {
            options_.logger->warn("saga orchestrator {}: could not release its leases (others take its sagas when "
                                  "they expire): {}",
                                  owner_, e.what());
        }
    }

    // Sagas running here, on every version served.
    std::size_t running() const {
        std::size_t n = runner_.running();
        for (const auto& v : older_) n += v->running();
        return n;
    }

    // The sagas of this type not completed nor compensated, by definition
    // version and phase: a version can be retired once it has none.
    boost::asio::awaitable<std::vector<DefinitionCount>> count_definitions()
        requires SagaIndex<Leases>
    {
        return leases_.async_count_definitions(std::string(SagaT::name), boost::asio::use_awaitable);
    }

    OrchestratorStats stats() const {
        OrchestratorStats s;
        s.claimed = claimed_.load();
        s.finished = finished_.load();
        s.lost = lost_.load();
        s.renew_failures = renew_failures_.load();
        s.fenced = fenced_.load();
        s.blocked = blocked_.load();
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
        if (o.orphan_after.count() != 0 && o.orphan_after < o.lease) {
            throw Error(errc::invalid_config, "saga orchestrator: orphan_after must be 0 (never) or >= the lease");
        }
        return o;
    }

    RunnerOptions runner_options() const {
        return RunnerOptions{options_.logger, owner_, options_.lease, options_.observer};
    }

    void shutdown_all() {
        runner_.shutdown();
        for (auto& v : older_) v->shutdown();
    }

    std::vector<std::string> running_ids() const {
        auto ids = runner_.running_ids();
        for (const auto& v : older_) {
            auto more = v->running_ids();
            ids.insert(ids.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
        }
        return ids;
    }

    boost::asio::awaitable<void> claim_loop() {
        auto& log = *options_.logger;
        SagaClaim claim{std::string(SagaT::name), definitions()};
        while (!background_->stopping()) {
            bool full_batch = false;
            try {
                const std::size_t here = running();
                if (here < options_.max_running) {
                    const std::size_t want = std::min(options_.claim_batch, options_.max_running - here);
                    auto ids = co_await leases_.async_claim(claim, owner_, options_.lease, want,
                                                            boost::asio::use_awaitable);
                    full_batch = ids.size() == want;
                    if (!ids.empty()) log.info("saga orchestrator {}: took over {} sagas", owner_, ids.size());
                    for (auto& id : ids) take(std::move(id));
                    if (options_.orphan_after.count() > 0 && !full_batch) {
                        auto orphans = co_await leases_.async_claim_orphans(
                            owner_, options_.lease, options_.orphan_after, want - ids.size(), boost::asio::use_awaitable);
                        if (!orphans.empty()) {
                            log.warn("saga orchestrator {}: took {} sagas nobody ran for {} s", owner_, orphans.size(),
                                     std::chrono::duration_cast<std::chrono::seconds>(options_.orphan_after).count());
                        }
                        for (auto& id : orphans) take(std::move(id));
                    }
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

    // A claimed saga: resumed on the definition it started on, or blocked.
    void take(std::string id) {
        background_->spawn("saga orchestrator " + owner_ + ": take over saga " + id, take_over(std::move(id)));
    }

    boost::asio::awaitable<void> take_over(std::string id) {
        co_await stop_run_here(id);
        SagaState state;
        std::string unreadable;
        try {
            state = co_await detail::read_saga(store_, id);
        } catch (const Error& e) {
            if (is_unavailable(e.code()) || e.code() == make_error_code(errc::transaction_aborted)) {
                // Its lease ends and it is taken again once the store answers.
                options_.logger->info("saga {} ({}): could not read it to take it over: {}", id, SagaT::name, e.what());
                co_return;
            }
            if (e.code() == make_error_code(errc::not_found)) co_return;
            unreadable = e.what();
        }
        if (!unreadable.empty()) {
            // Blocked once: claimed again later, it is left as it is.
            if (co_await last_event_type(id) != saga_event::blocked) {
                co_await block(id, std::nullopt, "its events cannot be read: " + unreadable, true);
            }
            co_return;
        }
        if (state.phase != SagaPhase::running && state.phase != SagaPhase::compensating &&
            state.phase != SagaPhase::blocked) {
            co_return;  // finished meanwhile (or failed): nothing to run
        }
        if (state.phase == SagaPhase::blocked && state.blocked_for_operator) {
            // Resuming it failed for good; only an operator's resume() retries it.
            options_.logger->debug("saga {} ({}): blocked until an operator resumes it: {}", id, state.saga_type,
                                   state.blocked_reason);
            co_return;
        }
        if (state.saga_type != SagaT::name) {
            co_await block(id, state,
                           "no orchestrator serving saga type '" + state.saga_type + "' took it over for " +
                               std::to_string(std::chrono::duration_cast<std::chrono::seconds>(options_.orphan_after).count()) +
                               " s (" + owner_ + " serves '" + std::string(SagaT::name) + "')");
            co_return;
        }
        auto done = [this, id](std::exception_ptr e, Outcome o) { resumed(id, e, std::move(o)); };
        if (!definition_mismatch(state.definition, runner_.definition())) {
            ++claimed_;
            detail::observe(options_.observer, &Observer::saga_claimed, SagaT::name, std::size_t{1});
            runner_.async_resume(std::move(state), boost::asio::bind_executor(background_->get_executor(), done));
            co_return;
        }
        for (auto& v : older_) {
            if (!definition_mismatch(state.definition, v->definition())) {
                ++claimed_;
                detail::observe(options_.observer, &Observer::saga_claimed, SagaT::name, std::size_t{1});
                v->resume(std::move(state), background_->get_executor(), done);
                co_return;
            }
        }
        co_await block(id, state, unserved_reason(state.definition));
    }

    // A saga claimed while a run of it still goes on here: its lease ran out
    // under that run before a renewal said it was lost (an operator's cancel
    // took it from this owner, or renewals failed). That run stops first
    // (what it had buffered conflicts, if the stream moved), so that the
    // claim resumes the saga from its events alone.
    boost::asio::awaitable<void> stop_run_here(const std::string& id) {
        bool here = runner_.interrupt(id, "claimed again: its lease ran out under this run");
        for (auto& v : older_) here = v->interrupt(id, "claimed again: its lease ran out under this run") || here;
        if (!here) co_return;
        const auto runs_here = [&] {
            auto ids = runner_.running_ids();
            for (const auto& v : older_) {
                auto more = v->running_ids();
                ids.insert(ids.end(), more.begin(), more.end());
            }
            return std::find(ids.begin(), ids.end(), id) != ids.end();
        };
        const auto until = std::chrono::steady_clock::now() + options_.lease;
        boost::asio::steady_timer t(background_->get_executor());
        while (runs_here() && std::chrono::steady_clock::now() < until) {
            t.expires_after(milliseconds(5));
            co_await t.async_wait(boost::asio::use_awaitable);
        }
    }

    // An earlier version's resume, awaited (its completion is a std::function,
    // which must be copyable: the handler is shared).
    static boost::asio::awaitable<Outcome> resume_on(detail::ServedVersion<Data>& version, SagaState state) {
        auto executor = co_await boost::asio::this_coro::executor;
        // A named operation, not a lambda inside the co_await expression: g++ 12
        // destroys such a closure temporary twice.
        auto op = boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(std::exception_ptr, Outcome)>(
            [&version, executor](auto handler, SagaState s) {
                auto shared = std::make_shared<decltype(handler)>(std::move(handler));
                version.resume(std::move(s), executor,
                               [shared](std::exception_ptr e, Outcome o) { std::move(*shared)(e, std::move(o)); });
            },
            boost::asio::use_awaitable, std::move(state));
        co_return co_await std::move(op);
    }

    // Why no definition served here fits `recorded`.
    std::string unserved_reason(const SagaDefinition& recorded) const {
        const auto served = definitions();
        for (const auto& d : served) {
            if (d.version == recorded.version) return *definition_mismatch(recorded, d);
        }
        std::string versions;
        for (const auto& d : served) versions += (versions.empty() ? "" : ", ") + std::to_string(d.version);
        return "it started on version " + std::to_string(recorded.version) + " of " + std::string(SagaT::name) +
               ", which " + owner_ + " does not serve (it serves " + versions + ")";
    }

    // The type of a saga stream's last event ("" for none, or unreadable).
    boost::asio::awaitable<std::string> last_event_type(const std::string& id) {
        std::string type;
        try {
            const auto events = co_await detail::read_saga_events(store_, id);
            if (!events.empty()) type = events.back().event.type;
        } catch (const std::exception&) {
            // unreadable: treated as not blocked yet
        }
        co_return type;
    }

    // Moves a saga this orchestrator holds to `blocked` (freeing it), with the
    // reason. `state`: as read; none when its events do not fold (then the
    // event goes on whatever version the stream is at). `for_operator`: its
    // own definition cannot run it; only an operator's resume() retries it.
    boost::asio::awaitable<void> block(std::string id, std::optional<SagaState> state, std::string reason,
                                       bool for_operator = false) {
        EventData e;
        e.event_id = ids_.next();
        e.type = std::string(saga_event::blocked);
        SagaPhase from = SagaPhase::running;
        if (state) from = state->phase == SagaPhase::blocked ? state->blocked_from : state->phase;
        e.payload = json{{"reason", reason}, {"phase", to_string(from)}, {"by", owner_}};
        if (for_operator) e.payload["needs_operator"] = true;
        e.metadata.timestamp = Clock::now();
        if (state) {
            e.metadata.correlation_id = state->correlation_id;
            e.metadata.causation_id = state->last_event_id;
        }
        const auto expected = state ? ExpectedVersion::exactly(state->version) : ExpectedVersion::any();
        std::vector<EventData> events;
        events.push_back(std::move(e));
        try {
            co_await store_.async_append(saga_stream(id), expected, std::move(events), boost::asio::use_awaitable);
        } catch (const Error& err) {
            // Moved meanwhile: whoever moved it runs it. Otherwise its lease ends and it is looked at again.
            const bool moved = err.code() == make_error_code(errc::concurrency_conflict);
            options_.logger->log(moved ? spdlog::level::debug : spdlog::level::warn,
                                 "saga {}: could not block it ({}): {}", id, reason, err.what());
            co_return;
        }
        ++blocked_;
        detail::observe(options_.observer, &Observer::saga_blocked,
                        state ? std::string_view(state->saga_type) : std::string_view(SagaT::name));
        options_.logger->warn("saga {} ({}): blocked: {}", id, state ? state->saga_type : std::string("?"), reason);
    }

    void resumed(const std::string& id, std::exception_ptr e, Outcome o) {
        ++finished_;
        if (on_outcome_) {
            on_outcome_(id, e, o);
        } else if (!e) {
            options_.logger->info("saga {} ({}): {} after being taken over", id, SagaT::name, to_string(o.status));
        }
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const Error& err) {
            // Finished meanwhile, or another owner got it first: nothing to do.
            const bool benign = err.code() == make_error_code(errc::saga_not_resumable) ||
                                err.code() == make_error_code(errc::concurrency_conflict) ||
                                err.code() == boost::asio::error::operation_aborted;
            if (is_unavailable(err.code()) || err.code() == make_error_code(errc::transaction_aborted)) {
                // Resumable as it stood: taken over again once its lease ends and the store answers
                // (or, for a transaction aborted by contention, once its lease ends).
                options_.logger->info("saga {} ({}): interrupted, it resumes when the store answers: {}", id,
                                      SagaT::name, err.what());
                return;
            }
            if (benign) {
                options_.logger->debug("saga {} ({}): resuming it stopped: {}", id, SagaT::name, err.what());
                return;
            }
            options_.logger->error("saga {} ({}): resuming it failed: {}", id, SagaT::name, err.what());
            block_after_failure(id, err.what());
        } catch (const std::exception& err) {
            options_.logger->error("saga {} ({}): resuming it failed: {}", id, SagaT::name, err.what());
            block_after_failure(id, err.what());
        }
    }

    // A saga that cannot go on here (its recorded data does not decode, a
    // step it recorded is unknown): blocked, not claimed again every lease.
    void block_after_failure(std::string id, std::string error) {
        if (background_->stopping()) return;
        background_->spawn("saga orchestrator " + owner_ + ": block saga " + id,
                           block_unresumable(std::move(id), std::move(error)));
    }

    boost::asio::awaitable<void> block_unresumable(std::string id, std::string error) {
        std::optional<SagaState> state;
        try {
            state = co_await detail::read_saga(store_, id);
        } catch (const std::exception&) {
            co_return;  // unreadable now: looked at again when its lease ends
        }
        const bool in_flight = state->phase == SagaPhase::running || state->phase == SagaPhase::compensating;
        if (!in_flight && !(state->phase == SagaPhase::blocked && !state->blocked_for_operator)) co_return;
        co_await block(std::move(id), std::move(state), "resuming it failed: " + error, true);
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
                auto lost = co_await leases_.async_renew(owner_, options_.lease, running_ids(),
                                                         boost::asio::use_awaitable);
                last_ok = std::chrono::steady_clock::now();
                fenced = false;
                if (auto lasted = renew_outage_.success(last_ok)) {
                    log.info("saga orchestrator {}: renewing leases works again after {} s", owner_,
                             std::chrono::duration_cast<std::chrono::seconds>(*lasted).count());
                }
                for (const auto& id : lost) {
                    ++lost_;
                    detail::observe(options_.observer, &Observer::saga_lost, SagaT::name);
                    log.warn("saga orchestrator {}: saga {} is no longer held here (another owner took it, or an "
                             "operator's request took it from this one); stopping it here",
                             owner_, id);
                    if (runner_.interrupt(id, "its lease was taken over")) continue;
                    for (auto& v : older_) {
                        if (v->interrupt(id, "its lease was taken over")) break;
                    }
                }
            } catch (const std::exception& e) {
                ++renew_failures_;
                detail::observe(options_.observer, &Observer::lease_renewal_failed, SagaT::name);
                const auto now = std::chrono::steady_clock::now();
                log.log(renew_outage_.failure(now), "saga orchestrator {}: renewing leases failed (for {} s): {}",
                        owner_, renew_outage_.seconds(now), e.what());
                // Before the leases can expire, stop: another process may take
                // these sagas then, and one saga must not run in two places.
                if (!fenced && std::chrono::steady_clock::now() - last_ok >= options_.lease - interval &&
                    running() > 0) {
                    fenced = true;  // once per outage; sagas still unwinding need no second stop
                    ++fenced_;
                    detail::observe(options_.observer, &Observer::orchestrator_fenced, SagaT::name);
                    log.error("saga orchestrator {}: leases not renewed for {} ms; stopping its {} sagas (they resume "
                              "when the database is back)",
                              owner_, options_.lease.count() - interval.count(), running());
                    shutdown_all();
                }
            }
        }
    }

    boost::asio::awaitable<void> wait_idle(std::chrono::steady_clock::duration limit) {
        const auto until = std::chrono::steady_clock::now() + limit;
        boost::asio::steady_timer t(background_->get_executor());
        while (running() > 0 && std::chrono::steady_clock::now() < until) {
            t.expires_after(milliseconds(5));
            co_await t.async_wait(boost::asio::use_awaitable);
        }
    }

    Store& store_;
    Leases& leases_;
    OrchestratorOptions options_;
    std::string owner_;
    Runner runner_;
    std::vector<std::unique_ptr<detail::ServedVersion<Data>>> older_;
    std::shared_ptr<detail::Background> background_;
    OutcomeCallback on_outcome_;
    bool started_ = false;
    IdGenerator ids_;
    detail::OutageLog claim_outage_, renew_outage_;  // on the background strand
    std::atomic<std::uint64_t> claimed_{0}, finished_{0}, lost_{0}, renew_failures_{0}, fenced_{0}, blocked_{0};
};

}  // namespace boong
