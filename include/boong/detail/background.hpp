// Long-running loops of a component (an orchestrator's lease renewal, a
// relay's publishing), on one strand, that stop together: stop() wakes every
// sleeping loop and waits until each has returned.
#pragma once

#include <boong/detail/saga_execution.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/logger.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace boong::detail {

class Background : public std::enable_shared_from_this<Background> {
public:
    Background(const asio::any_io_executor& ex, std::shared_ptr<spdlog::logger> logger)
        : ex_(make_saga_strand(ex)), logger_(std::move(logger)) {}

    // Every loop runs here: state they share needs no lock.
    const asio::any_io_executor& get_executor() const noexcept { return ex_; }
    bool stopping() const noexcept { return stopping_; }

    // Starts `loop` on the strand. An exception escaping it is logged (a loop
    // should handle its own errors; this is the last resort).
    void spawn(std::string name, asio::awaitable<void> loop) {
        running_.fetch_add(1);
        asio::co_spawn(ex_, std::move(loop),
                       [self = shared_from_this(), name = std::move(name)](std::exception_ptr e) {
                           if (e) self->logger_->error("{}: stopped by an unexpected error: {}", name, describe(e));
                           if (self->running_.fetch_sub(1) == 1 && self->all_done_) self->all_done_->cancel();
                       });
    }

    // Waits `d`, or less when stop() is called. Runs on the strand.
    asio::awaitable<void> sleep(std::chrono::steady_clock::duration d) {
        if (stopping_) co_return;
        asio::steady_timer timer(ex_, d);
        sleepers_.push_back(&timer);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        sleepers_.erase(std::find(sleepers_.begin(), sleepers_.end(), &timer));
    }

    // Asks every loop to stop and waits until all have returned.
    asio::awaitable<void> stop() {
        // A named operation, not a lambda: g++ 12 destroys a closure
        // temporary inside a co_await expression twice.
        auto op = asio::co_spawn(ex_, stop_on_strand(shared_from_this()), asio::use_awaitable);
        co_await std::move(op);
    }

private:
    static asio::awaitable<void> stop_on_strand(std::shared_ptr<Background> self) {
        self->stopping_ = true;
        for (auto* t : self->sleepers_) t->cancel();
        while (self->running_ > 0) {
            if (!self->all_done_) self->all_done_.emplace(self->ex_, asio::steady_timer::time_point::max());
            co_await self->all_done_->async_wait(asio::as_tuple(asio::use_awaitable));
        }
    }

    asio::any_io_executor ex_;
    std::shared_ptr<spdlog::logger> logger_;
    bool stopping_ = false;
    std::atomic<std::size_t> running_{0};  // incremented by spawn (any thread), decremented on the strand
    std::vector<asio::steady_timer*> sleepers_;
    std::optional<asio::steady_timer> all_done_;
};

}  // namespace boong::detail
