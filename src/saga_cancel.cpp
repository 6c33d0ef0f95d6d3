#include <boong/saga_cancel.hpp>

namespace boong::detail {

void validate_cancel_request(const CancelRequest& request) {
    if (request.saga_ids.empty()) throw Error(errc::invalid_argument, "cancel sagas: name at least one saga");
    if (request.by.empty()) throw Error(errc::invalid_argument, "cancel sagas: say who asks (by)");
    if (request.reason.empty()) throw Error(errc::invalid_argument, "cancel sagas: say why (reason)");
}

std::string cancel_refusal(const SagaState& saga) {
    if (saga.phase != SagaPhase::running) {
        return "it is " + std::string(to_string(saga.phase)) + ": only a running saga is cancelled";
    }
    if (saga.cancel_requested) return "its cancel was already asked for: " + saga.cancel_reason;
    return {};
}

EventData cancel_event(const SagaState& saga, const CancelRequest& request, IdGenerator& ids) {
    EventData e;
    e.event_id = ids.next();
    e.type = std::string(saga_event::cancel_requested);
    e.payload = json{{"by", request.by}, {"reason", request.reason}};
    e.metadata.timestamp = Clock::now();
    e.metadata.correlation_id = saga.correlation_id;
    e.metadata.causation_id = saga.last_event_id;
    return e;
}

}  // namespace boong::detail
