// libFuzzer target: the Redis stream-entry decoder (what a consumer does with
// whatever another producer, a bug or an attacker wrote into a stream). The
// input is the entry's fields, field and value alternating, separated by NUL
// bytes; an input without NUL is the `event` field's value alone.
#include "redis/envelope.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    boong::redis::Fields fields;
    if (input.find('\0') == std::string_view::npos) {
        fields.emplace_back("event", std::string(input));
    } else {
        std::string_view rest = input;
        std::vector<std::string> parts;
        for (;;) {
            const auto nul = rest.find('\0');
            parts.emplace_back(rest.substr(0, nul));
            if (nul == std::string_view::npos) break;
            rest.remove_prefix(nul + 1);
        }
        for (std::size_t i = 0; i < parts.size(); i += 2)
            fields.emplace_back(parts[i], i + 1 < parts.size() ? parts[i + 1] : std::string());
    }
    const auto decoded = boong::redis::decode_envelope(fields, boong::default_max_json_depth);
    if (decoded.event) {
        // A decoded event is one the library can write again, and it stays within the limit.
        if (boong::json_depth_exceeds(decoded.event->payload, boong::default_max_json_depth)) __builtin_trap();
        std::vector<std::string> argv;
        try {
            boong::redis::append_envelope(argv, *decoded.event, boong::default_max_json_depth);
        } catch (const boong::Error&) {
            // Text that is not UTF-8 inside a string: refused, with a reason.
        }
    } else if (decoded.error.empty()) {
        __builtin_trap();  // refused without a reason
    }
    (void)boong::redis::fields_text(fields);
    return 0;
}
