// Building the small JSON objects a saga records on every transition.
#pragma once

#include <boong/event.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace boong::detail {

// Builds a JSON object from key/value pairs in place. nlohmann's
// initializer-list constructor copies every value and allocates to destroy its
// temporaries; events are recorded on every transition, so this matters.
// Each pair is placed with the end as hint: pairs given in key order (as the
// hot transitions do) are placed without a search; others still land where
// they belong (an object is a sorted map either way).
inline void put(json::object_t&) {}
template <class V, class... Rest>
void put(json::object_t& o, std::string_view key, V&& value, Rest&&... rest) {
    o.emplace_hint(o.end(), std::string(key), json(std::forward<V>(value)));
    put(o, std::forward<Rest>(rest)...);
}
template <class... KV>
json object(KV&&... kv) {
    json j(json::value_t::object);
    put(j.get_ref<json::object_t&>(), std::forward<KV>(kv)...);
    return j;
}

}  // namespace boong::detail
