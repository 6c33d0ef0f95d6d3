#include "broker/envelope.hpp"

#include <climits>
#include <cstdint>

namespace boong::detail {

namespace {

Error unwritable(const EventData& e, const Error& why) {
    return Error(errc::invalid_argument, "event " + e.event_id + " cannot be written as JSON: " + why.what());
}

DecodedEnvelope undecodable(std::string why) {
    DecodedEnvelope d;
    d.error = "undecodable message: " + std::move(why);
    return d;
}

}  // namespace

void write_envelope(JsonSink& out, const EventData& e, int max_depth) {
    try {
        out.put(R"({"event_id":)");
        write_json_string(out, e.event_id);
        out.put(R"(,"type":)");
        write_json_string(out, e.type);
        out.put(R"(,"schema_version":)");
        write_json_integer(out, e.schema_version);
        out.put(R"(,"metadata":)");
        write_metadata(out, e.metadata, max_depth);
        out.put(R"(,"payload":)");
        write_json(out, e.payload, max_depth);
        out.put('}');
    } catch (const Error& ex) {
        throw unwritable(e, ex);
    }
}

std::string envelope_text(const EventData& e, int max_depth) {
    std::string text;
    JsonSink sink(text);
    write_envelope(sink, e, max_depth);
    sink.flush();
    return text;
}

DecodedEnvelope decode_envelope_text(const std::string& text, int max_depth, std::string_view where) {
    json j;
    try {
        j = read_json(text, max_depth);
    } catch (const std::exception& ex) {
        return undecodable(std::string(where) + " is not valid JSON: " + ex.what());
    }
    if (!j.is_object())
        return undecodable(std::string(where) + " is a JSON " + j.type_name() + ", not an object");
    json* values[5];
    const char* names[] = {"event_id", "type", "schema_version", "metadata", "payload"};
    for (int i = 0; i < 5; ++i) {
        const auto it = j.find(names[i]);
        if (it == j.end()) return undecodable(std::string(where) + " has no key '" + names[i] + "'");
        values[i] = &*it;
    }
    auto ill_typed = [&](int i, const char* wanted) {
        return undecodable(std::string(names[i]) + " in " + std::string(where) + " is a JSON " + values[i]->type_name() +
                           ", not " + wanted);
    };
    EventData e;
    if (!values[0]->is_string()) return ill_typed(0, "a string");
    e.event_id = std::move(values[0]->get_ref<std::string&>());
    if (!is_uuid(e.event_id)) return undecodable("event_id '" + e.event_id + "' is not a UUID");
    if (!values[1]->is_string()) return ill_typed(1, "a string");
    e.type = std::move(values[1]->get_ref<std::string&>());
    if (e.type.empty()) return undecodable("type is empty");
    const json& sv = *values[2];
    std::int64_t version = 0;  // 0: not an integer, or out of range
    if (sv.is_number_unsigned()) {
        if (sv.get<std::uint64_t>() <= INT_MAX) version = sv.get<std::int64_t>();
    } else if (sv.is_number_integer()) {
        version = sv.get<std::int64_t>();
    }
    if (version < 1 || version > INT_MAX)
        return undecodable("schema_version " + sv.dump(-1, ' ', false, json::error_handler_t::replace) +
                           " is not an integer >= 1");
    e.schema_version = static_cast<int>(version);
    try {
        e.metadata = values[3]->get<EventMetadata>();
    } catch (const std::exception& ex) {
        return undecodable(std::string("metadata is not valid: ") + ex.what());
    }
    e.payload = std::move(*values[4]);
    DecodedEnvelope d;
    d.event = std::move(e);
    return d;
}

std::string with_utf8_replaced(const std::string& s) {
    // Through dump with replacement (U+FFFD), then back to the text.
    return json::parse(json(s).dump(-1, ' ', false, json::error_handler_t::replace)).get<std::string>();
}

}  // namespace boong::detail
