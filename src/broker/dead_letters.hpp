// What every broker's dead letters share: the "dead_letter" record they carry,
// and the checks of the dead-letter operations (list, redrive, drop). Private
// to the Boong libraries.
#pragma once

#include <boong/broker.hpp>

#include <cstddef>
#include <string>

namespace boong::detail {

// The record a dead letter carries ("dead_letter" in metadata.extra, and in
// the Redis entry's own field): {"source_topic", "source_message_id",
// "group", "reason", "delivery_count", "at"}.
json dead_letter_info(const std::string& source_topic, const std::string& source_message_id,
                      const std::string& group, const std::string& reason, int delivery_count, Clock::time_point at);

// A DeadLetter with the record's fields filled in (what it lacks stays
// empty: records written by older code have no "at"). Never throws.
DeadLetter dead_letter_from_info(const json& info) noexcept;

// Error(errc::invalid_argument) for an empty topic, a max_count of 0, or a
// selection that names nothing or more than one way.
void validate_dead_letter_query(const std::string& topic, std::size_t max_count);
void validate_dead_letter_selection(const std::string& topic, const DeadLetterSelection& selection);

}  // namespace boong::detail
