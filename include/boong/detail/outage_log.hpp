// How a background loop reports a dependency that keeps failing: the first
// failure as a warning, then one warning every report interval while it lasts
// (the others at debug), and one line when it answers again. A long outage
// must not flood the log (one line per retry, for hours), nor go unseen.
#pragma once

#include <spdlog/common.h>

#include <chrono>
#include <optional>

namespace boong::detail {

class OutageLog {
public:
    using clock = std::chrono::steady_clock;

    explicit OutageLog(clock::duration interval = std::chrono::seconds(30)) noexcept : interval_(interval) {}

    // The level to log failure at `now` with.
    spdlog::level::level_enum failure(clock::time_point now) noexcept {
        if (failures_++ == 0) {
            since_ = now;
            next_report_ = now + interval_;
            return spdlog::level::warn;
        }
        if (now >= next_report_) {
            next_report_ = now + interval_;
            return spdlog::level::warn;
        }
        return spdlog::level::debug;
    }

    // A success at `now`: how long the failures lasted, when there were any.
    std::optional<clock::duration> success(clock::time_point now) noexcept {
        if (failures_ == 0) return std::nullopt;
        failures_ = 0;
        return now - since_;
    }

    int failures() const noexcept { return failures_; }
    // Seconds since the first failure in a row (0 when none).
    long long seconds(clock::time_point now) const noexcept {
        return failures_ == 0 ? 0 : std::chrono::duration_cast<std::chrono::seconds>(now - since_).count();
    }

private:
    clock::duration interval_;
    int failures_ = 0;
    clock::time_point since_{};
    clock::time_point next_report_{};
};

}  // namespace boong::detail
