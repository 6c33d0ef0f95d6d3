#include "json_text.hpp"

#include <boong/error.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>

namespace boong::detail {

namespace {

// What a byte is to a JSON string writer: kept as it is, escaped, or the
// start of a multi-byte UTF-8 sequence (checked, then kept).
enum Byte : std::uint8_t { plain, escaped, multi };
constexpr std::array<std::uint8_t, 256> kByte = [] {
    std::array<std::uint8_t, 256> t{};
    for (int c = 0; c < 0x20; ++c) t[static_cast<std::size_t>(c)] = escaped;
    t['"'] = t['\\'] = escaped;
    for (int c = 0x80; c < 0x100; ++c) t[static_cast<std::size_t>(c)] = multi;
    return t;
}();

// The length of the well-formed UTF-8 sequence (RFC 3629: no overlong forms,
// no surrogates, nothing past U+10FFFF) starting at p[0] >= 0x80, or 0. The
// same sequences nlohmann's decoder accepts.
std::size_t utf8_length(const unsigned char* p, std::size_t left) noexcept {
    const unsigned c = p[0];
    std::size_t n = 0;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the first continuation byte
    if (c >= 0xC2 && c <= 0xDF) n = 1;
    else if (c == 0xE0) n = 2, lo = 0xA0;
    else if (c == 0xED) n = 2, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) n = 2;
    else if (c == 0xF0) n = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) n = 3;
    else if (c == 0xF4) n = 3, hi = 0x8F;
    else return 0;
    if (n >= left || p[1] < lo || p[1] > hi) return 0;
    for (std::size_t k = 2; k <= n; ++k)
        if ((p[k] >> 6) != 0x2) return 0;
    return n + 1;
}

// True when one of the 8 bytes at `p` needs a look: a control character,
// '"', '\\', or a byte of a multi-byte UTF-8 sequence. (Exact: the borrows of
// the classic "has a byte below n" tests only spoil bits above a true hit.)
bool needs_look(const unsigned char* p) noexcept {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    constexpr std::uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    auto has_zero = [](std::uint64_t v) { return (v - ones) & ~v & highs; };
    const std::uint64_t below_space = (w - ones * 0x20) & ~w & highs;
    return (below_space | has_zero(w ^ (ones * '"')) | has_zero(w ^ (ones * '\\')) | (w & highs)) != 0;
}

[[noreturn]] void bad_utf8(std::string_view s, std::size_t index) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(s[index]));
    throw Error(errc::invalid_argument,
                "a string is not valid UTF-8 (byte " + std::string(hex) + " at index " + std::to_string(index) + ")");
}

// How many bytes at the start of p[0, size) need no look (see needs_look).
std::size_t plain_prefix(const unsigned char* p, std::size_t size) noexcept {
    std::size_t i = 0;
    while (i + 8 <= size && !needs_look(p + i)) i += 8;
    // The last word, overlapping the one before: most strings are all plain.
    if (i < size && size >= 8 && i + 8 > size && !needs_look(p + size - 8)) return size;
    while (i < size && kByte[p[i]] == plain) ++i;
    return i;
}

// Two digits, four digits: the fixed-width parts of a timestamp.
char* put_digits(char* p, unsigned v, int width) {
    for (int i = width - 1; i >= 0; --i) {
        p[i] = static_cast<char>('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

// format_timestamp(t) (RFC 3339 UTC with microseconds), without gmtime_r and
// printf for the years 0000-9999.
void write_timestamp(JsonSink& out, Clock::time_point t) {
    using namespace std::chrono;
    const auto us = duration_cast<microseconds>(t.time_since_epoch());
    const sys_time<microseconds> at(us);
    const auto day = floor<days>(at);
    const year_month_day ymd(day);
    const int y = static_cast<int>(ymd.year());
    if (y < 0 || y > 9999) {
        out.put(format_timestamp(t));
        return;
    }
    const auto in_day = at - day;  // [0, 24 h)
    const auto secs = duration_cast<seconds>(in_day);
    const auto frac = static_cast<unsigned>((in_day - secs).count());
    const auto s = static_cast<unsigned>(secs.count());
    char text[32];
    char* p = put_digits(text, static_cast<unsigned>(y), 4);
    *p++ = '-';
    p = put_digits(p, static_cast<unsigned>(ymd.month()), 2);
    *p++ = '-';
    p = put_digits(p, static_cast<unsigned>(ymd.day()), 2);
    *p++ = 'T';
    p = put_digits(p, s / 3600, 2);
    *p++ = ':';
    p = put_digits(p, s / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, s % 60, 2);
    *p++ = '.';
    p = put_digits(p, frac, 6);
    *p++ = 'Z';
    out.put(text, static_cast<std::size_t>(p - text));
}

constexpr std::string_view kCausation = "causation_id";
constexpr std::string_view kCorrelation = "correlation_id";
constexpr std::string_view kTimestamp = "timestamp";

}  // namespace

// A JSON string, escaped as nlohmann's dump() does with ensure_ascii off:
// the two-character escapes where JSON has one, \u00xx for the other control
// characters, everything else (DEL, '/', non-ASCII) as it is.
void write_json_string(JsonSink& out, std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::size_t size = s.size();
    // Most strings (keys, ids, plain text) have nothing to escape or check.
    std::size_t i = plain_prefix(p, size);
    if (i == size) {
        out.put_quoted(s);
        return;
    }
    out.put('"');
    std::size_t run = 0;  // start of the bytes not yet copied
    while (i < size) {
        if (i + 8 <= size && !needs_look(p + i)) {
            i += 8;
            continue;
        }
        const auto kind = kByte[p[i]];
        if (kind == plain) {
            ++i;
            continue;
        }
        if (kind == multi) {
            const std::size_t n = utf8_length(p + i, size - i);
            if (n == 0) bad_utf8(s, i);
            i += n;
            continue;
        }
        out.put(s.data() + run, i - run);
        switch (s[i]) {
        case '"': out.put("\\\"", 2); break;
        case '\\': out.put("\\\\", 2); break;
        case '\b': out.put("\\b", 2); break;
        case '\f': out.put("\\f", 2); break;
        case '\n': out.put("\\n", 2); break;
        case '\r': out.put("\\r", 2); break;
        case '\t': out.put("\\t", 2); break;
        default: {
            constexpr char digits[] = "0123456789abcdef";
            const char esc[6] = {'\\', 'u', '0', '0', digits[(p[i] >> 4) & 0xF], digits[p[i] & 0xF]};
            out.put(esc, sizeof esc);
        }
        }
        run = ++i;
    }
    out.put(s.data() + run, size - run);
    out.put('"');
}


void write_json(JsonSink& out, const json& j) {
    switch (j.type()) {
    case json::value_t::null: out.put("null"); return;
    case json::value_t::boolean: out.put(j.get<bool>() ? std::string_view("true") : std::string_view("false")); return;
    case json::value_t::number_integer: write_json_integer(out, j.get<json::number_integer_t>()); return;
    case json::value_t::number_unsigned: write_json_integer(out, j.get<json::number_unsigned_t>()); return;
    case json::value_t::string: write_json_string(out, j.get_ref<const std::string&>()); return;
    case json::value_t::object: {
        out.put('{');
        bool first = true;
        for (const auto& [k, v] : j.get_ref<const json::object_t&>()) {
            if (!first) out.put(',');
            first = false;
            write_json_string(out, k);
            out.put(':');
            write_json(out, v);
        }
        out.put('}');
        return;
    }
    case json::value_t::array: {
        out.put('[');
        bool first = true;
        for (const auto& v : j.get_ref<const json::array_t&>()) {
            if (!first) out.put(',');
            first = false;
            write_json(out, v);
        }
        out.put(']');
        return;
    }
    default:
        // Floating point (nlohmann's shortest round-trip form, "null" when not
        // finite), binary, discarded: rare, and dump() says it best.
        try {
            out.put(j.dump());
        } catch (const json::exception& ex) {
            throw Error(errc::invalid_argument, ex.what());
        }
        return;
    }
}

void write_metadata(JsonSink& out, const EventMetadata& m) {
    // json(m) is a std::map: extra's keys and the typed fields in key order,
    // the typed fields winning (an extra key of the same name is dropped,
    // and so is correlation_id/causation_id when it is empty).
    struct Typed {
        std::string_view key;
        const std::string* text;  // null: the timestamp
    };
    std::array<Typed, 3> typed{};
    std::size_t count = 0;
    if (!m.causation_id.empty()) typed[count++] = {kCausation, &m.causation_id};
    if (!m.correlation_id.empty()) typed[count++] = {kCorrelation, &m.correlation_id};
    typed[count++] = {kTimestamp, nullptr};
    std::size_t next = 0;
    bool first = true;
    auto write_typed = [&](const Typed& t) {
        if (!first) out.put(',');
        first = false;
        write_json_string(out, t.key);
        out.put(':');
        if (t.text) {
            write_json_string(out, *t.text);
        } else {
            out.put('"');
            write_timestamp(out, m.timestamp);  // nothing in it needs escaping
            out.put('"');
        }
    };
    out.put('{');
    if (m.extra.is_object()) {
        for (const auto& [k, v] : m.extra.get_ref<const json::object_t&>()) {
            if (k == kCausation || k == kCorrelation || k == kTimestamp) continue;
            while (next < count && typed[next].key < std::string_view(k)) write_typed(typed[next++]);
            if (!first) out.put(',');
            first = false;
            write_json_string(out, k);
            out.put(':');
            write_json(out, v);
        }
    }
    while (next < count) write_typed(typed[next++]);
    out.put('}');
}

void write_json(std::string& out, const json& j) {
    JsonSink sink(out);
    write_json(sink, j);
    sink.flush();
}

void write_metadata(std::string& out, const EventMetadata& m) {
    JsonSink sink(out);
    write_metadata(sink, m);
    sink.flush();
}

}  // namespace boong::detail
