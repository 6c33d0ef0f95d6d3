// An operator's retry of failed or blocked sagas, as a command recorded in
// each saga's stream, never a table edit (docs/cli.md, `boong sagas retry`).
//
//   boong::RetryRequest request;
//   request.by = "alice@ops";
//   request.reason = "payment gateway fixed";
//   auto results = co_await boong::request_retry(store, index, request);  // every failed saga
//
// Each retry appends SagaRetryRequested (who, why, the phase to go on in) at
// the saga's stream version, so it cannot race an orchestrator or another
// operator. The saga is then in flight again with no owner and an ended
// lease: the next scan of any orchestrator of its type claims it, and that
// one resumes it (a failed saga compensates again) with its own lease and
// SagaResumed, fenced like every other write. An orchestrator that does not
// serve the saga's definition blocks it again, with the reason.
#pragma once

#include <boong/detail/saga_requests.hpp>
#include <boong/event.hpp>
#include <boong/event_store.hpp>
#include <boong/saga_index.hpp>
#include <boong/saga_state.hpp>

#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace boong {

struct RetryRequest {
    // The sagas to retry; empty: every saga in `phase` (failed or blocked)
    // of `saga_type` (empty: every type), up to `limit`.
    std::vector<std::string> saga_ids{};
    SagaPhase phase = SagaPhase::failed;
    std::string saga_type{};
    std::string by{};      // who asks (required): recorded in each SagaRetryRequested
    std::string reason{};  // why (optional): recorded too
    bool dry_run = false;  // only say what would be done; append nothing
    std::size_t limit = 10000;  // 1..100000, when saga_ids is empty
};

enum class RequestOutcome {
    requested,      // SagaRetryRequested appended
    would_request,  // dry run: it would be
    refused,        // not failed nor blocked, or unreadable (the reason says); left as it was
    conflict,       // it moved meanwhile; left to whoever moved it
};

std::string_view to_string(RequestOutcome o) noexcept;

struct SagaRequestResult {
    std::string saga_id;
    RequestOutcome outcome = RequestOutcome::refused;
    std::string reason;  // refused or conflict: why
    SagaPhase phase = SagaPhase::running;  // where it was when looked at
};

namespace detail {

// What apply_to_saga did, as a request's outcome.
constexpr RequestOutcome request_outcome(Applied applied) noexcept {
    switch (applied) {
        case Applied::appended: return RequestOutcome::requested;
        case Applied::dry_run: return RequestOutcome::would_request;
        case Applied::refused: return RequestOutcome::refused;
        case Applied::conflict: return RequestOutcome::conflict;
    }
    return RequestOutcome::refused;
}

void validate_retry_request(const RetryRequest& request);
// Why `saga` cannot be retried (empty: it can).
std::string retry_refusal(const SagaState& saga);
EventData retry_event(const SagaState& saga, const RetryRequest& request, IdGenerator& ids);

}  // namespace detail

// Asks for each saga to be tried again: one result per saga looked at, in
// order. Throws for an invalid request (errc::invalid_argument) and when the
// store or the index cannot be reached (what was requested before stays
// requested; run it again).
template <EventStore Store, SagaIndex Index>
boost::asio::awaitable<std::vector<SagaRequestResult>> request_retry(Store& store, Index& index, RetryRequest request) {
    detail::validate_retry_request(request);
    std::vector<std::string> ids = std::move(request.saga_ids);
    if (ids.empty()) {
        // (named, not written inside the co_await: see docs/durability.md, "Compilers")
        std::vector<SagaPhase> phases{request.phase};
        const auto any = [](const SagaRecord&) { return true; };
        ids = co_await detail::select_sagas(index, std::move(phases), request.saga_type, request.limit, any);
    }
    std::vector<SagaRequestResult> results;
    results.reserve(ids.size());
    IdGenerator event_ids;
    for (auto& id : ids) {
        SagaRequestResult result;
        result.saga_id = std::move(id);
        auto decide = [&](const SagaState& saga) {
            result.phase = saga.phase;
            detail::SagaDecision decision{detail::retry_refusal(saga), {}};
            if (decision.refusal.empty()) decision.event = detail::retry_event(saga, request, event_ids);
            return decision;
        };
        auto applied = co_await detail::apply_to_saga(store, result.saga_id, request.dry_run, decide);
        result.outcome = detail::request_outcome(applied.applied);
        result.reason = std::move(applied.reason);
        results.push_back(std::move(result));
    }
    co_return results;
}

}  // namespace boong
