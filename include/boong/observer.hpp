// What Boong tells a service about its own work, as it happens: sagas started
// and ended, step attempts, messages handled and dead-lettered, publishes,
// appends. Metrics (boong/prometheus/metrics.hpp) are one observer; a service
// that pages on a saga failing for good, or on a dead letter, is another.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

namespace boong {

enum class SagaStatus;  // boong/saga.hpp

// Every method does nothing by default: override the ones you want.
//
// Calls come from the threads running Boong's work (any thread of the
// io_context, a store's worker threads), concurrently: an observer must be
// thread-safe, and quick: it runs inside the engine and must never block.
// The string_views are valid only during the call. An exception thrown by an
// observer is caught and dropped: observing never changes what the engine does.
//
// Outcomes, as strings so that label values are stable across releases:
//  - a step or compensation attempt: "completed", "failed" (it threw; retried
//    per policy), "timeout", "rejected" (boong::Rejection), "cancelled"
//    (the saga was cancelled, its deadline passed, or a sibling failed),
//    "unavailable" (a dependency could not be reached: not an attempt).
//  - a handled message: "handled", "failed" (delivered again later),
//    "dead_lettered", "unavailable" (held through an outage, not counted).
class Observer {
public:
    virtual ~Observer() = default;

    // ---- sagas (SagaRunner, through RunnerOptions::observer) --------------
    // A new saga's run began.
    virtual void saga_started(std::string_view /*saga_type*/) {}
    // A stored saga's run began again in this process (SagaRunner::resume,
    // an orchestrator's takeover or restart).
    virtual void saga_resumed(std::string_view /*saga_type*/) {}
    // A run ended with an outcome. `duration`: of this run, in this process
    // (from its start or resume). SagaStatus::failed is a compensation that
    // gave up: the saga needs an operator — the one to page on.
    virtual void saga_ended(std::string_view /*saga_type*/, SagaStatus /*status*/,
                            std::chrono::nanoseconds /*duration*/) {}
    // A run ended without an outcome: shut down, its store unreachable, its
    // lease lost. The saga stays as its events describe it, resumable.
    virtual void saga_interrupted(std::string_view /*saga_type*/) {}
    // One attempt of a step's action (compensation = false) or of its
    // compensation ended with `outcome` (see above) after `duration`.
    virtual void step_attempted(std::string_view /*saga_type*/, std::string_view /*step*/, bool /*compensation*/,
                                std::string_view /*outcome*/, std::chrono::nanoseconds /*duration*/) {}
    // A failed attempt will be tried again (after its retry backoff).
    virtual void step_retried(std::string_view /*saga_type*/, std::string_view /*step*/, bool /*compensation*/) {}

    // ---- sagas across orchestrators (SagaOrchestrator) -------------------
    // It claimed `count` sagas of the type (new leases, takeovers, resumes at start-up).
    virtual void saga_claimed(std::string_view /*saga_type*/, std::size_t /*count*/) {}
    // It found a saga it was running claimed by another orchestrator.
    virtual void saga_lost(std::string_view /*saga_type*/) {}
    // It stopped its own sagas because it could not prove its leases were still its own.
    virtual void orchestrator_fenced(std::string_view /*saga_type*/) {}
    // Renewing its leases failed (the store did not answer in time).
    virtual void lease_renewal_failed(std::string_view /*saga_type*/) {}
    // A saga of the type was blocked (no runner serves its definition, or resuming it failed).
    virtual void saga_blocked(std::string_view /*saga_type*/) {}

    // ---- consumers (ConsumerSettings::observer) ---------------------------
    // A handler ran on a message of `topic` for `group` and ended with `outcome` (see above).
    virtual void message_handled(std::string_view /*topic*/, std::string_view /*group*/,
                                 std::string_view /*outcome*/, std::chrono::nanoseconds /*duration*/) {}
    // A message reached a handler again (its delivery count is above 1).
    virtual void message_redelivered(std::string_view /*topic*/, std::string_view /*group*/) {}
    // A message went to the dead letters: its handler threw boong::Rejection
    // ("rejected"), it reached max_deliveries ("max_deliveries"), or it does
    // not decode ("undecodable").
    virtual void message_dead_lettered(std::string_view /*topic*/, std::string_view /*group*/,
                                       std::string_view /*reason*/) {}
    // The consumer stopped fetching because a dependency is unavailable
    // (paused = true), or resumed once it answered (paused = false).
    virtual void consumer_paused(std::string_view /*topic*/, std::string_view /*group*/, bool /*paused*/) {}
    // How far the group of `topic` trails, as its broker told one of its
    // consumers (every ConsumerSettings::backlog_interval, not while paused):
    // messages delivered and not acknowledged, messages not delivered yet,
    // and the age of the oldest pending one (zero when none is pending).
    // nullopt: the broker cannot tell (RabbitMQ: pending and its age).
    virtual void consumer_backlog(std::string_view /*topic*/, std::string_view /*group*/,
                                  std::optional<std::size_t> /*pending*/, std::optional<std::size_t> /*lag*/,
                                  std::optional<std::chrono::nanoseconds> /*oldest_pending_age*/) {}
    // Messages lost to the group of `topic` because a length or age limit
    // trimmed them away: `unread`, the broker's total of those the group never
    // read (sampled with the backlog, when the broker can tell); `pending`,
    // delivered ones whose entries were gone when this consumer reclaimed them
    // (counted once, by that consumer). Each call is also logged at error.
    virtual void consumer_trimmed_unread(std::string_view /*topic*/, std::string_view /*group*/,
                                         std::size_t /*unread*/) {}
    virtual void consumer_trimmed_pending(std::string_view /*topic*/, std::string_view /*group*/,
                                          std::size_t /*pending*/) {}

    // ---- publishing (the outbox relay, OutboxRelayOptions::observer) ------
    // A publish to `topic` ended (ok = false: it threw) after `duration`.
    virtual void published(std::string_view /*topic*/, bool /*ok*/, std::chrono::nanoseconds /*duration*/) {}
    // How far the relay trails the store after a batch: events stored but
    // not yet published, and the age of the oldest of them (0 when caught up).
    virtual void outbox_lag(std::int64_t /*events*/, std::chrono::nanoseconds /*age*/) {}

    // ---- the PostgreSQL store (PostgresStoreConfig::observer) ------------
    // A group commit stored `events` events (of one or more appends) in `duration`.
    virtual void appended(std::size_t /*events*/, std::chrono::nanoseconds /*duration*/) {}
    // An operation waited `duration` for a connection of the pool.
    virtual void pool_waited(std::chrono::nanoseconds /*duration*/) {}
};

namespace detail {

// Calls `method` on `observer` when there is one; an exception it throws is
// dropped (see Observer). One branch when there is none.
template <class Method, class... Args>
inline void observe(const std::shared_ptr<Observer>& observer, Method method, Args&&... args) noexcept {
    if (!observer) return;
    try {
        ((*observer).*method)(std::forward<Args>(args)...);
    } catch (...) {  // NOLINT(bugprone-empty-catch): observing must not change the engine's course
    }
}

}  // namespace detail
}  // namespace boong
