// Turning result rows into Boong's types.
#pragma once

#include "json_text.hpp"

#include <boong/error.hpp>
#include <boong/event.hpp>

#include <pqxx/field>
#include <pqxx/row>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace boong::pg {

inline std::int64_t to_int64(const pqxx::field& f) {
    std::int64_t v = 0;
    const char* p = f.c_str();
    const auto [end, ec] = std::from_chars(p, p + f.size(), v);
    if (ec != std::errc{} || end != p + f.size()) {
        throw Error(errc::protocol_error, std::string("PostgreSQL sent '") + p + "' where a number was expected");
    }
    return v;
}

inline std::string_view text(const pqxx::field& f) { return {f.c_str(), f.size()}; }

inline json to_json_value(const pqxx::field& f) { return detail::read_json(text(f)); }

inline Clock::time_point from_micros(std::int64_t us) { return Clock::time_point(std::chrono::microseconds(us)); }

// Columns from `c`: position, version, event_id, type, schema_version,
// payload, metadata, stored_at in microseconds (see schema.cpp).
inline RecordedEvent to_event(const pqxx::row& row, pqxx::row::size_type c, std::string stream) {
    RecordedEvent e;
    e.stream_id = std::move(stream);
    e.position = to_int64(row[c]);
    e.version = to_int64(row[c + 1]);
    e.event.event_id.assign(row[c + 2].c_str(), row[c + 2].size());
    e.event.type.assign(row[c + 3].c_str(), row[c + 3].size());
    e.event.schema_version = static_cast<int>(to_int64(row[c + 4]));
    e.event.payload = to_json_value(row[c + 5]);
    detail::read_metadata(text(row[c + 6]), e.event.metadata);
    e.stored_at = from_micros(to_int64(row[c + 7]));
    return e;
}

}  // namespace boong::pg
