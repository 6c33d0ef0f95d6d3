// Logging for saga code: every line carries the saga id and step (and the
// correlation id when there is one), as text or, with JsonLinesFormatter, as
// JSON fields.
#pragma once

#include <spdlog/formatter.h>
#include <spdlog/logger.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace boong {

class SagaLogger {
public:
    SagaLogger(std::shared_ptr<spdlog::logger> logger, std::string_view saga_id, std::string_view step,
               std::string_view correlation_id = {})
        : logger_(std::move(logger)), saga_id_(saga_id), step_(step), correlation_id_(correlation_id) {}

    // "[saga=<id> step=<step>] message", or, when the correlation id is not
    // the saga's own id (its default), "[saga=<id> step=<step>
    // correlation=<id>] message": the prefix JsonLinesFormatter reads back.
    template <class... Args>
    void log(spdlog::level::level_enum level, spdlog::format_string_t<Args...> fmt, Args&&... args) const {
        if (!logger_ || !logger_->should_log(level)) return;
        if (correlation_id_.empty() || correlation_id_ == saga_id_) {
            logger_->log(level, "[saga={} step={}] {}", saga_id_, step_, fmt::format(fmt, std::forward<Args>(args)...));
        } else {
            logger_->log(level, "[saga={} step={} correlation={}] {}", saga_id_, step_, correlation_id_,
                         fmt::format(fmt, std::forward<Args>(args)...));
        }
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
    std::string_view correlation_id_;
};

// Formats each log record as one JSON object on a line, for log shippers:
//   {"time":"2026-12-06T22:30:00.123456Z","level":"warn","logger":"orders",
//    "message":"attempt 1 failed (transient): ...","saga_id":"...","step":"charge",
//    "correlation_id":"..."}
// saga_id, step and correlation_id are there when the line came from saga code
// (SagaLogger's prefix, taken off the message); correlation_id is the saga id
// when the saga was given none. Install it with
// logger->set_formatter(std::make_unique<boong::JsonLinesFormatter>()), or
// with "logging": {"format": "json"} in the config (apply_logging).
class JsonLinesFormatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
    std::unique_ptr<spdlog::formatter> clone() const override;
};

}  // namespace boong
