// libFuzzer target: the JSON reader every stored event and delivered message
// goes through (detail::read_json, detail::read_metadata). Never crashes, never
// hangs, never builds a value deeper than the limit; and what it reads is
// what json::parse reads (same value, or both refuse).
#include "json_text.hpp"

#include <boong/event.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    boong::json got;
    bool read = false;
    try {
        got = boong::detail::read_json(text);
        read = true;
    } catch (const std::exception&) {
    }
    if (read) {
        if (boong::json_depth_exceeds(got, boong::default_max_json_depth)) __builtin_trap();
        // What json::parse makes of it must be the same value.
        const auto want = boong::json::parse(text, nullptr, false);
        if (want.is_discarded() || want != got) __builtin_trap();
    }
    boong::EventMetadata m;
    try {
        boong::detail::read_metadata(text, m);
    } catch (const std::exception&) {
    }
    return 0;
}
