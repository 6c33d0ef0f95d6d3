#include "time_text.hpp"

#include "exit_status.hpp"

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <ctime>

namespace boong::cli {

namespace {

[[noreturn]] void refuse(std::string_view what, std::string_view text, std::string_view expected) {
    throw CommandError(ExitStatus::usage,
                       std::string(what) + ": expected " + std::string(expected) + ", got '" + std::string(text) + "'");
}

}  // namespace

milliseconds parse_duration(std::string_view text, std::string_view what) {
    constexpr std::string_view expected = "a duration such as 500ms, 30s, 5m, 2h, 1d or 1h30m";
    if (text.empty()) refuse(what, text, expected);
    std::int64_t total = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        if (!std::isdigit(static_cast<unsigned char>(text[i]))) refuse(what, text, expected);
        std::int64_t n = 0;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
            n = n * 10 + (text[i] - '0');
            if (n > 1'000'000'000) refuse(what, text, "a duration under 30 years");
            ++i;
        }
        std::int64_t unit = 0;
        if (text.substr(i, 2) == "ms") {
            unit = 1;
            i += 2;
        } else if (i < text.size()) {
            switch (text[i]) {
                case 's': unit = 1000; break;
                case 'm': unit = 60'000; break;
                case 'h': unit = 3'600'000; break;
                case 'd': unit = 86'400'000; break;
                default: refuse(what, text, expected);
            }
            ++i;
        } else {
            refuse(what, text, expected);  // "30": seconds or milliseconds? Say which.
        }
        total += n * unit;
    }
    return milliseconds(total);
}

Clock::time_point parse_time(std::string_view text, std::string_view what, Clock::time_point now) {
    if (text == "now") return now;
    if (!text.empty() && text[0] == '-') {
        return now - parse_duration(text.substr(1), what);
    }
    try {
        // The library reads UTC ("Z"); an operator may type their own offset,
        // or a date alone (midnight UTC).
        if (text.size() == 10) return parse_timestamp(std::string(text) + "T00:00:00Z");
        if (text.size() > 6 && (text[text.size() - 6] == '+' || text[text.size() - 6] == '-') &&
            text[text.size() - 3] == ':') {
            const std::string_view zone = text.substr(text.size() - 6);
            const auto digit = [&](std::size_t i) {
                if (!std::isdigit(static_cast<unsigned char>(zone[i]))) throw Error(errc::invalid_argument, "offset");
                return zone[i] - '0';
            };
            const milliseconds offset((digit(1) * 600 + digit(2) * 60 + digit(4) * 10 + digit(5)) * 60'000LL);
            const auto utc = parse_timestamp(std::string(text.substr(0, text.size() - 6)) + "Z");
            return zone[0] == '+' ? utc - offset : utc + offset;
        }
        return parse_timestamp(text);
    } catch (const Error&) {
        refuse(what, text, "an RFC 3339 time (2024-05-01T12:00:00Z), 'now', or a time before now such as -1h");
    }
}

std::string format_duration(milliseconds d) {
    const std::int64_t ms = d.count();
    if (ms < 0) return "-" + format_duration(milliseconds(-ms));
    char buf[32];
    if (ms < 1000) {
        std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ms));
    } else if (ms < 60'000) {
        std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
    } else if (ms < 3'600'000) {
        std::snprintf(buf, sizeof buf, "%lldm%llds", static_cast<long long>(ms / 60'000),
                      static_cast<long long>(ms % 60'000 / 1000));
    } else if (ms < 86'400'000) {
        std::snprintf(buf, sizeof buf, "%lldh%lldm", static_cast<long long>(ms / 3'600'000),
                      static_cast<long long>(ms % 3'600'000 / 60'000));
    } else {
        std::snprintf(buf, sizeof buf, "%lldd%lldh", static_cast<long long>(ms / 86'400'000),
                      static_cast<long long>(ms % 86'400'000 / 3'600'000));
    }
    return buf;
}

std::string format_time(Clock::time_point t) {
    const std::time_t secs = Clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm);
    return buf;
}

}  // namespace boong::cli
