// Running sagas of one type against an event store.
#pragma once

#include <boong/detail/saga_execution.hpp>
#include <boong/event_store.hpp>
#include <boong/policy.hpp>
#include <boong/saga.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/strand.hpp>

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace boong {

// Options of one run.
struct RunOptions {
    // Empty: a new UUID. An id already stored fails the run with ConcurrencyConflict
    // (nothing runs); one running in this runner with errc::saga_not_resumable.
    std::string saga_id{};
    std::string correlation_id{};  // empty: the saga id
    std::string causation_id{};    // what caused this saga (e.g. the command's or event's id)
    // The saga must finish its steps within this long; past it, it is compensated
    // (FailureKind::deadline). Recorded in the saga's events, so it holds across restarts.
    std::optional<milliseconds> timeout{};
};

struct RunnerOptions {
    std::shared_ptr<spdlog::logger> logger{};  // null: spdlog's default logger
    // Set by SagaOrchestrator: the name recorded as the owner of the sagas
    // this runner starts or resumes, and the lease it holds on them.
    std::string owner{};
    milliseconds lease{0};
    // Told of every saga's start, end and step attempts (metrics, paging);
    // null: none. Shared by every saga of the runner.
    std::shared_ptr<Observer> observer{};
};

// Runs sagas of type SagaT, recording them in `store`.
//
// Each saga runs on a strand of the store's executor, so the steps of a
// parallel group may share the saga data safely on a multi-threaded
// io_context. The definition object and the store must outlive the runner and
// every saga it started.
template <class SagaT, class Store>
class SagaRunner {
public:
    static_assert(detail::always_false<SagaT>,
                  "boong::SagaRunner<SagaT, Store>: SagaT must be a boong::Saga<...> type (`using OrderProcessing = "
                  "boong::Saga<boong::Step<...>, ...>;`), not the class that holds the step functions");
    template <class... Args>
    explicit SagaRunner(Args&&...) {}  // (no second error for the construction)
};

template <class... Stages, EventStore Store>
class SagaRunner<detail::SagaType<Stages...>, Store> {
    using SagaT = detail::SagaType<Stages...>;

public:
    using Definition = typename SagaT::definition_type;
    using Data = typename SagaT::data_type;
    using Outcome = SagaOutcome<Data>;
    using executor_type = boost::asio::any_io_executor;

    // Throws boong::Error(errc::invalid_config) when a policy is out of range or
    // names a step the saga does not have.
    SagaRunner(Definition& definition, Store& store, SagaOptions options = {}, RunnerOptions runner = {})
        : core_(std::make_shared<Core>(definition, store, std::move(options), std::move(runner))) {
        validate(core_->shared->options);
        for (const auto& [name, policy] : core_->shared->options.steps) {
            if (core_->shared->find_step(name) == nullptr) {
                throw Error(errc::invalid_config, "saga " + std::string(SagaT::name) + ": a policy names step '" +
                                                      name + "', which the saga does not have");
            }
        }
    }

    executor_type get_executor() const { return core_->shared->store.get_executor(); }

    // Runs a new saga to its end. Completes with its outcome — completed,
    // compensated or failed — or with an exception when the saga could not be
    // recorded (store errors, a saga id already used) or was interrupted by a
    // shutdown (asio::error::operation_aborted: it stays as it is, resumable).
    // Cancelling this operation (its cancellation slot) is such a shutdown, not
    // a cancellation of the saga: use cancel() for that.
    template <class Token>
    auto async_run(Data data, RunOptions options, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, Outcome)>(
            [core = core_](auto handler, Data d, RunOptions o) {
                std::string id = o.saga_id.empty() ? core->shared->ids.next() : std::move(o.saga_id);
                auto exec = core->make_execution();
                std::optional<Clock::time_point> deadline;
                if (o.timeout) deadline = Clock::now() + *o.timeout;
                try {
                    detail::validate_stream_id(saga_stream(id));
                    exec->prepare_new(std::move(id), std::move(d), std::move(o.correlation_id),
                                      std::move(o.causation_id), deadline);
                } catch (...) {
                    detail::post_completion(exec->get_executor(), std::move(handler), std::current_exception(),
                                            Outcome{});
                    return;
                }
                start(core, std::move(exec), std::move(handler));
            },
            token, std::move(data), std::move(options));
    }

    // Two overloads rather than a default argument: g++ 12 miscompiles a
    // defaulted (or braced) class temporary inside a co_await expression.
    boost::asio::awaitable<Outcome> run(Data data) {
        return async_run(std::move(data), RunOptions{}, boost::asio::use_awaitable);
    }
    boost::asio::awaitable<Outcome> run(Data data, RunOptions options) {
        return async_run(std::move(data), std::move(options), boost::asio::use_awaitable);
    }

    // Continues a saga from its stored events: one interrupted by a shutdown or
    // a crash goes on where it stood (a step whose completion was not recorded
    // runs again, with the same idempotency key); a `failed` saga retries its
    // compensations, once an operator has fixed their cause; a blocked one goes
    // on where it stood. A completed or compensated saga is
    // errc::saga_not_resumable; an unknown one errc::not_found; one that
    // started on another version of the definition errc::definition_mismatch.
    template <class Token>
    auto async_resume(std::string saga_id, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, Outcome)>(
            [core = core_](auto handler, std::string id) {
                auto exec = core->make_execution();
                boost::asio::co_spawn(
                    exec->get_executor(), load(core, std::move(id)),
                    [core, exec, h = std::move(handler)](std::exception_ptr e, SagaState state) mutable {
                        if (!e) {
                            try {
                                exec->prepare_resume(std::move(state));
                            } catch (...) {
                                e = std::current_exception();
                            }
                        }
                        if (e) {
                            detail::post_completion(exec->get_executor(), std::move(h), e, Outcome{});
                            return;
                        }
                        start(core, std::move(exec), std::move(h));
                    });
            },
            token, std::move(saga_id));
    }

    boost::asio::awaitable<Outcome> resume(std::string saga_id) {
        return async_resume(std::move(saga_id), boost::asio::use_awaitable);
    }

    // As async_resume(id), from a state the caller has read (detail::read_saga):
    // how an orchestrator serving several versions picks the runner.
    template <class Token>
    auto async_resume(SagaState state, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, Outcome)>(
            [core = core_](auto handler, SagaState s) {
                auto exec = core->make_execution();
                try {
                    check_resumable(*core, s);
                    exec->prepare_resume(std::move(s));
                } catch (...) {
                    detail::post_completion(exec->get_executor(), std::move(handler), std::current_exception(),
                                            Outcome{});
                    return;
                }
                start(core, std::move(exec), std::move(handler));
            },
            token, std::move(state));
    }

    // The definition this runner runs (recorded in the sagas it starts).
    const SagaDefinition& definition() const noexcept { return core_->shared->definition_id; }

    // Asks a saga running in this runner to stop and compensate what it
    // completed (FailureKind::cancelled). Thread-safe; the stop happens on the
    // saga's strand. Compensations are not interrupted by it. Returns false
    // when no saga with this id is running here.
    bool cancel(const std::string& saga_id, std::string reason = "cancelled through the API") {
        auto exec = core_->find(saga_id);
        if (!exec) return false;
        boost::asio::dispatch(exec->get_executor(), [exec, r = std::move(reason)]() mutable {
            exec->request_stop(detail::StopReason::cancel, std::move(r));
        });
        return true;
    }

    // Interrupts every running saga without compensating: each stays as its
    // events describe it, to be resumed later. Their runs complete with
    // asio::error::operation_aborted.
    void shutdown() {
        for (auto& exec : core_->all()) {
            boost::asio::dispatch(exec->get_executor(), [exec] {
                exec->request_stop(detail::StopReason::shutdown, "shutdown");
            });
        }
    }

    // Interrupts one running saga without compensating it (as shutdown() does
    // for all): for an orchestrator that lost its claim on it. Returns false
    // when no saga with this id is running here.
    bool interrupt(const std::string& saga_id, std::string reason = "interrupted") {
        auto exec = core_->find(saga_id);
        if (!exec) return false;
        boost::asio::dispatch(exec->get_executor(), [exec, r = std::move(reason)]() mutable {
            exec->request_stop(detail::StopReason::shutdown, std::move(r));
        });
        return true;
    }

    // How many sagas are running in this runner now.
    std::size_t running() const {
        std::lock_guard lock(core_->mutex);
        return core_->active.size();
    }

    // The ids of the sagas running in this runner now.
    std::vector<std::string> running_ids() const {
        std::lock_guard lock(core_->mutex);
        std::vector<std::string> ids;
        ids.reserve(core_->active.size());
        for (const auto& [id, e] : core_->active) ids.emplace_back(id);
        return ids;
    }

private:
    using Shared = detail::SagaShared<SagaT, Store>;
    using Execution = detail::SagaExecution<SagaT, Store>;

    struct Core {
        Core(Definition& d, Store& s, SagaOptions o, RunnerOptions r)
            : shared(std::make_shared<Shared>(d, s, std::move(o),
                                              r.logger ? std::move(r.logger) : spdlog::default_logger(),
                                              std::move(r.owner), r.lease, std::move(r.observer))) {}

        std::shared_ptr<Shared> shared;
        mutable std::mutex mutex;
        // Keyed by a view of the execution's own saga id, which outlives its entry.
        std::unordered_map<std::string_view, std::weak_ptr<Execution>> active;

        std::shared_ptr<Execution> make_execution() {
            return std::make_shared<Execution>(shared, detail::make_saga_strand(shared->store.get_executor()));
        }
        std::shared_ptr<Execution> find(std::string_view id) {
            std::lock_guard lock(mutex);
            auto it = active.find(id);
            return it == active.end() ? nullptr : it->second.lock();
        }
        std::vector<std::shared_ptr<Execution>> all() {
            std::lock_guard lock(mutex);
            std::vector<std::shared_ptr<Execution>> out;
            for (auto& [id, w] : active) {
                if (auto e = w.lock()) out.push_back(std::move(e));
            }
            return out;
        }
        bool enroll(std::string_view id, const std::shared_ptr<Execution>& e) {
            std::lock_guard lock(mutex);
            return active.try_emplace(id, e).second;
        }
        void withdraw(std::string_view id) {
            std::lock_guard lock(mutex);
            active.erase(id);
        }
    };

    static boost::asio::awaitable<SagaState> load(std::shared_ptr<Core> core, std::string id) {
        SagaState state = co_await detail::read_saga(core->shared->store, std::move(id));
        check_resumable(*core, state);
        co_return state;
    }

    static void check_resumable(const Core& core, const SagaState& state) {
        const std::string& id = state.saga_id;
        if (state.saga_type != SagaT::name) {
            throw Error(errc::saga_not_resumable, "saga " + id + " is of type " + state.saga_type + ", not " +
                                                      std::string(SagaT::name));
        }
        if (state.phase == SagaPhase::completed || state.phase == SagaPhase::compensated) {
            throw Error(errc::saga_not_resumable,
                        "saga " + id + " is already " + std::string(to_string(state.phase)));
        }
        if (auto why = definition_mismatch(state.definition, core.shared->definition_id)) {
            throw Error(errc::definition_mismatch, "saga " + id + " (" + state.saga_type + ") cannot resume here: " + *why);
        }
    }

    template <class Handler>
    static void start(std::shared_ptr<Core> core, std::shared_ptr<Execution> exec, Handler handler) {
        if (!core->enroll(exec->id(), exec)) {
            detail::post_completion(exec->get_executor(), std::move(handler),
                                    std::make_exception_ptr(Error(errc::saga_not_resumable,
                                                                  "saga " + exec->id() + " is already running here")),
                                    Outcome{});
            return;
        }
        // The caller giving up on the run is a shutdown of this saga, not a cancellation.
        auto slot = boost::asio::get_associated_cancellation_slot(handler);
        if (slot.is_connected()) {
            slot.assign([exec](boost::asio::cancellation_type) {
                boost::asio::dispatch(exec->get_executor(),
                                      [exec] { exec->request_stop(detail::StopReason::shutdown, "run cancelled"); });
            });
        }
        boost::asio::co_spawn(
            exec->get_executor(), exec->run(),
            boost::asio::bind_cancellation_slot(
                exec->root_slot(), [core, exec, slot, h = std::move(handler)](std::exception_ptr e,
                                                                              Outcome o) mutable {
                    if (slot.is_connected()) slot.clear();
                    core->withdraw(exec->id());
                    auto hex = boost::asio::get_associated_executor(h, exec->get_executor());
                    boost::asio::dispatch(hex, boost::asio::append(std::move(h), e, std::move(o)));
                }));
    }

    std::shared_ptr<Core> core_;
};

}  // namespace boong
