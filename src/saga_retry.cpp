#include <boong/saga_retry.hpp>

namespace boong {

std::string_view to_string(RequestOutcome o) noexcept {
    switch (o) {
        case RequestOutcome::requested: return "requested";
        case RequestOutcome::would_request: return "would_request";
        case RequestOutcome::refused: return "refused";
        case RequestOutcome::conflict: return "conflict";
    }
    return "?";
}

namespace detail {

void validate_retry_request(const RetryRequest& request) {
    if (request.by.empty()) throw Error(errc::invalid_argument, "retry sagas: say who asks (by)");
    if (request.saga_ids.empty()) {
        if (request.phase != SagaPhase::failed && request.phase != SagaPhase::blocked) {
            throw Error(errc::invalid_argument, "retry sagas: only failed or blocked sagas are retried, not " +
                                                    std::string(to_string(request.phase)) + " ones");
        }
        if (request.limit < 1 || request.limit > 100000) {
            throw Error(errc::invalid_argument, "retry sagas: limit must be in 1..100000");
        }
    }
}

std::string retry_refusal(const SagaState& saga) {
    if (saga.phase == SagaPhase::failed || saga.phase == SagaPhase::blocked) return {};
    return "it is " + std::string(to_string(saga.phase)) + ": only a failed or blocked saga is retried";
}

EventData retry_event(const SagaState& saga, const RetryRequest& request, IdGenerator& ids) {
    EventData e;
    e.event_id = ids.next();
    e.type = std::string(saga_event::retry_requested);
    // A failed saga compensates again; a blocked one goes on where it stood.
    const SagaPhase phase = saga.phase == SagaPhase::blocked ? saga.blocked_from : SagaPhase::compensating;
    e.payload = json{{"phase", to_string(phase)}, {"by", request.by}, {"reason", request.reason}};
    e.metadata.timestamp = Clock::now();
    e.metadata.correlation_id = saga.correlation_id;
    e.metadata.causation_id = saga.last_event_id;
    return e;
}

}  // namespace detail

}  // namespace boong
