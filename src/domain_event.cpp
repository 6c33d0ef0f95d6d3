#include <boong/domain_event.hpp>

#include <vector>

namespace boong {

void EventRegistry::add_name(std::string name, int version) {
    if (name.empty()) throw Error(errc::invalid_config, "event registry: an event name is empty");
    if (version < 1) {
        throw Error(errc::invalid_config, "event registry: " + name + " has version " + std::to_string(version) +
                                              "; versions start at 1");
    }
    auto [it, added] = current_.emplace(name, version);
    if (!added && it->second != version) {
        throw Error(errc::invalid_config, "event registry: " + name + " registered at versions " +
                                              std::to_string(it->second) + " and " + std::to_string(version));
    }
}

void EventRegistry::add_upcaster(std::string_view name, int from_version, Upcaster upcaster) {
    const int current = current_version(name);
    if (current == 0) {
        throw Error(errc::invalid_config,
                    "event registry: an upcaster for " + std::string(name) + ", which is not registered (add it first)");
    }
    if (from_version < 1 || from_version >= current) {
        throw Error(errc::invalid_config, "event registry: an upcaster for " + std::string(name) + " from version " +
                                              std::to_string(from_version) + ", but its versions are 1.." +
                                              std::to_string(current));
    }
    if (!upcaster) throw Error(errc::invalid_config, "event registry: an empty upcaster for " + std::string(name));
    if (!upcasters_.emplace(std::make_pair(std::string(name), from_version), std::move(upcaster)).second) {
        throw Error(errc::invalid_config, "event registry: two upcasters for " + std::string(name) + " from version " +
                                              std::to_string(from_version));
    }
}

void EventRegistry::set_max_json_depth(int depth) {
    if (depth < 1 || depth > 10000)
        throw Error(errc::invalid_config, "event registry: max JSON depth " + std::to_string(depth) +
                                              " is not in 1..10000");
    max_depth_ = depth;
}

int EventRegistry::current_version(std::string_view name) const {
    const auto it = current_.find(name);
    return it == current_.end() ? 0 : it->second;
}

json EventRegistry::upcast(const EventData& e) const {
    const int current = current_version(e.type);
    const std::string what = e.type + " " + e.event_id + " (schema version " + std::to_string(e.schema_version) + ")";
    if (current == 0) throw Error(errc::unknown_event, what + ": no such event is known to this service");
    if (e.schema_version > current) {
        throw Error(errc::unknown_event, what + ": newer than this service knows (version " +
                                             std::to_string(current) + "); upgrade it");
    }
    if (e.schema_version < 1) throw Error(errc::unknown_event, what + ": schema versions start at 1");
    // Before the copy below, and anything else that walks it recursively.
    if (json_depth_exceeds(e.payload, max_depth_)) {
        throw Error(errc::unknown_event,
                    what + ": its payload nests deeper than " + std::to_string(max_depth_) + " levels");
    }
    json payload = e.payload;
    for (int v = e.schema_version; v < current; ++v) {
        const auto it = upcasters_.find(std::make_pair(e.type, v));
        if (it == upcasters_.end()) {
            throw Error(errc::unknown_event, what + ": no upcaster from version " + std::to_string(v) + " to " +
                                                 std::to_string(v + 1));
        }
        try {
            payload = it->second(std::move(payload));
        } catch (const std::exception& x) {
            throw Error(errc::unknown_event, what + ": upcasting from version " + std::to_string(v) +
                                                 " failed: " + x.what());
        }
    }
    return payload;
}

void EventRegistry::check_numbers(const json& payload, const EventData& e) const {
    // Iterative: the depth is bounded, but a wide payload needs no recursion either.
    std::vector<const json*> todo{&payload};
    while (!todo.empty()) {
        const json* j = todo.back();
        todo.pop_back();
        if (j->is_number_float()) {
            const double x = j->get<double>();
            if (!(x > -9223372036854775808.0 && x < 9223372036854775808.0)) {
                throw Error(errc::unknown_event, e.type + " " + e.event_id + " (schema version " +
                                                     std::to_string(e.schema_version) + "): it holds the number " +
                                                     j->dump() + ", beyond what an event field can hold (2^63)");
            }
        } else if (j->is_array()) {
            for (const auto& v : j->get_ref<const json::array_t&>()) todo.push_back(&v);
        } else if (j->is_object()) {
            for (const auto& [k, v] : j->get_ref<const json::object_t&>()) todo.push_back(&v);
        }
    }
}

}  // namespace boong
