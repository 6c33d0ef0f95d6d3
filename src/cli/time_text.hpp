// Durations and times as an operator types and reads them: "30s", "5m",
// "2h"; "2024-05-01T12:00:00Z" or "-1h".
#pragma once

#include <boong/event.hpp>
#include <boong/policy.hpp>

#include <string>
#include <string_view>

namespace boong::cli {

// "500ms", "30s", "5m", "2h", "1d", or several of them ("1h30m"). A bare
// number is refused (seconds or milliseconds?). CommandError(usage) naming
// `what` otherwise.
milliseconds parse_duration(std::string_view text, std::string_view what);

// An RFC 3339 time ("2024-05-01T12:00:00Z", "...+02:00"), "now", or a time
// relative to `now`: "-1h", "-30m" (a duration before now). CommandError(usage)
// naming `what` otherwise.
Clock::time_point parse_time(std::string_view text, std::string_view what, Clock::time_point now);

// A duration for people, two units at most: "350ms", "4.2s", "3m12s", "2h5m", "3d4h".
std::string format_duration(milliseconds d);

// A time for people: "2024-05-01 12:00:05Z" (UTC, seconds).
std::string format_time(Clock::time_point t);

}  // namespace boong::cli
