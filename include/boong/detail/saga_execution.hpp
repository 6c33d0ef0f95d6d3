// One run of one saga: the state machine that drives steps forward, then
// compensations backward, recording every transition in the saga's stream.
#pragma once

#include <boong/detail/attempt_lane.hpp>
#include <boong/detail/attempt_policy.hpp>
#include <boong/detail/json_object.hpp>
#include <boong/detail/backoff.hpp>
#include <boong/detail/post.hpp>
#include <boong/detail/validate.hpp>
#include <boong/event_store.hpp>
#include <boong/observer.hpp>
#include <boong/policy.hpp>
#include <boong/saga.hpp>
#include <boong/saga_state.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/logger.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <iterator>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace boong::detail {

namespace asio = boost::asio;

// What every run of one saga type shares: set up once by the runner.
template <class SagaT, class Store>
struct SagaShared {
    using Definition = typename SagaT::definition_type;
    using Data = typename SagaT::data_type;

    SagaShared(Definition& d, Store& s, SagaOptions o, std::shared_ptr<spdlog::logger> l, std::string owner_name = {},
               milliseconds owner_lease = {}, std::shared_ptr<Observer> o11y = {})
        : definition(d),
          store(s),
          options(std::move(o)),
          logger(std::move(l)),
          owner(std::move(owner_name)),
          lease(owner_lease),
          observer(std::move(o11y)) {}

    Definition& definition;
    Store& store;
    SagaOptions options;
    std::shared_ptr<spdlog::logger> logger;
    // The orchestrator running these sagas, recorded in SagaStarted and
    // SagaResumed (metadata "owner" and "lease_ms"): empty for a plain runner.
    std::string owner;
    milliseconds lease{0};
    std::shared_ptr<Observer> observer;  // null: none
    std::vector<StepDescriptor<Definition, Data>> steps = SagaT::steps();
    // What SagaStarted records, and what a resumed saga must have started on.
    SagaDefinition definition_id{SagaT::version, SagaT::fingerprint(), SagaT::shape()};
    IdGenerator ids;

    const StepDescriptor<Definition, Data>* find_step(std::string_view name) const {
        for (const auto& s : steps) {
            if (s.name == name) return &s;
        }
        return nullptr;
    }
};

// A saga's whole stream, read page by page (empty for an unknown saga).
template <class Store>
asio::awaitable<std::vector<RecordedEvent>> read_saga_events(Store& store, const std::string& id) {
    const std::string stream = saga_stream(id);
    validate_stream_id(stream);
    std::vector<RecordedEvent> all;
    constexpr std::size_t page = 1000;
    for (;;) {
        auto events = co_await store.async_read_stream(stream, static_cast<std::int64_t>(all.size()) + 1, page,
                                                       asio::use_awaitable);
        const bool last = events.size() < page;
        std::move(events.begin(), events.end(), std::back_inserter(all));
        if (last) break;
    }
    co_return all;
}

// A saga's stream, folded. errc::not_found when it has no events.
template <class Store>
asio::awaitable<SagaState> read_saga(Store& store, std::string id) {
    const auto events = co_await read_saga_events(store, id);
    if (events.empty()) throw Error(errc::not_found, "no saga with id " + id);
    co_return fold_saga(events);
}

// The outcome label of an ended attempt (see Observer): a failure's kind,
// named for people reading a dashboard.
constexpr std::string_view attempt_outcome(FailureKind kind) noexcept {
    switch (kind) {
        case FailureKind::none: return "completed";
        case FailureKind::transient: return "failed";
        case FailureKind::timeout: return "timeout";
        case FailureKind::rejected: return "rejected";
        case FailureKind::cancelled:
        case FailureKind::deadline: return "cancelled";
        case FailureKind::unavailable: return "unavailable";
    }
    return "failed";
}

// Why a running saga is being stopped from outside its steps.
enum class StopReason { none, cancel, deadline, shutdown };

struct StepFailure {
    bool failed = false;
    FailureKind kind = FailureKind::none;
    std::string step;
    std::string error;
};

template <class SagaT, class Store>
class SagaExecution : public std::enable_shared_from_this<SagaExecution<SagaT, Store>> {
public:
    using Shared = SagaShared<SagaT, Store>;
    using Definition = typename SagaT::definition_type;
    using Data = typename SagaT::data_type;
    using Descriptor = StepDescriptor<Definition, Data>;
    using executor_type = asio::any_io_executor;  // a strand: see make_saga_strand

    SagaExecution(std::shared_ptr<Shared> shared, executor_type ex)
        : shared_(std::move(shared)),
          ex_(std::move(ex)),
          main_lane_(std::make_shared<AttemptLane>(root_, ex_)) {
    }

    const executor_type& get_executor() const noexcept { return ex_; }
    asio::cancellation_slot root_slot() { return root_.slot(); }
    const std::string& id() const noexcept { return state_.saga_id; }

    // A new saga: nothing is stored until the run starts.
    void prepare_new(std::string saga_id, Data data, std::string correlation_id, std::string causation_id,
                     std::optional<Clock::time_point> deadline) {
        state_.saga_id = std::move(saga_id);
        state_.saga_type = std::string(SagaT::name);
        state_.definition = shared_->definition_id;
        state_.correlation_id = correlation_id.empty() ? state_.saga_id : std::move(correlation_id);
        state_.deadline = deadline;
        stream_ = saga_stream(state_.saga_id);
        causation_ = std::move(causation_id);
        reserve();
        data_ = std::move(data);
        resuming_ = false;
    }

    // An existing saga, from its folded stream (the runner has checked that it
    // started on this definition). A blocked one goes on in the phase it was
    // blocked in.
    void prepare_resume(SagaState state) {
        state_ = std::move(state);
        if (state_.phase == SagaPhase::blocked) state_.phase = state_.blocked_from;
        reserve();
        stream_ = saga_stream(state_.saga_id);
        causation_ = state_.last_event_id;
        try {
            data_ = state_.data.template get<Data>();
        } catch (const json::exception& e) {
            throw Error(errc::protocol_error,
                        "saga " + state_.saga_id + ": its recorded data does not decode: " + std::string(e.what()));
        }
        resuming_ = true;
    }

    // The vectors every run fills, sized once.
    void reserve() {
        state_.completed.reserve(SagaT::step_count);
        state_.compensable.reserve(SagaT::step_count);
        pending_.reserve(4);
    }

    // Asks a running saga to stop and compensate. Runs on the saga's strand.
    void request_stop(StopReason reason, std::string why) {
        if (done_ || stop_ == StopReason::shutdown) return;
        if (reason != StopReason::shutdown) {
            // The first stop wins; once compensating, only a shutdown may
            // interrupt: compensations are shielded from cancellation and deadlines.
            if (stop_ != StopReason::none || state_.phase != SagaPhase::running) return;
        }
        stop_ = reason;
        stop_message_ = std::move(why);
        root_.emit(asio::cancellation_type::terminal);
    }

    // The whole run in one coroutine: a nested one would cost a frame and a
    // move of the outcome.
    asio::awaitable<SagaOutcome<Data>> run() {
        co_await asio::this_coro::throw_if_cancelled(false);
        auto self = this->shared_from_this();  // keep alive across suspensions
        // However the run ends (with its outcome, or an exception on its way
        // out), it is finished before the caller resumes.
        const Finisher finisher{*this};
        run_began_ = std::chrono::steady_clock::now();
        observe(shared_->observer, resuming_ ? &Observer::saga_resumed : &Observer::saga_started, SagaT::name);
        if (!resuming_) {
            json started = object("data", json(data_), "definition", shared_->definition_id.to_json(), "saga_type",
                                  SagaT::name);
            if (state_.deadline) started["deadline"] = format_timestamp(*state_.deadline);
            record(saga_event::started, std::move(started));
            stamp_owner();
        } else {
            if (state_.phase == SagaPhase::failed) state_.phase = SagaPhase::compensating;
            record(saga_event::resumed, object("phase", to_string(state_.phase)));
            stamp_owner();
            // An operator's cancel (SagaCancelRequested) stopped its last run:
            // this one compensates, as cancel() would have in that process.
            if (state_.phase == SagaPhase::running && state_.cancel_requested) {
                stop_ = StopReason::cancel;
                stop_message_ = state_.cancel_reason;
            }
        }
        arm_deadline();

        if (state_.phase == SagaPhase::running) {
            StepFailure failure = co_await forward();
            if (!failure.failed) {
                record(saga_event::completed, json::object());  // the data is in the last StepCompleted
                state_.phase = SagaPhase::completed;
                co_await flush();
                log(spdlog::level::debug, "", "completed");
                co_return ended(SagaStatus::completed);
            }
            state_.phase = SagaPhase::compensating;
            state_.failed_step = failure.step;
            state_.failure_kind = failure.kind;
            state_.error = failure.error;
            if (deadline_timer_) deadline_timer_->cancel();
            record(saga_event::compensation_started,
                   object("failed_step", failure.step, "kind", to_string(failure.kind), "error", failure.error));
            // A Rejection is a business outcome (a declined payment), not a
            // fault: this is its one line, at info.
            log(failure.kind == FailureKind::rejected ? spdlog::level::info : spdlog::level::warn, failure.step,
                "compensating after {} failure: {}", to_string(failure.kind), failure.error);
        }

        if (!co_await compensate_all()) {
            state_.phase = SagaPhase::failed;
            record(saga_event::failed, object("step", state_.failed_compensation, "error", state_.compensation_error));
            co_await flush();
            log(spdlog::level::err, state_.failed_compensation, "FAILED: compensation gave up: {}",
                state_.compensation_error);
            co_return ended(SagaStatus::failed);
        }
        state_.phase = SagaPhase::compensated;
        record(saga_event::compensated, object("failed_step", state_.failed_step, "kind",
                                               to_string(state_.failure_kind), "error", state_.error));
        co_await flush();
        log(state_.failure_kind == FailureKind::rejected ? spdlog::level::debug : spdlog::level::info,
            state_.failed_step, "compensated");
        co_return ended(SagaStatus::compensated);
    }

private:
    // Nothing of a finished run may stay pending on the io_context.
    void finish() {
        done_ = true;
        if (!ended_) observe(shared_->observer, &Observer::saga_interrupted, SagaT::name);
        if (deadline_timer_) deadline_timer_->cancel();
        main_lane_->close();
    }
    struct Finisher {
        SagaExecution& execution;
        ~Finisher() { execution.finish(); }
    };

    // Runs the stages not yet completed, in order; stops at the first failure.
    asio::awaitable<StepFailure> forward() {
        const auto& steps = shared_->steps;
        // A stage has at most every step of the saga: no allocation per stage.
        std::array<const Descriptor*, SagaT::step_count> todo{};
        for (std::size_t i = 0; i < steps.size();) {
            std::size_t end = i;
            std::size_t count = 0;
            for (; end < steps.size() && steps[end].stage == steps[i].stage; ++end) {
                if (!state_.step_completed(steps[end].name)) todo[count++] = &steps[end];
            }
            i = end;
            if (count == 0) continue;
            // (no co_await inside ?: — g++ 12 miscompiles it)
            StepFailure f;
            if (count == 1) {
                f = co_await run_step(*todo.front(), nullptr, main_lane_);
            } else {
                const std::span<const Descriptor* const> group(todo.data(), count);
                f = co_await run_group(group);
            }
            if (f.failed) co_return f;
        }
        co_return StepFailure{};
    }

    struct Group {
        Group(std::size_t n, const executor_type& ex) : signals(n), done(n, false), results(n), joined(ex) {
            joined.expires_at(asio::steady_timer::time_point::max());
        }
        std::vector<asio::cancellation_signal> signals;
        std::vector<bool> done;
        std::vector<StepFailure> results;
        std::size_t remaining = 0;
        bool failed = false;
        std::string failed_step;
        std::exception_ptr error;
        asio::steady_timer joined;  // never expires: cancelled when the last branch ends

        void cancel_running() {
            for (std::size_t j = 0; j < signals.size(); ++j) {
                if (!done[j]) signals[j].emit(asio::cancellation_type::terminal);
            }
        }
    };

    // Fan out, then join. The first step to fail cancels the others.
    asio::awaitable<StepFailure> run_group(std::span<const Descriptor* const> todo) {
        auto group = std::make_shared<Group>(todo.size(), ex_);
        group->remaining = todo.size();
        for (std::size_t i = 0; i < todo.size(); ++i) {
            asio::co_spawn(
                ex_, branch(*todo[i], group, i),
                asio::bind_cancellation_slot(group->signals[i].slot(), [group, i](std::exception_ptr e, StepFailure f) {
                    group->done[i] = true;
                    group->results[i] = std::move(f);
                    if (e && !group->error) group->error = e;
                    if ((e || group->results[i].failed) && !group->failed) {
                        group->failed = true;
                        group->failed_step = group->results[i].step;
                        group->cancel_running();
                    }
                    if (--group->remaining == 0) group->joined.cancel();
                }));
        }
        while (group->remaining > 0) {
            co_await group->joined.async_wait(asio::as_tuple(asio::use_awaitable));
            // Woken with branches still running: the saga itself is being
            // stopped, and the stop must reach every branch.
            if (group->remaining > 0) group->cancel_running();
        }
        if (group->error) std::rethrow_exception(group->error);
        // Report the failure that started it, not the siblings it cancelled.
        for (auto& r : group->results) {
            if (r.failed && r.kind != FailureKind::cancelled) co_return std::move(r);
        }
        for (auto& r : group->results) {
            if (r.failed) co_return std::move(r);
        }
        co_return StepFailure{};
    }

    asio::awaitable<StepFailure> branch(const Descriptor& step, std::shared_ptr<Group> group, std::size_t index) {
        co_await asio::this_coro::throw_if_cancelled(false);
        auto lane = std::make_shared<AttemptLane>(group->signals[index], ex_);
        StepFailure f;
        try {
            f = co_await run_step(step, group.get(), lane);
        } catch (...) {
            lane->close();
            throw;
        }
        lane->close();
        co_return f;
    }

    // Attempts one step per its retry policy. A try that found a dependency
    // unavailable is not an attempt: the same attempt is tried again, with
    // outage backoff, until the dependency answers.
    asio::awaitable<StepFailure> run_step(const Descriptor& step, Group* group, std::shared_ptr<AttemptLane> lane) {
        const StepPolicy& policy = shared_->options.policy_for(step.name);
        int outage_tries = 0;  // tries of this attempt that found a dependency unavailable
        for (int attempt = 1;;) {
            if (stop_ == StopReason::shutdown) co_await interrupted();
            if (auto f = interruption(step, group); f.failed) {
                // Stopped before trying again a step an earlier run began: that
                // attempt's effect may have happened (compensate_uncertain).
                const bool uncertain = attempt == 1 && policy.compensate_uncertain && step.compensation != nullptr &&
                                       std::find(state_.begun.begin(), state_.begun.end(), step.name) !=
                                           state_.begun.end();
                if (uncertain) state_.compensable.emplace_back(step.name);
                record_step_failure(step.name, attempt, f, true, uncertain);
                co_return f;
            }
            if (outage_tries == 0) record(saga_event::step_started, object("attempt", attempt, "step", step.name));
            co_await flush();
            if (auto f = interruption(step, group); f.failed) {
                record_step_failure(step.name, attempt, f, true);
                co_return f;
            }
            const auto deadline = attempt_deadline(policy.timeout);
            StepContext<Data> ctx(state_.saga_id, SagaT::name, step.name, attempt, false, data_, state_.correlation_id,
                                  deadline, SagaLogger(shared_->logger, state_.saga_id, step.name, state_.correlation_id),
                                  state_.key_step(step.name));
            // A failed attempt's changes to the data are undone, so that the
            // next attempt (or a resume, which only knows what was recorded)
            // starts from the same data. Steps of a parallel group share the
            // data with siblings still running, so theirs cannot be undone.
            std::optional<Data> before;
            if (group == nullptr) before.emplace(data_);
            asio::awaitable<void> work = step.action(shared_->definition, ctx);
            const auto attempt_began = std::chrono::steady_clock::now();
            begin_attempt(lane, deadline);
            std::exception_ptr error;
            try {
                co_await std::move(work);
            } catch (...) {
                error = std::current_exception();
            }
            AttemptResult r = end_attempt(*lane, std::move(error));
            if (r.error && before) data_ = std::move(*before);
            if (!r.error) {
                state_.completed.emplace_back(step.name);
                state_.compensable.emplace_back(step.name);
                record(saga_event::step_completed, object("attempt", attempt, "data", json(data_), "step", step.name));
                attempted(step.name, false, FailureKind::none, attempt_began);
                co_return StepFailure{};
            }
            if (stop_ == StopReason::shutdown) co_await interrupted();
            StepFailure f = interruption(step, group);
            if (!f.failed) f = failure_of(step.name, r, policy.timeout);
            attempted(step.name, false, f.kind, attempt_began);
            const int outage = f.kind == FailureKind::unavailable ? ++outage_tries : (outage_tries = 0);
            const AttemptDecision next = after_failure(f.kind, attempt, outage, false, policy, step.compensation != nullptr,
                                                       shared_->options.outage_backoff, salt(step.name));
            if (next.next == Next::retry_outage) {
                co_await wait_out_outage(step.name, attempt, f, outage, next.delay, false);
                continue;
            }
            const bool final = next.next == Next::give_up;
            // Its effect may have happened: undo it with the others if the policy says so.
            if (next.compensate_uncertain) state_.compensable.emplace_back(step.name);
            record_step_failure(step.name, attempt, f, final, next.compensate_uncertain);
            log(f.kind == FailureKind::rejected ? spdlog::level::debug : spdlog::level::warn, step.name,
                "attempt {} failed ({}{}): {}", attempt, to_string(f.kind), final ? ", giving up" : "", f.error);
            if (final) co_return f;
            observe(shared_->observer, &Observer::step_retried, SagaT::name, step.name, false);
            co_await flush();
            co_await sleep(next.delay);
            ++attempt;
        }
    }

    // A try of `step` (its action, or its compensation) found a dependency
    // unavailable: the outage's first failure is recorded (never final) and
    // logged; every try waits `delay` (the outage backoff, which grows with `tries`).
    asio::awaitable<void> wait_out_outage(std::string_view step, int attempt, const StepFailure& f, int tries,
                                          milliseconds delay, bool compensating) {
        if (tries == 1) {
            if (compensating) {
                record(saga_event::compensation_failed, object("step", step, "attempt", attempt, "kind",
                                                               to_string(f.kind), "error", f.error, "final", false));
            } else {
                record_step_failure(step, attempt, f, false);
            }
            log(spdlog::level::warn, step, "{} attempt {} found a dependency unavailable (not counted; trying again "
                "with backoff until it answers): {}", compensating ? "compensation" : "step", attempt, f.error);
        }
        co_await flush();
        co_await sleep(delay);
    }

    // Compensates, in reverse order of completion, every completed step not yet compensated.
    asio::awaitable<bool> compensate_all() {
        const std::vector<std::string> compensable = state_.compensable;
        for (auto it = compensable.rbegin(); it != compensable.rend(); ++it) {
            if (state_.step_compensated(*it)) continue;
            const Descriptor* step = shared_->find_step(*it);
            if (step == nullptr) {
                throw Error(errc::protocol_error, "saga " + state_.saga_id + ": recorded step '" + *it +
                                                      "' is not a step of saga type " + std::string(SagaT::name));
            }
            if (step->compensation == nullptr) continue;
            if (!co_await compensate_step(*step)) co_return false;
        }
        co_return true;
    }

    asio::awaitable<bool> compensate_step(const Descriptor& step) {
        const StepPolicy& policy = shared_->options.policy_for(step.name);
        int outage_tries = 0;  // see run_step
        for (int attempt = 1;;) {
            if (stop_ == StopReason::shutdown) co_await interrupted();
            if (outage_tries == 0)
                record(saga_event::step_compensating, object("attempt", attempt, "step", step.name));
            co_await flush();
            const auto deadline = attempt_deadline(policy.compensation_timeout);
            StepContext<Data> ctx(state_.saga_id, SagaT::name, step.name, attempt, true, data_, state_.correlation_id,
                                  deadline, SagaLogger(shared_->logger, state_.saga_id, step.name, state_.correlation_id),
                                  state_.key_step(step.name));
            asio::awaitable<void> work = step.compensation(shared_->definition, ctx);
            const auto attempt_began = std::chrono::steady_clock::now();
            begin_attempt(main_lane_, deadline);
            std::exception_ptr error;
            try {
                co_await std::move(work);
            } catch (...) {
                error = std::current_exception();
            }
            AttemptResult r = end_attempt(*main_lane_, std::move(error));
            if (!r.error) {
                state_.compensated.emplace_back(step.name);
                record(saga_event::step_compensated, object("attempt", attempt, "step", step.name));
                attempted(step.name, true, FailureKind::none, attempt_began);
                co_return true;
            }
            if (stop_ == StopReason::shutdown) co_await interrupted();
            StepFailure f = failure_of(step.name, r, policy.compensation_timeout);
            attempted(step.name, true, f.kind, attempt_began);
            const int outage = f.kind == FailureKind::unavailable ? ++outage_tries : (outage_tries = 0);
            const AttemptDecision next = after_failure(f.kind, attempt, outage, true, policy, true,
                                                       shared_->options.outage_backoff, salt(step.name));
            if (next.next == Next::retry_outage) {
                co_await wait_out_outage(step.name, attempt, f, outage, next.delay, true);
                continue;
            }
            const bool final = next.next == Next::give_up;
            record(saga_event::compensation_failed, object("step", step.name, "attempt", attempt, "kind",
                                                           to_string(f.kind), "error", f.error, "final", final));
            log(final ? spdlog::level::err : spdlog::level::warn, step.name, "compensation attempt {} failed{}: {}",
                attempt, final ? ", giving up" : "", f.error);
            if (final) {
                state_.failed_compensation = std::string(step.name);
                state_.compensation_error = f.error;
                co_return false;
            }
            observe(shared_->observer, &Observer::step_retried, SagaT::name, step.name, true);
            co_await flush();
            co_await sleep(next.delay);
            ++attempt;
        }
    }

    // A failure imposed from outside the step: a stop of the saga, or a sibling's failure.
    StepFailure interruption(const Descriptor& step, const Group* group) const {
        switch (stop_) {
            case StopReason::cancel:
                return {true, FailureKind::cancelled, std::string(step.name), "saga cancelled: " + stop_message_};
            case StopReason::deadline:
                return {true, FailureKind::deadline, std::string(step.name), stop_message_};
            case StopReason::shutdown:
            case StopReason::none:
                break;
        }
        if (group != nullptr && group->failed) {
            return {true, FailureKind::cancelled, std::string(step.name),
                    "cancelled: step " + group->failed_step + " of its parallel group failed"};
        }
        return {};
    }

    static StepFailure failure_of(std::string_view step, const AttemptResult& r, milliseconds timeout) {
        auto c = classify_attempt(r, timeout);
        return StepFailure{true, c.kind, std::string(step), std::move(c.error)};
    }

    void record_step_failure(std::string_view step, int attempt, const StepFailure& f, bool final,
                             bool compensate = false) {
        json payload =
            object("step", step, "attempt", attempt, "kind", to_string(f.kind), "error", f.error, "final", final);
        if (compensate) payload["compensate"] = true;
        record(saga_event::step_failed, std::move(payload));
    }

    // Shutdown is not a cancellation: record what is pending (best effort) and
    // leave the saga as it stands, for a later resume.
    asio::awaitable<void> interrupted() {
        try {
            co_await flush();
        } catch (const std::exception& e) {
            log(spdlog::level::err, "", "could not record progress while shutting down: {}", e.what());
        }
        throw Error(asio::error::operation_aborted, "saga " + state_.saga_id + " interrupted by shutdown");
    }

    // Waits `d`; a stop of the saga ends the wait early.
    asio::awaitable<void> sleep(milliseconds d) {
        asio::steady_timer timer(ex_, d);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        if (stop_ == StopReason::shutdown) co_await interrupted();
    }

    void arm_deadline() {
        if (!state_.deadline || state_.phase != SagaPhase::running) return;
        const auto left = *state_.deadline - Clock::now();
        deadline_timer_.emplace(ex_);
        deadline_timer_->expires_after(
            std::chrono::duration_cast<asio::steady_timer::duration>(std::max(left, Clock::duration::zero())));
        deadline_timer_->async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
            if (!ec)
                self->request_stop(StopReason::deadline,
                                   "saga deadline " + format_timestamp(*self->state_.deadline) + " passed");
        });
    }

    static std::chrono::steady_clock::time_point attempt_deadline(milliseconds timeout) {
        return timeout.count() > 0 ? std::chrono::steady_clock::now() + timeout
                                   : std::chrono::steady_clock::time_point::max();
    }

    std::uint64_t salt(std::string_view step) const {
        return std::hash<std::string_view>{}(state_.saga_id) * 31 + std::hash<std::string_view>{}(step);
    }

    // ---- the journal: events are buffered, then appended before the next
    // action starts, so a transition is always stored before what follows it.
    void record(std::string_view type, json payload) {
        const auto now = Clock::now();
        EventData e;
        e.event_id = shared_->ids.next(now);
        e.type = std::string(type);
        e.payload = std::move(payload);
        e.metadata.correlation_id = state_.correlation_id;
        e.metadata.causation_id = causation_;
        e.metadata.timestamp = now;
        causation_ = e.event_id;
        pending_.push_back(std::move(e));
    }

    // Who claims the saga with the event just recorded (see SagaShared::owner).
    void stamp_owner() {
        if (shared_->owner.empty()) return;
        pending_.back().metadata.extra = object("owner", shared_->owner, "lease_ms", shared_->lease.count());
    }

    // Appends what is buffered. Parallel branches share the stream, so writes
    // are serialized; they are shielded from cancellation because an append
    // abandoned half-way leaves the stream version unknown.
    asio::awaitable<void> flush() {
        while (writing_) {
            if (!write_done_) {
                write_done_.emplace(ex_);
                write_done_->expires_at(asio::steady_timer::time_point::max());
            }
            co_await write_done_->async_wait(
                asio::bind_cancellation_slot(asio::cancellation_slot(), asio::as_tuple(asio::use_awaitable)));
        }
        if (pending_.empty()) co_return;
        writing_ = true;
        // Moved out element by element: pending_ keeps its capacity for the next transitions.
        std::vector<EventData> batch;
        batch.reserve(pending_.size());
        std::move(pending_.begin(), pending_.end(), std::back_inserter(batch));
        pending_.clear();
        const auto expected =
            state_.version == 0 ? ExpectedVersion::no_stream() : ExpectedVersion::exactly(state_.version);
        std::exception_ptr error;
        // Store errors end the run (a store outage too: the saga stays as
        // its stored events describe it, resumable; an orchestrator resumes
        // it once its lease ends). Only the append itself is not interrupted.
        try {
            AppendResult r = co_await shared_->store.async_append(
                stream_, expected, std::move(batch),
                asio::bind_cancellation_slot(asio::cancellation_slot(), asio::use_awaitable));
            state_.version = r.next_expected_version;
        } catch (...) {
            error = std::current_exception();
        }
        writing_ = false;
        if (write_done_) write_done_->cancel();
        if (error) std::rethrow_exception(error);
    }

    // The run's outcome, told to the observer.
    SagaOutcome<Data> ended(SagaStatus status) {
        ended_ = true;
        observe(shared_->observer, &Observer::saga_ended, SagaT::name, status,
                std::chrono::steady_clock::now() - run_began_);
        return outcome(status);
    }

    void attempted(std::string_view step, bool compensation, FailureKind kind,
                   std::chrono::steady_clock::time_point began) const {
        if (!shared_->observer) return;
        observe(shared_->observer, &Observer::step_attempted, SagaT::name, step, compensation, attempt_outcome(kind),
                std::chrono::steady_clock::now() - began);
    }

    SagaOutcome<Data> outcome(SagaStatus status) {
        SagaOutcome<Data> o;
        o.saga_id = state_.saga_id;
        o.status = status;
        o.failed_step = state_.failed_step;
        o.failure_kind = state_.failure_kind;
        o.error = state_.error;
        o.compensated_steps = state_.compensated;
        o.failed_compensation = state_.failed_compensation;
        o.compensation_error = state_.compensation_error;
        o.version = state_.version;
        o.data = data_;
        return o;
    }

    template <class... Args>
    void log(spdlog::level::level_enum level, std::string_view step, spdlog::format_string_t<Args...> fmt,
             Args&&... args) const {
        SagaLogger(shared_->logger, state_.saga_id, step, state_.correlation_id).log(level, fmt, std::forward<Args>(args)...);
    }

    std::shared_ptr<Shared> shared_;
    executor_type ex_;
    SagaState state_;
    Data data_{};
    std::string stream_;
    std::string causation_;
    bool resuming_ = false;
    bool done_ = false;
    bool ended_ = false;  // the run reached an outcome (else, when it finishes, it was interrupted)
    std::chrono::steady_clock::time_point run_began_{};

    std::vector<EventData> pending_;
    bool writing_ = false;
    // Made when a parallel branch first waits for another's append; never
    // expires: cancelled to wake the writers waiting their turn.
    std::optional<asio::steady_timer> write_done_;

    asio::cancellation_signal root_;
    StopReason stop_ = StopReason::none;
    std::string stop_message_;
    std::optional<asio::steady_timer> deadline_timer_;  // only for sagas with a deadline
    std::shared_ptr<AttemptLane> main_lane_;  // the saga's own coroutine; parallel branches have their own
};

}  // namespace boong::detail
