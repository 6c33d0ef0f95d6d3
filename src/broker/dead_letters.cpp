#include "broker/dead_letters.hpp"

namespace boong::detail {

json dead_letter_info(const std::string& source_topic, const std::string& source_message_id,
                      const std::string& group, const std::string& reason, int delivery_count, Clock::time_point at) {
    return json{{"source_topic", source_topic},
                {"source_message_id", source_message_id},
                {"group", group},
                {"reason", reason},
                {"delivery_count", delivery_count},
                {"at", format_timestamp(at)}};
}

DeadLetter dead_letter_from_info(const json& info) noexcept {
    DeadLetter d;
    if (!info.is_object()) return d;
    auto text = [&](const char* key, std::string& to) {
        const auto it = info.find(key);
        if (it != info.end() && it->is_string()) to = it->get<std::string>();
    };
    try {
        text("source_topic", d.source_topic);
        text("source_message_id", d.source_message_id);
        text("group", d.group);
        text("reason", d.reason);
        if (const auto it = info.find("delivery_count"); it != info.end() && it->is_number_integer())
            d.delivery_count = it->get<int>();
        if (const auto it = info.find("at"); it != info.end() && it->is_string())
            d.at = parse_timestamp(it->get<std::string>());
    } catch (...) {
        // A malformed record still lists, with what could be read.
    }
    return d;
}

void validate_dead_letter_query(const std::string& topic, std::size_t max_count) {
    if (topic.empty()) throw Error(errc::invalid_argument, "dead letters: topic is empty");
    if (max_count == 0) throw Error(errc::invalid_argument, "dead letters of '" + topic + "': max_count is 0");
}

void validate_dead_letter_selection(const std::string& topic, const DeadLetterSelection& selection) {
    if (topic.empty()) throw Error(errc::invalid_argument, "dead letters: topic is empty");
    const int ways = (selection.ids.empty() ? 0 : 1) + (selection.all ? 1 : 0) + (selection.before ? 1 : 0);
    if (ways != 1)
        throw Error(errc::invalid_argument, "dead letters of '" + topic +
                                                "': select them one way: ids, all, or before a time (got " +
                                                std::to_string(ways) + " ways)");
}

}  // namespace boong::detail
