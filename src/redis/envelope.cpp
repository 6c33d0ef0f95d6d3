#include "redis/envelope.hpp"

#include "broker/envelope.hpp"
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

void append_envelope(std::vector<std::string>& argv, const EventData& e, int max_depth) {
    auto text = detail::envelope_text(e, max_depth);
    argv.emplace_back(kEventField);
    argv.push_back(std::move(text));
}

void append_envelope(Fields& fields, const EventData& e, int max_depth) {
    fields.emplace_back(kEventField, detail::envelope_text(e, max_depth));
}

void append_envelope(Resp& resp, const EventData& e, int max_depth) {
    static constexpr Resp::Word event("event");
    // Written on the stack (a spill string for a big event), then copied
    // once into the command behind its length.
    std::string spill;
    detail::JsonSink text(spill);
    detail::write_envelope(text, e, max_depth);
    resp.raw(event.view()).arg(text.text());
}

Decoded decode_envelope(const Fields& fields, int max_depth) {
    const auto* text = find(fields, kEventField);
    if (!text) return Decoded{std::nullopt, "undecodable message: the field 'event' is missing"};
    auto d = detail::decode_envelope_text(*text, max_depth, "the field 'event'");
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

}  // namespace boong::redis
