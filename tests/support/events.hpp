// Test support: events to append, and the error code an action fails with.
#pragma once

#include <boong/event.hpp>

#include <boost/system/system_error.hpp>

#include <string>

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

template <class F>
error_code code_of(F&& f) {
    try {
        f();
    } catch (const boost::system::system_error& e) {
        return e.code();
    }
    return {};
}

}  // namespace boong::test
