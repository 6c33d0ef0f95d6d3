#include <boong/detail/validate.hpp>
#include <boong/event_store.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_set>

namespace boong::detail {
namespace {

[[noreturn]] void invalid(const std::string& message) { throw Error(errc::invalid_argument, message); }

enum class Text { ok, bad_utf8, nul };

// Checks in one pass that `s` is well-formed UTF-8 (stores keep JSON text, and
// a payload that cannot be serialized must be refused before anything is
// written) and holds no U+0000 (PostgreSQL's text and jsonb cannot keep it,
// and libpq would cut the string short there).
// True when every byte of `s` is ASCII other than NUL: ids, types, keys and
// most payload text. Eight bytes at a time without a branch per word; the last
// word overlaps the one before rather than falling back to single bytes.
bool plain_ascii(std::string_view s) noexcept {
    constexpr std::uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    const char* p = s.data();
    const std::size_t size = s.size();
    auto bad = [&](std::size_t at) {
        std::uint64_t word;
        std::memcpy(&word, p + at, 8);
        return ((word - ones) & ~word & highs) | (word & highs);
    };
    if (size < 8) {
        for (std::size_t i = 0; i < size; ++i) {
            const auto c = static_cast<unsigned char>(p[i]);
            if (c == 0 || c >= 0x80) return false;
        }
        return true;
    }
    std::uint64_t any = 0;
    for (std::size_t i = 0; i + 8 <= size; i += 8) any |= bad(i);
    any |= bad(size - 8);
    return any == 0;
}

Text scan_text(std::string_view s) noexcept {
    if (plain_ascii(s)) return Text::ok;
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::size_t size = s.size();
    std::size_t i = 0;
    while (i < size) {
        // ASCII without NUL, eight bytes at a time: most of what stores see.
        while (i + 8 <= size) {
            std::uint64_t word;
            std::memcpy(&word, p + i, 8);
            const bool zero_byte = ((word - 0x0101010101010101ULL) & ~word & 0x8080808080808080ULL) != 0;
            if ((word & 0x8080808080808080ULL) || zero_byte) break;
            i += 8;
        }
        if (i >= size) break;
        const unsigned c = p[i];
        if (c == 0) return Text::nul;
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t n = 0;
        unsigned lo = 0x80, hi = 0xBF;  // allowed range of the first continuation byte (RFC 3629)
        if (c >= 0xC2 && c <= 0xDF) n = 1;
        else if (c == 0xE0) n = 2, lo = 0xA0;
        else if (c == 0xED) n = 2, hi = 0x9F;  // no UTF-16 surrogates
        else if (c >= 0xE1 && c <= 0xEF) n = 2;
        else if (c == 0xF0) n = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) n = 3;
        else if (c == 0xF4) n = 3, hi = 0x8F;
        else return Text::bad_utf8;
        if (i + n >= size) return Text::bad_utf8;
        if (p[i + 1] < lo || p[i + 1] > hi) return Text::bad_utf8;
        for (std::size_t k = 2; k <= n; ++k) {
            if ((p[i + k] >> 6) != 0x2) return Text::bad_utf8;
        }
        i += n + 1;
    }
    return Text::ok;
}

// Why `s` cannot be stored as text, or null when it can.
const char* text_problem(std::string_view s) noexcept {
    switch (scan_text(s)) {
        case Text::ok: return nullptr;
        case Text::bad_utf8: return "is not valid UTF-8";
        case Text::nul: return "contains U+0000 (NUL), which stores cannot keep";
    }
    return nullptr;
}

// Whether `j` can be stored as JSON: json_problem(j).empty(), without
// building a string per value. Runs on every payload; the message is built
// only when this says no. `depth_left`: how many more levels of arrays or
// objects may open (the recursion stops there).
bool json_storable(const json& j, int depth_left) noexcept {
    switch (j.type()) {
        case json::value_t::string: return scan_text(j.get_ref<const std::string&>()) == Text::ok;
        case json::value_t::number_float: return std::isfinite(j.get<double>());
        case json::value_t::discarded:
        case json::value_t::binary: return false;
        case json::value_t::object:
            if (depth_left < 1) return false;
            for (const auto& [k, v] : j.get_ref<const json::object_t&>()) {
                if (scan_text(k) != Text::ok || !json_storable(v, depth_left - 1)) return false;
            }
            return true;
        case json::value_t::array:
            if (depth_left < 1) return false;
            for (const auto& v : j.get_ref<const json::array_t&>()) {
                if (!json_storable(v, depth_left - 1)) return false;
            }
            return true;
        default: return true;
    }
}

// Why `j` cannot be stored as JSON, or empty when it can.
std::string json_problem(const json& j, int depth_left, int max_depth) {
    if (j.is_structured() && depth_left < 1) return "it nests deeper than " + std::to_string(max_depth) + " levels";
    switch (j.type()) {
        case json::value_t::string: {
            const char* p = text_problem(j.get_ref<const std::string&>());
            return p ? std::string("a string ") + p : "";
        }
        case json::value_t::number_float:
            return std::isfinite(j.get<double>()) ? "" : "a number is NaN or infinite";
        case json::value_t::discarded: return "it holds a discarded value";
        case json::value_t::binary: return "it holds binary data";
        case json::value_t::object:
            // The underlying map, not items(): its proxies cost more than the check.
            for (const auto& [k, v] : j.get_ref<const json::object_t&>()) {
                if (const char* p = text_problem(k)) return std::string("a key ") + p;
                if (auto p = json_problem(v, depth_left - 1, max_depth); !p.empty()) return p;
            }
            return "";
        case json::value_t::array:
            for (const auto& v : j.get_ref<const json::array_t&>()) {
                if (auto p = json_problem(v, depth_left - 1, max_depth); !p.empty()) return p;
            }
            return "";
        default: return "";
    }
}

}  // namespace

void validate_stream_id(std::string_view stream) {
    if (stream.empty()) invalid("stream id is empty");
    if (stream.size() > max_stream_id_length)
        invalid("stream id is " + std::to_string(stream.size()) + " bytes long; the limit is " +
                std::to_string(max_stream_id_length));
    if (const char* p = text_problem(stream)) invalid(std::string("stream id ") + p);
}

void validate_append(std::string_view stream, ExpectedVersion expected, const std::vector<EventData>& events,
                     int max_depth) {
    validate_stream_id(stream);
    // Messages are built only on failure: this runs on every append.
    auto where = [&] { return "append to '" + std::string(stream) + "': "; };
    if (!expected.valid()) invalid(where() + "expected version " + std::to_string(expected.value()) + " is negative");
    if (events.empty()) invalid(where() + "no events to append");
    if (events.size() > max_events_per_append)
        invalid(where() + std::to_string(events.size()) + " events in one append; the limit is " +
                std::to_string(max_events_per_append));
    for (std::size_t i = 0; i < events.size(); ++i) {
        const auto& e = events[i];
        auto at = [&] { return where() + "event " + std::to_string(i) + ": "; };
        if (!is_uuid(e.event_id)) invalid(at() + "event id '" + e.event_id + "' is not a UUID");
        if (e.type.empty()) invalid(at() + "event type is empty");
        if (e.type.size() > max_event_type_length) invalid(at() + "event type is too long");
        if (const char* p = text_problem(e.type)) invalid(at() + "event type " + p);
        if (const char* p = text_problem(e.metadata.correlation_id)) invalid(at() + "correlation id " + p);
        if (const char* p = text_problem(e.metadata.causation_id)) invalid(at() + "causation id " + p);
        if (e.schema_version < 1)
            invalid(at() + "schema version " + std::to_string(e.schema_version) + " is not >= 1");
        if (!json_storable(e.payload, max_depth))
            invalid(at() + "payload is not valid JSON: " + json_problem(e.payload, max_depth, max_depth));
        if (!e.metadata.extra.is_null() && !e.metadata.extra.is_object())
            invalid(at() + "metadata.extra must be a JSON object");
        // The metadata object itself is one level.
        if (!json_storable(e.metadata.extra, max_depth))
            invalid(at() + "metadata is not valid JSON: " + json_problem(e.metadata.extra, max_depth, max_depth));
    }
    // The same id twice in one append (quadratic for the usual handful of
    // events, a set beyond).
    auto duplicate = [&](std::size_t i) { return where() + "event id " + events[i].event_id + " appears twice"; };
    if (events.size() <= 16) {
        for (std::size_t i = 1; i < events.size(); ++i)
            for (std::size_t j = 0; j < i; ++j)
                if (events[i].event_id == events[j].event_id) invalid(duplicate(i));
    } else {
        std::unordered_set<std::string_view> ids;
        for (std::size_t i = 0; i < events.size(); ++i)
            if (!ids.insert(events[i].event_id).second) invalid(duplicate(i));
    }
}

void validate_read(std::string_view what, std::int64_t from, std::size_t max_count) {
    if (from < 1) invalid(std::string(what) + ": start " + std::to_string(from) + " is below 1");
    if (max_count == 0) invalid(std::string(what) + ": max_count is 0");
}

void validate_snapshot(const Snapshot& s) {
    validate_stream_id(s.stream_id);
    const std::string at = "snapshot of '" + s.stream_id + "': ";
    if (s.version < 1) invalid(at + "version " + std::to_string(s.version) + " is below 1");
    if (s.type.empty()) invalid(at + "type is empty");
    if (const char* p = text_problem(s.type)) invalid(at + "type " + p);
    if (s.schema_version < 1) invalid(at + "schema version is below 1");
    if (auto p = json_problem(s.state, default_max_json_depth, default_max_json_depth); !p.empty())
        invalid(at + "state is not valid JSON: " + p);
}

void validate_publish(std::string_view topic, const EventData& e, int max_depth) {
    if (topic.empty()) invalid("publish: topic is empty");
    if (topic.size() > max_topic_length)
        invalid("publish: topic is " + std::to_string(topic.size()) + " bytes long; the limit is " +
                std::to_string(max_topic_length));
    // Messages are built only on failure: this runs on every publish.
    auto at = [&] { return "publish to '" + std::string(topic) + "': "; };
    if (!is_uuid(e.event_id)) invalid(at() + "event_id '" + e.event_id + "' is not a UUID");
    if (e.type.empty()) invalid(at() + "type is empty");
    if (e.schema_version < 1) invalid(at() + "schema_version " + std::to_string(e.schema_version) + " is not >= 1");
    // Dead-lettering adds a key to it, so it has to be an object (or nothing yet).
    if (!e.metadata.extra.is_null() && !e.metadata.extra.is_object())
        invalid(at() + "metadata.extra must be a JSON object");
    // Whoever receives it would refuse it: refuse it here, with the reason.
    if (json_depth_exceeds(e.payload, max_depth))
        invalid(at() + "payload nests deeper than " + std::to_string(max_depth) + " levels");
    if (json_depth_exceeds(e.metadata.extra, max_depth))
        invalid(at() + "metadata nests deeper than " + std::to_string(max_depth) + " levels");
}

void validate_consumer_options(const ConsumerOptions& o, const MessageHandler& handler) {
    using std::chrono::milliseconds;
    if (o.topic.empty()) invalid("consume: topic is empty");
    const std::string at = "consume from '" + o.topic + "': ";
    if (o.group.empty()) invalid(at + "group is empty");
    if (o.consumer.empty()) invalid(at + "consumer is empty");
    const auto& s = o.settings;
    if (s.concurrency == 0) invalid(at + "concurrency is 0");
    if (s.max_deliveries < 1) invalid(at + "max_deliveries " + std::to_string(s.max_deliveries) + " is not >= 1");
    if (s.visibility_timeout < milliseconds::zero()) invalid(at + "visibility_timeout is negative");
    if (s.shutdown_grace < milliseconds::zero()) invalid(at + "shutdown_grace is negative");
    if (s.backlog_interval < milliseconds::zero()) invalid(at + "backlog_interval is negative");
    if (s.outage_backoff.initial_delay < milliseconds(1) || s.outage_backoff.max_delay < s.outage_backoff.initial_delay ||
        !(s.outage_backoff.multiplier >= 1.0) || !(s.outage_backoff.jitter >= 0.0 && s.outage_backoff.jitter <= 1.0))
        invalid(at + "outage_backoff needs initial_delay >= 1 ms, max_delay >= initial_delay, multiplier >= 1 and "
                     "jitter in [0, 1]");
    if (!handler) invalid(at + "handler is empty");
}

void validate_owner(std::string_view owner, std::string_view what) {
    const auto slash = owner.find('/');
    if (slash == 0 || slash == std::string_view::npos || slash + 1 == owner.size() || owner.size() > 255) {
        invalid(std::string(what) + " owner '" + std::string(owner) + "' is not of the form name/incarnation");
    }
}

void validate_lease(std::chrono::milliseconds lease, std::string_view what) {
    if (lease < std::chrono::milliseconds(1) || lease > std::chrono::hours(24)) {
        invalid(std::string(what) + " lease must be between 1 ms and 24 h, got " + std::to_string(lease.count()) +
                " ms");
    }
}

void validate_relay_name(std::string_view relay) {
    if (relay.empty() || relay.size() > 255) invalid("an outbox relay name must have 1..255 characters");
}

void validate_cursor_request(std::string_view relay, std::string_view owner, std::chrono::milliseconds lease) {
    validate_relay_name(relay);
    validate_owner(owner, "outbox");
    validate_lease(lease, "an outbox");
}

void validate_inbox_entry(std::string_view consumer, std::string_view message_id) {
    if (consumer.empty() || consumer.size() > 255) invalid("an inbox consumer name must have 1..255 characters");
    if (message_id.empty() || message_id.size() > 255) {
        invalid("inbox " + std::string(consumer) + ": a message id must have 1..255 characters");
    }
}

void validate_inbox_entries(std::string_view consumer, const std::vector<std::string>& message_ids, bool distinct) {
    for (const auto& id : message_ids) validate_inbox_entry(consumer, id);
    if (!distinct) return;
    std::unordered_set<std::string_view> seen;
    for (const auto& id : message_ids) {
        if (!seen.insert(id).second) {
            invalid("inbox " + std::string(consumer) + ": message id " + id + " is named twice in one record");
        }
    }
}

void require_distinct_streams(const std::vector<StreamAppend>& appends) {
    std::unordered_set<std::string_view> streams;
    for (const auto& a : appends) {
        if (!streams.insert(a.stream).second) {
            invalid("append_many_in: two appends to '" + a.stream + "'; give each stream one append");
        }
    }
}

}  // namespace boong::detail
