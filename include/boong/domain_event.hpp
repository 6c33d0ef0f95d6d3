// Typed, versioned domain events: a C++ type per event, a registry that
// decodes what is stored or delivered (upcasting older versions), and encodes
// what a service emits.
//
//   struct OrderCreated {
//       static constexpr std::string_view event_name = "OrderCreated";
//       static constexpr int event_version = 2;
//       std::string order_id; std::string customer; std::int64_t amount_cents;
//   };
//   NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OrderCreated, order_id, customer, amount_cents)
//
//   boong::EventRegistry registry;
//   registry.add<OrderCreated>();
//   registry.add_upcaster("OrderCreated", 1, [](boong::json p) {   // v1 had "amount" in units
//       // Payloads come from outside: check what is converted (a throw here
//       // refuses the event with Error(errc::unknown_event), naming it).
//       const auto& amount = p.at("amount");
//       if (!amount.is_number_integer() || std::llabs(amount.get<std::int64_t>()) > 1'000'000'000'000)
//           throw std::invalid_argument("amount is not an integer of at most 10^12");
//       p["amount_cents"] = amount.get<std::int64_t>() * 100;
//       p.erase("amount");
//       return p;
//   });
#pragma once

#include <boong/event.hpp>

#include <concepts>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace boong {

template <class E>
concept DomainEvent = requires(const E& e, const json& j) {
    { E::event_name } -> std::convertible_to<std::string_view>;
    { E::event_version } -> std::convertible_to<int>;
    { json(e) };
    { j.get<E>() } -> std::same_as<E>;
};

// Turns a payload of version v into version v + 1 of the same event.
using Upcaster = std::function<json(json)>;

class EventRegistry {
public:
    // Registers E at its current version. Registering a name twice with
    // different versions is Error(errc::invalid_config).
    template <DomainEvent E>
    void add() {
        add_name(std::string(E::event_name), E::event_version);
    }

    // How to read version `from_version` of `name` as version from_version + 1.
    // Chains: v1 -> v2 -> v3. Error(errc::invalid_config) for a version at or
    // above the current one, or registered twice.
    void add_upcaster(std::string_view name, int from_version, Upcaster upcaster);

    bool knows(std::string_view name) const { return current_.find(name) != current_.end(); }

    // How deeply a payload may nest to be decoded (default_max_json_depth);
    // deeper ones are Error(errc::unknown_event), refused before anything
    // walks them. Error(errc::invalid_config) outside 1..10000.
    void set_max_json_depth(int depth);
    int max_json_depth() const noexcept { return max_depth_; }
    // The current version of `name`; 0 when unknown.
    int current_version(std::string_view name) const;

    // The payload of `e` at the current version of its type. Throws
    // Error(errc::unknown_event) naming the event, its id and the reason: an
    // unknown name, a version newer than this service knows, no upcaster
    // from its version, or a payload nesting deeper than max_json_depth().
    json upcast(const EventData& e) const;

    // The event as E. Throws Error(errc::unknown_event) as upcast() does, when
    // the event is not an E, or when the payload does not decode (naming the
    // field nlohmann complained about), or holds a number of magnitude 2^63 or
    // more (nlohmann converts a floating-point number to an integer field
    // without a check; such a number is refused before it gets the chance).
    template <DomainEvent E>
    E decode(const EventData& e) const {
        if (e.type != E::event_name) {
            throw Error(errc::unknown_event, "event " + e.event_id + " is a " + e.type + ", not a " +
                                                 std::string(E::event_name));
        }
        json payload = upcast(e);
        check_numbers(payload, e);
        try {
            return payload.get<E>();
        } catch (const json::exception& x) {
            throw Error(errc::unknown_event, std::string(E::event_name) + " " + e.event_id + " (schema version " +
                                                 std::to_string(e.schema_version) +
                                                 ") does not decode: " + x.what());
        }
    }

    // E as stored data: its name, current version and payload, with a new id.
    template <DomainEvent E>
    static EventData encode(const E& event, EventMetadata metadata = {}) {
        EventData d;
        d.event_id = IdGenerator().next();
        d.type = std::string(E::event_name);
        d.schema_version = E::event_version;
        d.payload = json(event);
        d.metadata = std::move(metadata);
        if (d.metadata.timestamp == Clock::time_point{}) d.metadata.timestamp = Clock::now();
        return d;
    }

private:
    void add_name(std::string name, int version);
    // Error(errc::unknown_event) for a number no integer field could hold (see decode).
    void check_numbers(const json& payload, const EventData& e) const;

    std::map<std::string, int, std::less<>> current_;
    std::map<std::pair<std::string, int>, Upcaster, std::less<>> upcasters_;
    int max_depth_ = default_max_json_depth;
};

}  // namespace boong
