// How an event is laid out in a stream entry, and back. Private to Boong::redis.
#pragma once

#include "broker/envelope.hpp"
#include "redis/connection.hpp"

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
// (one field costs Redis less per XADD than five).
inline constexpr std::string_view kEventField = "event";
// A dead letter is the entry as it arrived (its fields byte for byte) plus
// this field: the record saying where it came from and why it is here
// (detail::dead_letter_info). Decoding such an entry puts the record in
// metadata.extra["dead_letter"].
inline constexpr std::string_view kDeadLetterField = "dead_letter";

// Appends the envelope's field/value pair. Throws errc::invalid_argument when
// the event cannot be written as JSON text (invalid UTF-8 in a string of the
// type, payload or metadata; nesting deeper than max_depth).
void append_envelope(std::vector<std::string>& argv, const EventData& e, int max_depth);
void append_envelope(Fields& fields, const EventData& e, int max_depth);

// The same, written straight into a RESP command (one field/value pair, two
// arguments), without building a JSON document: payload and metadata are
// byte for byte nlohmann::json::dump() of the payload and of
// json(e.metadata), and it throws in the same cases.
void append_envelope(Resp& resp, const EventData& e, int max_depth);

// The event of an entry, or why it cannot be decoded. Nothing nesting deeper
// than max_depth is built: such an entry is refused while it is read.
using Decoded = detail::DecodedEnvelope;
Decoded decode_envelope(const Fields& fields, int max_depth);

// What an entry that does not decode holds, as text for people: the `event`
// field's value, or all the fields as a JSON object (bytes that are not UTF-8
// replaced by U+FFFD).
std::string fields_text(const Fields& fields);

// Entries of an XREADGROUP / XAUTOCLAIM array; throws errc::protocol_error on
// a shape that is not one.
std::vector<Entry> parse_entries(const Reply& entries);

using detail::with_utf8_replaced;

}  // namespace boong::redis
