// Test support: events to append, and the error code an action fails with.
#pragma once

#include <boong/event.hpp>
#include <boong/saga_state.hpp>

#include <boost/system/system_error.hpp>

#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

namespace boong::test {

inline EventData make_event(IdGenerator& ids, std::string type, json payload = json::object()) {
    EventData e;
    e.event_id = ids.next();
    e.type = std::move(type);
    e.payload = std::move(payload);
    e.metadata.correlation_id = "corr-1";
    e.metadata.causation_id = "cause-1";
    e.metadata.timestamp = Clock::now();
    return e;
}

// Event `version` of saga `saga_id`'s stream, as read back (for folds).
inline RecordedEvent recorded_saga_event(const std::string& saga_id, std::int64_t version, std::string_view type,
                                         json payload) {
    RecordedEvent e;
    e.stream_id = saga_stream(saga_id);
    e.version = version;
    e.position = version;
    e.event.event_id = IdGenerator().next();
    e.event.type = std::string(type);
    e.event.payload = std::move(payload);
    return e;
}

template <class F>
error_code code_of(F&& f) {
    try {
        f();
    } catch (const boost::system::system_error& e) {
        return e.code();
    }
    return {};
}

// What `f` threw says (empty: it did not throw).
template <class F>
std::string message_of(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return {};
}

}  // namespace boong::test
