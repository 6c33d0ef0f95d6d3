// libFuzzer target: the configuration loader. Any JSON gives a config or a
// boong::Error(invalid_config) naming the key; nothing else escapes.
#include <boong/config.hpp>
#include <boong/error.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto j = nlohmann::json::parse(data, data + size, nullptr, false);
    if (j.is_discarded()) return 0;
    try {
        (void)boong::parse_config(j, "fuzz.json");
    } catch (const boong::Error& e) {
        if (e.code() != boong::errc::invalid_config) __builtin_trap();
    }
    return 0;
}
