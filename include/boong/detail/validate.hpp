// Input checks shared by every store backend, and by every broker backend, so
// that they refuse the same things with the same messages.
#pragma once

#include <boong/broker.hpp>
#include <boong/event.hpp>
#include <boong/transactional_store.hpp>

#include <chrono>
#include <string_view>
#include <vector>

namespace boong::detail {

// Each throws boong::Error(errc::invalid_argument) with a message naming the
// stream, the event index and the field at fault.
void validate_stream_id(std::string_view stream);
// Payloads and metadata nesting deeper than max_depth are refused too.
void validate_append(std::string_view stream, ExpectedVersion expected, const std::vector<EventData>& events,
                     int max_depth = default_max_json_depth);
void validate_read(std::string_view what, std::int64_t from, std::size_t max_count);
void validate_snapshot(const Snapshot& s);

// Broker checks: the topic (1..200 bytes) and the envelope of a publish; the
// options and handler of a consumer.
inline constexpr std::size_t max_topic_length = 200;
void validate_publish(std::string_view topic, const EventData& e, int max_depth = default_max_json_depth);
void validate_consumer_options(const ConsumerOptions& o, const MessageHandler& handler);

// Lease checks, shared by every model of SagaLeases and OutboxCursor: an
// owner is "name/incarnation" (make_owner), at most 255 bytes; a lease lasts
// 1 ms..24 h. `what` names the lease's kind in the message ("saga", "outbox").
void validate_owner(std::string_view owner, std::string_view what);
void validate_lease(std::chrono::milliseconds lease, std::string_view what);
// An outbox relay name has 1..255 bytes.
void validate_relay_name(std::string_view relay);
// An outbox cursor request: the relay name, the owner and the lease above.
void validate_cursor_request(std::string_view relay, std::string_view owner, std::chrono::milliseconds lease);
// Inbox checks: a consumer name and a message id have 1..255 bytes.
void validate_inbox_entry(std::string_view consumer, std::string_view message_id);
// Several inbox entries at once; `distinct`: no id named twice (a record).
void validate_inbox_entries(std::string_view consumer, const std::vector<std::string>& message_ids, bool distinct);
// append_many_in: no two appends to one stream.
void require_distinct_streams(const std::vector<StreamAppend>& appends);

}  // namespace boong::detail
