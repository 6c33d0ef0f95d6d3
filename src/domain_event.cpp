#include <boong/domain_event.hpp>

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

}  // namespace boong
