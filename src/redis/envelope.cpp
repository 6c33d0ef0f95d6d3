#include "redis/envelope.hpp"

#include "json_text.hpp"

#include <array>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace boong::redis {

namespace {

const std::string* find(const Fields& fields, std::string_view name) {
    for (const auto& [k, v] : fields)
        if (k == name) return &v;
    return nullptr;
}

}  // namespace

namespace {

Error unwritable(const EventData& e, const Error& why) {
    return Error(errc::invalid_argument, "event " + e.event_id + " cannot be written as JSON: " + why.what());
}

// The envelope as one JSON object: the short, fixed-shape keys first so that
// an operator reading the stream with redis-cli sees them before the payload.
void write_envelope(detail::JsonSink& out, const EventData& e, int max_depth) {
    out.put(R"({"event_id":)");
    detail::write_json_string(out, e.event_id);
    out.put(R"(,"type":)");
    detail::write_json_string(out, e.type);
    out.put(R"(,"schema_version":)");
    detail::write_json_integer(out, e.schema_version);
    out.put(R"(,"metadata":)");
    detail::write_metadata(out, e.metadata, max_depth);
    out.put(R"(,"payload":)");
    detail::write_json(out, e.payload, max_depth);
    out.put('}');
}

std::string envelope_text(const EventData& e, int max_depth) {
    std::string text;
    try {
        detail::JsonSink sink(text);
        write_envelope(sink, e, max_depth);
        sink.flush();
    } catch (const Error& ex) {
        throw unwritable(e, ex);
    }
    return text;
}

}  // namespace

void append_envelope(std::vector<std::string>& argv, const EventData& e, int max_depth) {
    auto text = envelope_text(e, max_depth);
    argv.emplace_back(kEventField);
    argv.push_back(std::move(text));
}

void append_envelope(Fields& fields, const EventData& e, int max_depth) {
    fields.emplace_back(kEventField, envelope_text(e, max_depth));
}

void append_envelope(Resp& resp, const EventData& e, int max_depth) {
    static constexpr Resp::Word event("event");
    // Written on the stack (a spill string for a big event), then copied
    // once into the command behind its length.
    std::string spill;
    detail::JsonSink text(spill);
    try {
        write_envelope(text, e, max_depth);
    } catch (const Error& ex) {
        throw unwritable(e, ex);
    }
    resp.raw(event.view()).arg(text.text());
}

namespace {

Decoded undecodable(std::string why) {
    Decoded d;
    d.error = "undecodable message: " + std::move(why);
    return d;
}

// The field `event`, holding the envelope as a JSON object.
Decoded decode_event(const std::string& text, int max_depth) {
    json j;
    try {
        j = detail::read_json(text, max_depth);
    } catch (const std::exception& ex) {
        return undecodable(std::string("the field 'event' is not valid JSON: ") + ex.what());
    }
    if (!j.is_object())
        return undecodable(std::string("the field 'event' is a JSON ") + j.type_name() + ", not an object");
    json* values[5];
    const char* names[] = {"event_id", "type", "schema_version", "metadata", "payload"};
    for (int i = 0; i < 5; ++i) {
        const auto it = j.find(names[i]);
        if (it == j.end()) return undecodable(std::string("the field 'event' has no key '") + names[i] + "'");
        values[i] = &*it;
    }
    auto ill_typed = [&](int i, const char* wanted) {
        return undecodable(std::string(names[i]) + " in the field 'event' is a JSON " + values[i]->type_name() +
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
    Decoded d;
    d.event = std::move(e);
    return d;
}

}  // namespace

Decoded decode_envelope(const Fields& fields, int max_depth) {
    const auto* text = find(fields, kEventField);
    if (!text) return undecodable("the field 'event' is missing");
    auto d = decode_event(*text, max_depth);
    if (!d.event) return d;
    // A dead letter: its record goes where the Broker contract says.
    if (const auto* info = find(fields, kDeadLetterField)) {
        auto& extra = d.event->metadata.extra;
        if (!extra.is_object()) extra = json::object();
        try {
            extra["dead_letter"] = detail::read_json(*info, max_depth);
        } catch (const std::exception&) {
            extra["dead_letter"] = with_utf8_replaced(*info);
        }
    }
    return d;
}

std::string fields_text(const Fields& fields) {
    if (const auto* text = find(fields, kEventField); text && fields.size() == 1) return with_utf8_replaced(*text);
    json j = json::object();
    for (const auto& [k, v] : fields) j[with_utf8_replaced(k)] = with_utf8_replaced(v);
    return j.dump();
}

std::vector<Entry> parse_entries(const Reply& entries) {
    auto bad = [] { return Error(errc::protocol_error, "redis broker: a stream reply is not a list of entries"); };
    if (entries.is_nil()) return {};
    if (entries.type != Reply::Type::array) throw bad();
    std::vector<Entry> out;
    out.reserve(entries.elements.size());
    for (const auto& e : entries.elements) {
        if (e.type != Reply::Type::array || e.elements.size() != 2 || e.elements[0].type != Reply::Type::string)
            throw bad();
        Entry entry;
        entry.id = e.elements[0].str;
        const auto& fv = e.elements[1];
        if (fv.is_nil()) {
            entry.deleted = true;
        } else {
            if (fv.type != Reply::Type::array || fv.elements.size() % 2 != 0) throw bad();
            entry.fields.reserve(fv.elements.size() / 2);
            for (std::size_t i = 0; i + 1 < fv.elements.size(); i += 2)
                entry.fields.emplace_back(fv.elements[i].str, fv.elements[i + 1].str);
        }
        out.push_back(std::move(entry));
    }
    return out;
}

std::string with_utf8_replaced(const std::string& s) {
    // Through dump with replacement (U+FFFD), then back to the text.
    return json::parse(json(s).dump(-1, ' ', false, json::error_handler_t::replace)).get<std::string>();
}

}  // namespace boong::redis
