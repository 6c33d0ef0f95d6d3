// The consumer every broker runs: one loop that fetches, runs handlers,
// settles their messages, waits out outages and stops gracefully, written
// once. A backend supplies only a MessageSource: how to fetch, acknowledge,
// redeliver, dead-letter and hold messages on its server. The decisions are
// the pure functions of src/broker/delivery_policy.hpp. Private to the
// Boong libraries.
#pragma once

#include <boong/broker.hpp>
#include "broker/delivery_policy.hpp"
#include <boong/detail/erased_handler.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <spdlog/common.h>

#include <chrono>
#include <cstddef>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace boong::detail {

namespace asio = boost::asio;

// t + d, clamped so that a huge duration (a visibility timeout of a year)
// means "never" rather than overflowing.
inline std::chrono::steady_clock::time_point add_saturated(std::chrono::steady_clock::time_point t,
                                                           std::chrono::milliseconds d) {
    const auto room =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::time_point::max() - t);
    return d >= room ? std::chrono::steady_clock::time_point::max() : t + d;
}

// What a broker backend does for its consumers. Every call runs on the
// consumer's strand (the one the source was made with), one at a time.
class MessageSource {
public:
    virtual ~MessageSource() = default;

    // "redis broker", "memory broker": the start of every log line.
    virtual const char* broker_name() const noexcept = 0;

    // Up to `max` (>= 1) deliveries: reclaimed ones (pending longer than the
    // visibility timeout) first, then new ones. When there is nothing, waits
    // a while (until something arrives, wake() or close() is called, or the
    // backend's own bound, at most a few seconds) and may return empty.
    // Entries that must not reach a handler (undecodable, or past
    // max_deliveries when reclaimed: see detail::reclaim) are dead-lettered
    // here. Throws an Error with an is_unavailable code when the broker
    // cannot be reached.
    virtual asio::awaitable<std::vector<Delivery>> fetch(std::size_t max) = 0;
    // Ends a wait in fetch() early.
    virtual void wake() = 0;

    virtual asio::awaitable<void> ack(const Delivery& d) = 0;
    // The handler failed (for the message's own reason): leave the message
    // pending, to be delivered again after the visibility timeout.
    virtual asio::awaitable<void> redeliver(const Delivery& d, const std::string& why) = 0;
    virtual asio::awaitable<void> dead_letter(const Delivery& d, const std::string& reason) = 0;
    // Keeps messages this consumer holds through an outage from being
    // reclaimed by others, without counting a delivery. Returns the ids it
    // still holds (another consumer may have taken some meanwhile).
    virtual asio::awaitable<std::vector<std::string>> hold(std::vector<std::string> message_ids) = 0;

    // How the consumer's group stands on the broker now (pending, lag,
    // oldest pending), for Observer::consumer_backlog; nullopt while the
    // broker does not know the group yet.
    virtual asio::awaitable<std::optional<ConsumerGroupStatus>> backlog() = 0;

    // Stops reading now (a blocked read ends); what was fetched stays pending.
    virtual void close() = 0;
};

// The status of `group` among `groups` (nullopt: not there).
std::optional<ConsumerGroupStatus> status_of(std::vector<ConsumerGroupStatus> groups, const std::string& group);

// One running async_consume, started by run_consumer_loop. Its loop, its handlers and its source share one strand, so none of
// its members needs a lock.
class ConsumerLoop : public std::enable_shared_from_this<ConsumerLoop> {
public:
    using executor_type = asio::strand<asio::any_io_executor>;

    ConsumerLoop(executor_type strand, ConsumerOptions options, MessageHandler handler,
                 std::shared_ptr<MessageSource> source);

    const executor_type& strand() const noexcept { return strand_; }
    const ConsumerOptions& options() const noexcept { return options_; }

    // The caller's cancellation, relayed onto the strand: a graceful stop.
    asio::cancellation_signal& stop_signal() noexcept { return stop_signal_; }
    void request_stop(asio::cancellation_type type);
    void finished() noexcept { finished_ = true; }

    // The consumer's life: validate, loop until stopped, drain. `self` keeps
    // it alive while it runs.
    static asio::awaitable<void> run(std::shared_ptr<ConsumerLoop> self);

private:
    struct InFlight {
        asio::cancellation_signal signal;  // terminal cancellation when the shutdown grace runs out
        bool cancelled = false;
        bool done = false;
        bool probe = false;  // tried while the outage gate is open
    };
    using Clock = std::chrono::steady_clock;

    asio::awaitable<void> loop();
    // One turn while a dependency is unavailable: keep what is held, try one
    // of it when a probe is due, report now and then; then wait.
    asio::awaitable<void> ride_out();
    void start(Delivery d, bool probe = false);
    asio::awaitable<void> handle(Delivery d, std::list<InFlight>::iterator flight);
    void note_outcome(const Delivery& d, const HandlerOutcome& outcome, bool probe);
    // Tells the observer when fetching stops for an outage, and when it resumes.
    void note_paused(bool paused);
    void resume_held();
    asio::awaitable<void> drain();
    // Every backlog_interval until stopped: asks the source how far the group
    // trails and tells the observer. Runs beside the loop, on the strand.
    asio::awaitable<void> sample_backlog();
    void note_trimmed(std::size_t trimmed);
    asio::awaitable<void> wait(Clock::time_point until);
    std::chrono::milliseconds hold_interval() const;
    void wake();

    template <class... Args>
    void log(spdlog::level::level_enum level, fmt::format_string<Args...> format, Args&&... args) const;

    executor_type strand_;
    asio::steady_timer timer_;  // the loop's single wait: a free slot, a backoff, a probe, the grace deadline
    asio::steady_timer sample_timer_;  // sample_backlog's wait
    ConsumerOptions options_;
    MessageHandler handler_;
    std::shared_ptr<MessageSource> source_;
    std::string who_;  // "consumer 'c1' of 'orders' (group 'billing')", for logs
    std::list<InFlight> inflight_;  // a list: signals must not move while a handler runs
    std::deque<Delivery> held_;     // kept through an outage, oldest first
    OutageGate gate_;
    Clock::time_point next_hold_{};    // when held messages are next kept from being reclaimed
    Clock::time_point next_report_{};  // when a long outage is next reported
    asio::cancellation_signal stop_signal_;
    bool stopping_ = false;
    bool finished_ = false;
    bool paused_ = false;  // as last told to the observer
    std::optional<std::size_t> trimmed_seen_;  // the group's trimmed total at the last sample
    bool sampling_ = false;  // sample_backlog runs: the consumer ends after it
};

// Runs `loop` on its strand until it stops, then completes `completion`.
// Cancellation through the completion's slot (terminal) is a graceful stop;
// a second one cuts the shutdown grace short.
void run_consumer_loop(std::shared_ptr<ConsumerLoop> loop, ErasedHandler<void> completion);

// What every broker's async_consume does: a new strand of `ex`, the backend's
// Source made with (state, strand, options), and the loop run on them.
template <class Source, class State>
void start_consumer(const asio::any_io_executor& ex, std::shared_ptr<State> state, ConsumerOptions options,
                    MessageHandler handler, ErasedHandler<void> completion) {
    auto strand = asio::make_strand(ex);
    auto source = std::make_shared<Source>(std::move(state), strand, options);
    run_consumer_loop(
        std::make_shared<ConsumerLoop>(strand, std::move(options), std::move(handler), std::move(source)),
        std::move(completion));
}

}  // namespace boong::detail
