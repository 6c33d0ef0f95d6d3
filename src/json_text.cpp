#include "json_text.hpp"

#include <boong/error.hpp>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

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


namespace {

[[noreturn]] void too_deep(int max_depth) {
    throw Error(errc::invalid_argument, "JSON nests deeper than " + std::to_string(max_depth) + " levels");
}

void write_value(JsonSink& out, const json& j, int depth, int max_depth);

}  // namespace

void write_json(JsonSink& out, const json& j, int max_depth) { write_value(out, j, 0, max_depth); }

namespace {

void write_value(JsonSink& out, const json& j, int depth, int max_depth) {
    switch (j.type()) {
    case json::value_t::null: out.put("null"); return;
    case json::value_t::boolean: out.put(j.get<bool>() ? std::string_view("true") : std::string_view("false")); return;
    case json::value_t::number_integer: write_json_integer(out, j.get<json::number_integer_t>()); return;
    case json::value_t::number_unsigned: write_json_integer(out, j.get<json::number_unsigned_t>()); return;
    case json::value_t::string: write_json_string(out, j.get_ref<const std::string&>()); return;
    case json::value_t::object: {
        if (depth >= max_depth) too_deep(max_depth);
        out.put('{');
        bool first = true;
        for (const auto& [k, v] : j.get_ref<const json::object_t&>()) {
            if (!first) out.put(',');
            first = false;
            write_json_string(out, k);
            out.put(':');
            write_value(out, v, depth + 1, max_depth);
        }
        out.put('}');
        return;
    }
    case json::value_t::array: {
        if (depth >= max_depth) too_deep(max_depth);
        out.put('[');
        bool first = true;
        for (const auto& v : j.get_ref<const json::array_t&>()) {
            if (!first) out.put(',');
            first = false;
            write_value(out, v, depth + 1, max_depth);
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

}  // namespace

void write_metadata(JsonSink& out, const EventMetadata& m, int max_depth) {
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
            write_value(out, v, 1, max_depth);  // inside the metadata object
        }
    }
    while (next < count) write_typed(typed[next++]);
    out.put('}');
}

void write_json(std::string& out, const json& j, int max_depth) {
    JsonSink sink(out);
    write_json(sink, j, max_depth);
    sink.flush();
}

void write_metadata(std::string& out, const EventMetadata& m, int max_depth) {
    JsonSink sink(out);
    write_metadata(sink, m, max_depth);
    sink.flush();
}

// ---- Reading ----

namespace {

// A recursive-descent reader of the JSON it is sure of. Every method returns
// false, at any point, when the text is not something it reads exactly as
// json::parse does; the caller then hands the whole text to json::parse (a
// slow path for invalid or odd text, never a second opinion).
class JsonReader {
public:
    JsonReader(std::string_view text, int max_depth) noexcept
        : p_(reinterpret_cast<const unsigned char*>(text.data())), end_(p_ + text.size()), max_depth_(max_depth) {}

    // Whether it gave up because the text nests deeper than max_depth.
    bool too_deep() const noexcept { return too_deep_; }

    bool document(json& out) {
        space();
        if (!value(out, 0)) return false;
        space();
        return p_ == end_;
    }

    // A top-level object, each member's key handed to on_member(key), which
    // reads its value with string() or value() and returns false to give up.
    template <class OnMember>
    bool object_members(OnMember&& on_member) {
        space();
        if (p_ == end_ || *p_ != '{') return false;
        ++p_;
        std::string key;
        if (!elements('}', [&] { return member_key(key) && on_member(key); })) return false;
        space();
        return p_ == end_;
    }

    bool value(json& out, int depth) {
        if (p_ == end_) return false;
        switch (*p_) {
        case '{': return object(out, depth);
        case '[': return array(out, depth);
        case '"': {
            std::string s;
            if (!string(s)) return false;
            out = std::move(s);
            return true;
        }
        case 't':
            if (!literal("true", 4)) return false;
            out = true;
            return true;
        case 'f':
            if (!literal("false", 5)) return false;
            out = false;
            return true;
        case 'n':
            if (!literal("null", 4)) return false;
            out = nullptr;
            return true;
        default: return number(out);
        }
    }

    // A string value, at its opening quote.
    bool string(std::string& s) {
        if (p_ == end_ || *p_ != '"') return false;
        ++p_;
        for (;;) {
            const auto* start = p_;
            p_ += plain_prefix(p_, static_cast<std::size_t>(end_ - p_));
            s.append(reinterpret_cast<const char*>(start), static_cast<std::size_t>(p_ - start));
            if (p_ == end_) return false;
            const unsigned c = *p_;
            if (c == '"') {
                ++p_;
                return true;
            }
            if (c == '\\') {
                if (!escape(s)) return false;
            } else if (c >= 0x80) {
                const std::size_t n = utf8_length(p_, static_cast<std::size_t>(end_ - p_));
                if (n == 0) return false;  // json::parse says what is wrong with it
                s.append(reinterpret_cast<const char*>(p_), n);
                p_ += n;
            } else {
                return false;  // a raw control character
            }
        }
    }

private:
    void space() noexcept {
        while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
    }

    bool literal(const char* word, std::size_t n) noexcept {
        if (static_cast<std::size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0) return false;
        p_ += n;
        return true;
    }

    // A key and its colon; leaves p_ at the value.
    bool member_key(std::string& key) {
        key.clear();
        if (!string(key)) return false;
        space();
        if (p_ == end_ || *p_ != ':') return false;
        ++p_;
        space();
        return true;
    }

    // The elements of an array or members of an object, after its opening
    // bracket: element() reads one, at its first character.
    template <class Element>
    bool elements(char close, Element&& element) {
        space();
        if (p_ != end_ && *p_ == close) {
            ++p_;
            return true;
        }
        for (;;) {
            if (!element()) return false;
            space();
            if (p_ == end_) return false;
            if (*p_ == ',') {
                ++p_;
                space();
                continue;
            }
            if (*p_ != close) return false;
            ++p_;
            return true;
        }
    }

    bool object(json& out, int depth) {
        if (depth >= max_depth_) return too_deep_ = true, false;
        ++p_;
        out = json::object();
        auto& members = out.get_ref<json::object_t&>();
        std::string key;
        // A key seen twice keeps its last value, as json::parse does.
        return elements('}', [&] { return member_key(key) && value(members[std::move(key)], depth + 1); });
    }

    bool array(json& out, int depth) {
        if (depth >= max_depth_) return too_deep_ = true, false;
        ++p_;
        out = json::array();
        auto& values = out.get_ref<json::array_t&>();
        return elements(']', [&] { return value(values.emplace_back(), depth + 1); });
    }

    // At a backslash.
    bool escape(std::string& s) {
        if (end_ - p_ < 2) return false;
        char c;
        switch (p_[1]) {
        case '"': c = '"'; break;
        case '\\': c = '\\'; break;
        case '/': c = '/'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'u': return unicode_escape(s);
        default: return false;
        }
        s += c;
        p_ += 2;
        return true;
    }

    bool hex4(const unsigned char* q, unsigned& v) const noexcept {
        if (end_ - q < 4) return false;
        v = 0;
        for (int i = 0; i < 4; ++i) {
            const unsigned c = q[i];
            unsigned d;
            if (c >= '0' && c <= '9') d = c - '0';
            else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
            else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
            else return false;
            v = v * 16 + d;
        }
        return true;
    }

    // \uXXXX, or a surrogate pair of two; a lone surrogate is json::parse's to refuse.
    bool unicode_escape(std::string& s) {
        unsigned cp;
        if (!hex4(p_ + 2, cp)) return false;
        p_ += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return false;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned low;
            if (end_ - p_ < 6 || p_[0] != '\\' || p_[1] != 'u' || !hex4(p_ + 2, low) || low < 0xDC00 || low > 0xDFFF)
                return false;
            p_ += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        if (cp < 0x80) {
            s += static_cast<char>(cp);
        } else if (cp < 0x800) {
            s += static_cast<char>(0xC0 | (cp >> 6));
            s += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            s += static_cast<char>(0xE0 | (cp >> 12));
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            s += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            s += static_cast<char>(0xF0 | (cp >> 18));
            s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            s += static_cast<char>(0x80 | (cp & 0x3F));
        }
        return true;
    }

    static bool digit(unsigned char c) noexcept { return c >= '0' && c <= '9'; }

    // As json::parse types numbers: an integer (no fraction, no exponent) is
    // an unsigned 64-bit one when positive, a signed one when negative, and
    // a double only when it is out of range; anything else is a double
    // (correctly rounded, as strtod, which json::parse uses, rounds).
    bool number(json& out) {
        const auto* start = p_;
        bool integer = true;
        if (*p_ == '-') ++p_;
        if (p_ == end_) return false;
        if (*p_ == '0') {
            ++p_;
        } else if (*p_ >= '1' && *p_ <= '9') {
            while (p_ != end_ && digit(*p_)) ++p_;
        } else {
            return false;
        }
        if (p_ != end_ && *p_ == '.') {
            integer = false;
            const auto* digits = ++p_;
            while (p_ != end_ && digit(*p_)) ++p_;
            if (p_ == digits) return false;
        }
        if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
            integer = false;
            ++p_;
            if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
            const auto* digits = p_;
            while (p_ != end_ && digit(*p_)) ++p_;
            if (p_ == digits) return false;
        }
        const char* first = reinterpret_cast<const char*>(start);
        const char* last = reinterpret_cast<const char*>(p_);
        if (integer) {
            if (*start == '-') {
                std::int64_t v;
                const auto r = std::from_chars(first, last, v);
                if (r.ec == std::errc{} && r.ptr == last) {
                    out = v;
                    return true;
                }
            } else {
                std::uint64_t v;
                const auto r = std::from_chars(first, last, v);
                if (r.ec == std::errc{} && r.ptr == last) {
                    out = v;
                    return true;
                }
            }
        }
        double v;
        const auto r = std::from_chars(first, last, v);
        // Out of range (overflow, and underflow, which from_chars reports and
        // strtod rounds): json::parse's to decide.
        if (r.ec != std::errc{} || r.ptr != last || !std::isfinite(v)) return false;
        out = v;
        return true;
    }

    const unsigned char* p_;
    const unsigned char* end_;
    int max_depth_;
    bool too_deep_ = false;
};

// json::parse(text), refusing to nest deeper than `max_depth` while it parses
// (before any recursive walk of the value could overflow the stack).
json parse_bounded(std::string_view text, int max_depth) {
    return json::parse(text, [max_depth](int depth, json::parse_event_t event, json&) {
        // depth counts the containers around the one starting here.
        if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
            depth >= max_depth)
            too_deep(max_depth);
        return true;
    });
}

}  // namespace

json read_json(std::string_view text, int max_depth) {
    json out;
    JsonReader reader(text, max_depth);
    if (reader.document(out)) return out;
    if (reader.too_deep()) too_deep(max_depth);
    return parse_bounded(text, max_depth);
}

void read_metadata(std::string_view text, EventMetadata& m, int max_depth) {
    EventMetadata read;
    std::string timestamp;
    bool has_timestamp = false;
    JsonReader reader(text, max_depth);
    const bool done = reader.object_members([&](const std::string& key) {
        // A typed field that is not a string is from_json's to refuse.
        if (key == kCorrelation) {
            read.correlation_id.clear();
            return reader.string(read.correlation_id);
        }
        if (key == kCausation) {
            read.causation_id.clear();
            return reader.string(read.causation_id);
        }
        if (key == kTimestamp) {
            has_timestamp = true;
            timestamp.clear();
            return reader.string(timestamp);
        }
        if (read.extra.is_null()) read.extra = json::object();
        return reader.value(read.extra[key], 1);
    });
    if (!done) {
        if (reader.too_deep()) too_deep(max_depth);
        from_json(parse_bounded(text, max_depth), m);
        return;
    }
    // Last, as from_json meets it only once every typed field is a string.
    if (has_timestamp) read.timestamp = parse_timestamp(timestamp);
    m = std::move(read);
}

}  // namespace boong::detail
