// How an event is laid out in a stream entry, and back. Private to Boong::redis.
#pragma once

#include "broker/redis/connection.hpp"

#include <boong/event.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boong::redis {

using Fields = std::vector<std::pair<std::string, std::string>>;

// A stream entry as XREADGROUP / XAUTOCLAIM return it.
struct Entry {
    std::string id;
    Fields fields;
    bool deleted = false;  // listed, but its data was trimmed away
};

// The stream entry of an event is one field, `event`, whose value is the
// envelope as one JSON object, keys in this order:
//   {"event_id":"…","type":"…","schema_version":1,"metadata":{…},"payload":…}
// (one field costs Redis less per XADD than five). Entries of the older
// layout, five fields event_id, type, schema_version, payload and metadata
// (the last two JSON text), are still decoded.
inline constexpr std::string_view kEventField = "event";

// Appends the envelope's field/value pair to `argv`. Throws
// errc::invalid_argument when the event cannot be written as JSON text
// (invalid UTF-8 in a string of the type, payload or metadata).
void append_envelope(std::vector<std::string>& argv, const EventData& e);

// The same, written straight into a RESP command (one field/value pair, two
// arguments), without building a JSON document: payload and metadata are
// byte for byte nlohmann::json::dump() of the payload and of
// json(e.metadata), and it throws in the same cases.
void append_envelope(Resp& resp, const EventData& e);

// The event of an entry (either layout), or why it cannot be decoded.
struct Decoded {
    std::optional<EventData> event;
    std::string error;
};
Decoded decode_envelope(const Fields& fields);

// Entries of an XREADGROUP / XAUTOCLAIM array; throws errc::protocol_error on
// a shape that is not one.
std::vector<Entry> parse_entries(const Reply& entries);

// `s` with the bytes that are not UTF-8 replaced by U+FFFD: text that may come
// from a stream entry (a parser's message quotes what it read), made writable.
std::string with_utf8_replaced(const std::string& s);

// The raw fields as a JSON object (bytes that are not UTF-8 replaced), for
// dead letters of undecodable entries.
json fields_to_json(const Fields& fields);

}  // namespace boong::redis
