// How every broker writes an event as one JSON object (the envelope) and
// reads it back: Redis keeps it in a stream entry's "event" field, RabbitMQ
// as a message's body. Private to the Boong libraries.
#pragma once

#include <boong/event.hpp>

#include "json_text.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace boong::detail {

// The envelope, keys in this order (the short, fixed-shape ones first, so an
// operator reading a queue sees them before the payload):
//   {"event_id":"…","type":"…","schema_version":1,"metadata":{…},"payload":…}
// Throws errc::invalid_argument naming the event when it cannot be written
// as JSON text (invalid UTF-8 in a string, nesting deeper than max_depth).
void write_envelope(JsonSink& out, const EventData& e, int max_depth);
std::string envelope_text(const EventData& e, int max_depth);

// The event of an envelope, or why it is not one ("undecodable message: ...",
// naming `where` the text came from: "the field 'event'", "the message
// body"). Nothing nesting deeper than max_depth is built.
struct DecodedEnvelope {
    std::optional<EventData> event;
    std::string error;
};
DecodedEnvelope decode_envelope_text(const std::string& text, int max_depth, std::string_view where);

// `s` with the bytes that are not UTF-8 replaced by U+FFFD: text that may
// come from a message (a parser's error quotes what it read), made writable.
std::string with_utf8_replaced(const std::string& s);

}  // namespace boong::detail
