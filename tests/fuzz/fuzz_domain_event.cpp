// libFuzzer target: decoding typed domain events through an EventRegistry with
// upcasters, as a service decodes what it is delivered. The first byte picks
// the type, the second its schema version, the rest is the payload's JSON.
// Every input decodes, or is refused with Error(errc::unknown_event).
#include "json_text.hpp"

#include <boong/domain_event.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

namespace fuzz {

struct Item {
    std::string sku;
    std::int64_t quantity = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Item, sku, quantity)

struct OrderPlaced {
    static constexpr std::string_view event_name = "OrderPlaced";
    static constexpr int event_version = 3;
    std::string order_id;
    std::vector<Item> items;
    std::int64_t amount_cents = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OrderPlaced, order_id, items, amount_cents)

struct Note {
    static constexpr std::string_view event_name = "Note";
    static constexpr int event_version = 1;
    boong::json body;  // any JSON: decoding copies it
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Note, body)

}  // namespace fuzz

namespace {

using fuzz::Note;
using fuzz::OrderPlaced;

const boong::EventRegistry& registry() {
    static const boong::EventRegistry r = [] {
        boong::EventRegistry reg;
        reg.add<OrderPlaced>();
        reg.add<Note>();
        // v1 had "amount" in units, v2 a single "sku" and "quantity".
        // Upcasters check what they convert, as the registry's documentation asks.
        reg.add_upcaster("OrderPlaced", 1, [](boong::json p) {
            const auto& amount = p.at("amount");
            if (!amount.is_number_integer() || std::llabs(amount.get<std::int64_t>()) > 1'000'000'000'000)
                throw std::invalid_argument("amount is not an integer of at most 10^12");
            p["amount_cents"] = amount.get<std::int64_t>() * 100;
            p.erase("amount");
            return p;
        });
        reg.add_upcaster("OrderPlaced", 2, [](boong::json p) {
            p["items"] = boong::json::array({{{"sku", p.at("sku")}, {"quantity", p.at("quantity")}}});
            p.erase("sku");
            p.erase("quantity");
            return p;
        });
        return reg;
    }();
    return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    boong::EventData e;
    e.event_id = "01890a5d-ac96-774b-bcce-b302099a8057";
    e.type = data[0] % 3 == 0 ? "OrderPlaced" : data[0] % 3 == 1 ? "Note" : "Unknown";
    e.schema_version = static_cast<int>(data[1] % 5);
    try {
        // As a broker delivers it: read with the depth limit.
        e.payload = boong::detail::read_json(std::string_view(reinterpret_cast<const char*>(data + 2), size - 2));
    } catch (const std::exception&) {
        return 0;
    }
    try {
        if (e.type == "Note") {
            (void)registry().decode<Note>(e);
        } else {
            (void)registry().decode<OrderPlaced>(e);
        }
    } catch (const boong::Error& err) {
        if (err.code() != boong::errc::unknown_event) __builtin_trap();
    }
    return 0;
}
