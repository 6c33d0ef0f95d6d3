#include "broker/redis/envelope.hpp"

#include <charconv>

namespace boong::redis {

namespace {

const std::string* find(const Fields& fields, std::string_view name) {
    for (const auto& [k, v] : fields)
        if (k == name) return &v;
    return nullptr;
}

}  // namespace

void append_envelope(std::vector<std::string>& argv, const EventData& e) {
    std::string payload, metadata;
    try {
        payload = e.payload.dump();
        metadata = json(e.metadata).dump();
    } catch (const json::exception& ex) {
        throw Error(errc::invalid_argument, "event " + e.event_id + " cannot be written as JSON: " + ex.what());
    }
    argv.insert(argv.end(), {"event_id", e.event_id, "type", e.type, "schema_version",
                             std::to_string(e.schema_version), "payload", std::move(payload), "metadata",
                             std::move(metadata)});
}

void append_envelope(Resp& resp, const EventData& e) {
    std::string payload, metadata;
    try {
        payload = e.payload.dump();
        metadata = json(e.metadata).dump();
    } catch (const json::exception& ex) {
        throw Error(errc::invalid_argument, "event " + e.event_id + " cannot be written as JSON: " + ex.what());
    }
    resp.arg("event_id").arg(e.event_id).arg("type").arg(e.type).arg("schema_version");
    resp.arg(std::to_string(e.schema_version)).arg("payload").arg(payload).arg("metadata").arg(metadata);
}

Decoded decode_envelope(const Fields& fields) {
    Decoded d;
    const char* names[] = {"event_id", "type", "schema_version", "payload", "metadata"};
    const std::string* values[5];
    for (int i = 0; i < 5; ++i) {
        values[i] = find(fields, names[i]);
        if (!values[i]) {
            d.error = std::string("undecodable message: the field '") + names[i] + "' is missing";
            return d;
        }
    }
    EventData e;
    e.event_id = *values[0];
    if (!is_uuid(e.event_id)) {
        d.error = "undecodable message: event_id '" + e.event_id + "' is not a UUID";
        return d;
    }
    e.type = *values[1];
    if (e.type.empty()) {
        d.error = "undecodable message: type is empty";
        return d;
    }
    const auto& sv = *values[2];
    const auto [end, ec] = std::from_chars(sv.data(), sv.data() + sv.size(), e.schema_version);
    if (ec != std::errc{} || end != sv.data() + sv.size() || e.schema_version < 1) {
        d.error = "undecodable message: schema_version '" + sv + "' is not an integer >= 1";
        return d;
    }
    try {
        e.payload = json::parse(*values[3]);
    } catch (const std::exception& ex) {
        d.error = std::string("undecodable message: payload is not valid JSON: ") + ex.what();
        return d;
    }
    try {
        e.metadata = json::parse(*values[4]).get<EventMetadata>();
    } catch (const std::exception& ex) {
        d.error = std::string("undecodable message: metadata is not valid: ") + ex.what();
        return d;
    }
    d.event = std::move(e);
    return d;
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

json fields_to_json(const Fields& fields) {
    // Through dump with replacement, so that bytes that are not UTF-8 cannot
    // make the dead letter itself unwritable.
    auto text = [](const std::string& s) {
        return json::parse(json(s).dump(-1, ' ', false, json::error_handler_t::replace)).get<std::string>();
    };
    json j = json::object();
    for (const auto& [k, v] : fields) j[text(k)] = text(v);
    return j;
}

}  // namespace boong::redis
