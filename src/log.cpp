#include <boong/event.hpp>
#include <boong/log.hpp>

#include <spdlog/details/log_msg.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace boong {

namespace {

struct SagaFields {
    std::string_view saga_id, step, correlation_id, message;
};

// SagaLogger's prefix, "[saga=<id> step=<step>( correlation=<id>)?] ", read
// back; nullopt for a line without it.
std::optional<SagaFields> saga_fields(std::string_view text) {
    constexpr std::string_view open = "[saga=", step_key = " step=", correlation_key = " correlation=", close = "] ";
    if (!text.starts_with(open)) return std::nullopt;
    const auto step_at = text.find(step_key, open.size());
    if (step_at == std::string_view::npos) return std::nullopt;
    const auto close_at = text.find(close, step_at);
    if (close_at == std::string_view::npos) return std::nullopt;
    SagaFields f;
    f.saga_id = text.substr(open.size(), step_at - open.size());
    std::string_view rest = text.substr(step_at + step_key.size(), close_at - step_at - step_key.size());
    if (const auto c = rest.find(correlation_key); c != std::string_view::npos) {
        f.correlation_id = rest.substr(c + correlation_key.size());
        rest = rest.substr(0, c);
    }
    f.step = rest;
    f.message = text.substr(close_at + close.size());
    return f;
}

}  // namespace

void JsonLinesFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
    const std::string_view text(msg.payload.data(), msg.payload.size());
    json line{{"time", format_timestamp(std::chrono::time_point_cast<Clock::duration>(msg.time))},
              {"level", std::string_view(spdlog::level::to_string_view(msg.level).data(),
                                         spdlog::level::to_string_view(msg.level).size())},
              {"logger", std::string_view(msg.logger_name.data(), msg.logger_name.size())}};
    if (const auto f = saga_fields(text)) {
        line["message"] = f->message;
        line["saga_id"] = f->saga_id;
        if (!f->step.empty()) line["step"] = f->step;
        line["correlation_id"] = f->correlation_id.empty() ? f->saga_id : f->correlation_id;
    } else {
        line["message"] = text;
    }
    // A message with invalid UTF-8 is written with replacement characters, never dropped.
    const std::string out = line.dump(-1, ' ', false, json::error_handler_t::replace);
    dest.append(out.data(), out.data() + out.size());
    dest.push_back('\n');
}

std::unique_ptr<spdlog::formatter> JsonLinesFormatter::clone() const { return std::make_unique<JsonLinesFormatter>(); }

}  // namespace boong
