// JSON text written straight from nlohmann::json values and event metadata,
// byte for byte what nlohmann's dump() writes (compact, UTF-8 kept as it is),
// without building documents or going through its per-byte serializer: the
// brokers and stores write an event's JSON on every publish and append.
// And read back into the values json::parse gives, about twice as fast: the
// store and the broker read an event's JSON on every read and delivery.
// Private to the Boong libraries.
#pragma once

#include <boong/event.hpp>

#include <charconv>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

namespace boong::detail {

// Collects JSON text in a buffer on the stack: JSON is written a character
// or a short run at a time, and std::string's out-of-line append would cost
// more than the copying. Text that does not fit spills over into `spill`.
class JsonSink {
public:
    explicit JsonSink(std::string& spill) noexcept : spill_(spill) {}
    JsonSink(const JsonSink&) = delete;
    JsonSink& operator=(const JsonSink&) = delete;

    void put(char c) {
        if (used_ == sizeof buf_) flush();
        buf_[used_++] = c;
    }
    void put(const char* p, std::size_t n) {
        if (n > sizeof buf_ - used_) {
            flush();
            if (n > sizeof buf_) {
                spill_.append(p, n);
                return;
            }
        }
        std::memcpy(buf_ + used_, p, n);
        used_ += n;
    }
    void put(std::string_view s) { put(s.data(), s.size()); }
    // '"', s, '"': one room check for the three when they fit.
    void put_quoted(std::string_view s) {
        if (s.size() + 2 > sizeof buf_ - used_) {
            put('"');
            put(s);
            put('"');
            return;
        }
        buf_[used_] = '"';
        std::memcpy(buf_ + used_ + 1, s.data(), s.size());
        buf_[used_ + 1 + s.size()] = '"';
        used_ += s.size() + 2;
    }

    // All the text written, once the writing is done: in the buffer when it
    // fit, else moved to the end of `spill`.
    std::string_view text() {
        if (!spilled_) return {buf_, used_};
        flush();
        return spill_;
    }
    // Everything appended to `spill`.
    void flush() {
        spill_.append(buf_, used_);
        used_ = 0;
        spilled_ = true;
    }

private:
    std::string& spill_;
    bool spilled_ = false;
    std::size_t used_ = 0;
    char buf_[1024];
};

// A JSON string (quoted, escaped as dump() does with ensure_ascii off).
// Throws Error(errc::invalid_argument) when `s` is not valid UTF-8.
void write_json_string(JsonSink& out, std::string_view s);

template <class Int>
void write_json_integer(JsonSink& out, Int v) {
    char text[24];
    const auto end = std::to_chars(text, text + sizeof text, v).ptr;
    out.put(text, static_cast<std::size_t>(end - text));
}

// j.dump(). Throws Error(errc::invalid_argument) on a string that is not
// valid UTF-8 (where dump() throws json::type_error), or when `j` nests
// deeper than max_depth, the text partly written.
void write_json(JsonSink& out, const json& j, int max_depth = default_max_json_depth);
// json(m).dump() (see to_json(json&, const EventMetadata&)), the same way.
void write_metadata(JsonSink& out, const EventMetadata& m, int max_depth = default_max_json_depth);

// The same, appended to `out`.
void write_json(std::string& out, const json& j, int max_depth = default_max_json_depth);
void write_metadata(std::string& out, const EventMetadata& m, int max_depth = default_max_json_depth);

// json::parse(text): the same value, types included (a positive integer is
// number_unsigned, a negative one number_integer, one out of range of both
// a double). Text it does not read itself (invalid JSON, a number out of
// range of a double) goes to json::parse, so what is refused, and how, is
// json::parse's. Text nesting deeper than max_depth is refused while it is
// read, before anything walks it: Error(errc::invalid_argument).
json read_json(std::string_view text, int max_depth = default_max_json_depth);

// from_json(read_json(text), m), without the document: the typed fields go
// straight into `m`, only what `extra` holds is built as JSON. The same
// errors as from_json (metadata it does not read itself goes that way), and
// the depth limit of read_json (the metadata object is level 1).
void read_metadata(std::string_view text, EventMetadata& m, int max_depth = default_max_json_depth);

}  // namespace boong::detail
