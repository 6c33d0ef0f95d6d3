// Logging for saga code: every line carries the saga id and step.
#pragma once

#include <spdlog/logger.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace boong {

class SagaLogger {
public:
    SagaLogger(std::shared_ptr<spdlog::logger> logger, std::string_view saga_id, std::string_view step)
        : logger_(std::move(logger)), saga_id_(saga_id), step_(step) {}

    template <class... Args>
    void log(spdlog::level::level_enum level, spdlog::format_string_t<Args...> fmt, Args&&... args) const {
        if (!logger_ || !logger_->should_log(level)) return;
        logger_->log(level, "[saga={} step={}] {}", saga_id_, step_, fmt::format(fmt, std::forward<Args>(args)...));
    }
    template <class... Args>
    void debug(spdlog::format_string_t<Args...> fmt, Args&&... args) const {
        log(spdlog::level::debug, fmt, std::forward<Args>(args)...);
    }
    template <class... Args>
    void info(spdlog::format_string_t<Args...> fmt, Args&&... args) const {
        log(spdlog::level::info, fmt, std::forward<Args>(args)...);
    }
    template <class... Args>
    void warn(spdlog::format_string_t<Args...> fmt, Args&&... args) const {
        log(spdlog::level::warn, fmt, std::forward<Args>(args)...);
    }
    template <class... Args>
    void error(spdlog::format_string_t<Args...> fmt, Args&&... args) const {
        log(spdlog::level::err, fmt, std::forward<Args>(args)...);
    }

    spdlog::logger* underlying() const noexcept { return logger_.get(); }

private:
    std::shared_ptr<spdlog::logger> logger_;
    std::string_view saga_id_;
    std::string_view step_;
};

}  // namespace boong
