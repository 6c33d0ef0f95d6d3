// An operator's cancel of running sagas, as a command recorded in each saga's
// stream, never a table edit (docs/cli.md, `boong sagas cancel`).
//
//   boong::CancelRequest request;
//   request.saga_ids = {"order-42"};
//   request.by = "alice@ops";
//   request.reason = "customer withdrew the order";
//   auto results = co_await boong::request_cancel(store, request);
//
// Each cancel appends SagaCancelRequested (who, why) at the saga's stream
// version, which takes the saga from its owner: the orchestrator running it
// finds it lost (its next lease renewal says so, or its next append
// conflicts) and stops it there. Its lease runs out as it stands, so that no
// other orchestrator takes it while that run may still be going; the next
// claimant of its type then resumes it and, instead of going on, compensates
// its completed steps, as SagaRunner::cancel() does in process
// (FailureKind::cancelled, error "saga cancelled: <reason> (by <who>)").
// So a cancel takes effect within a lease (OrchestratorOptions::lease).
// A step an earlier run began is compensated under compensate_uncertain.
// Only a running saga (forward phase) can be cancelled; one that has finished
// its steps completes all the same.
#pragma once

#include <boong/detail/saga_requests.hpp>
#include <boong/event.hpp>
#include <boong/event_store.hpp>
#include <boong/saga_index.hpp>
#include <boong/saga_retry.hpp>  // RequestOutcome, SagaRequestResult: what every operator request returns
#include <boong/saga_state.hpp>

#include <boost/asio/awaitable.hpp>

#include <string>
#include <vector>

namespace boong {

struct CancelRequest {
    std::vector<std::string> saga_ids{};  // the sagas to cancel (at least one)
    std::string by{};                     // who asks (required): recorded in each SagaCancelRequested
    std::string reason{};                 // why (required): recorded, and in the saga's error
    bool dry_run = false;                 // only say what would be done; append nothing
};

namespace detail {

void validate_cancel_request(const CancelRequest& request);
// Why `saga` cannot be cancelled (empty: it can).
std::string cancel_refusal(const SagaState& saga);
EventData cancel_event(const SagaState& saga, const CancelRequest& request, IdGenerator& ids);

// A running saga appends often: a cancel that lost the race to its runner
// reads it again, this many times in all, before it reports a conflict.
inline constexpr int cancel_tries = 5;

}  // namespace detail

// Asks for each saga to be cancelled: one result per saga, in order
// (requested, would_request, refused with the reason, or conflict). Throws
// for an invalid request (errc::invalid_argument) and when the store cannot
// be reached (what was requested before stays requested; run it again).
template <EventStore Store>
boost::asio::awaitable<std::vector<SagaRequestResult>> request_cancel(Store& store, CancelRequest request) {
    detail::validate_cancel_request(request);
    std::vector<SagaRequestResult> results;
    results.reserve(request.saga_ids.size());
    IdGenerator event_ids;
    for (const auto& id : request.saga_ids) {
        SagaRequestResult result;
        result.saga_id = id;
        auto decide = [&](const SagaState& saga) {
            result.phase = saga.phase;
            detail::SagaDecision decision{detail::cancel_refusal(saga), {}};
            if (decision.refusal.empty()) decision.event = detail::cancel_event(saga, request, event_ids);
            return decision;
        };
        detail::AppliedRequest applied;
        for (int tries = 0; tries < detail::cancel_tries; ++tries) {
            applied = co_await detail::apply_to_saga(store, result.saga_id, request.dry_run, decide);
            if (applied.applied != detail::Applied::conflict) break;
        }
        result.outcome = detail::request_outcome(applied.applied);
        result.reason = std::move(applied.reason);
        results.push_back(std::move(result));
    }
    co_return results;
}

}  // namespace boong
