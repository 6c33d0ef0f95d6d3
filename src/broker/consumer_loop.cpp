#include "broker/consumer_loop.hpp"

#include <boong/detail/validate.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>

namespace boong::detail {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How often an outage is reported while it lasts (its start and end always are).
constexpr auto kReportInterval = std::chrono::seconds(30);

// The outcome label of a handled message (see Observer).
std::string_view handled_outcome(Settle s) noexcept {
    switch (s) {
        case Settle::ack: return "handled";
        case Settle::redeliver: return "failed";
        case Settle::dead_letter: return "dead_lettered";
        case Settle::hold: return "unavailable";
        case Settle::leave_pending: break;
    }
    return "cancelled";
}

long long seconds_since(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - t).count();
}

}  // namespace

ConsumerLoop::ConsumerLoop(executor_type strand, ConsumerOptions options, MessageHandler handler,
                           std::shared_ptr<MessageSource> source)
    : strand_(std::move(strand)),
      timer_(strand_),
      sample_timer_(strand_),
      options_(std::move(options)),
      handler_(std::move(handler)),
      source_(std::move(source)),
      who_("consumer '" + options_.consumer + "' of '" + options_.topic + "' (group '" + options_.group + "')"),
      gate_(options_.settings.outage_backoff, std::hash<std::string>{}(options_.consumer + options_.topic)) {}

template <class... Args>
void ConsumerLoop::log(spdlog::level::level_enum level, fmt::format_string<Args...> format, Args&&... args) const {
    spdlog::log(level, "{}: {}: {}", source_->broker_name(), who_, fmt::format(format, std::forward<Args>(args)...));
}

// How often held messages are kept from being reclaimed: three times per
// visibility timeout, so one late hold does not lose them.
std::chrono::milliseconds ConsumerLoop::hold_interval() const {
    return std::max(milliseconds(10), options_.settings.visibility_timeout / 3);
}

std::optional<ConsumerGroupStatus> status_of(std::vector<ConsumerGroupStatus> groups, const std::string& group) {
    for (auto& g : groups) {
        if (g.group == group) return std::move(g);
    }
    return std::nullopt;
}

void ConsumerLoop::request_stop(asio::cancellation_type type) {
    if (finished_) return;
    stopping_ = true;
    source_->close();
    wake();
    sample_timer_.cancel();
    stop_signal_.emit(type);
}

void ConsumerLoop::wake() {
    timer_.cancel();
    source_->wake();
}

asio::awaitable<void> ConsumerLoop::wait(Clock::time_point until) {
    timer_.expires_at(until);
    boost::system::error_code ec;  // cancelled by wake() or by the stop request
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<void> ConsumerLoop::run(std::shared_ptr<ConsumerLoop> self) {
    auto& c = *self;
    validate_consumer_options(c.options_, c.handler_);
    // A stop request (terminal cancellation through stop_signal_) must not
    // throw out of the loop: the loop checks for it.
    co_await asio::this_coro::throw_if_cancelled(false);
    // Sampled with or without an observer: a sample is also what finds (and
    // logs) messages trimmed before the group read them.
    if (c.options_.settings.backlog_interval > milliseconds::zero()) {
        c.sampling_ = true;
        asio::co_spawn(c.strand_, c.sample_backlog(), [self](std::exception_ptr e) {
            self->sampling_ = false;
            if (e) self->log(spdlog::level::err, "sampling the backlog failed: {}", describe(e));
            self->wake();
        });
    }
    std::exception_ptr failure;
    try {
        co_await c.loop();
    } catch (...) {
        failure = std::current_exception();
    }
    c.stopping_ = true;
    c.source_->close();
    c.sample_timer_.cancel();
    co_await c.drain();
    // Nothing of the consumer outlives its completion: wait for a sample
    // under way (one query; a finishing sampler wakes us).
    while (c.sampling_) co_await c.wait(Clock::time_point::max());
    c.note_paused(false);  // a stopped consumer is not paused
    if (failure) std::rethrow_exception(failure);
}

asio::awaitable<void> ConsumerLoop::loop() {
    int failures = 0;  // fetches in a row that found the broker unreachable
    Clock::time_point unreachable_since{};
    while (!stopping_) {
        std::string unreachable;  // why the last fetch failed (no co_await inside a catch)
        try {
            if (gate_.open()) {
                co_await ride_out();
                continue;
            }
            const std::size_t busy = inflight_.size() + held_.size();
            if (busy >= options_.settings.concurrency) {
                co_await wait(Clock::time_point::max());  // a finishing handler wakes us
                continue;
            }
            auto batch = co_await source_->fetch(options_.settings.concurrency - busy);
            if (failures > 0) {
                log(spdlog::level::info, "the broker answers again after {} s", seconds_since(unreachable_since));
                failures = 0;
                note_paused(gate_.open());
            }
            for (auto& d : batch) {
                // Fetched while stopping: left pending. Fetched while a
                // handler found a dependency gone: held, not handled.
                if (stopping_) break;
                if (d.delivery_count > 1)
                    observe(options_.settings.observer, &Observer::message_redelivered, options_.topic,
                            options_.group);
                if (gate_.open()) {
                    held_.push_back(std::move(d));
                } else {
                    start(std::move(d));
                }
            }
            continue;
        } catch (const Error& e) {
            if (!stopping_ && !is_unavailable(e.code())) throw;
            unreachable = e.what();
        }
        if (stopping_) break;
        if (failures++ == 0) {
            unreachable_since = Clock::now();
            next_report_ = unreachable_since + kReportInterval;
            log(spdlog::level::warn, "{}; fetching paused, retrying with backoff", unreachable);
            note_paused(true);
        } else if (Clock::now() >= next_report_) {
            next_report_ = Clock::now() + kReportInterval;
            log(spdlog::level::warn, "the broker is still unreachable after {} s: {}", seconds_since(unreachable_since),
                unreachable);
        } else {
            log(spdlog::level::debug, "{}", unreachable);
        }
        const auto delay = backoff_delay(options_.settings.outage_backoff, failures, std::hash<std::string>{}(who_));
        if (!stopping_) co_await wait(Clock::now() + delay);
    }
}

asio::awaitable<void> ConsumerLoop::ride_out() {
    auto now = Clock::now();
    if (!gate_.probing() && held_.empty()) {
        // Nothing left to try (others took what we held): fetch again, which
        // finds out as well as a probe would.
        gate_.answered();
        note_paused(false);
        co_return;
    }
    if (gate_.probe_due(now) && !held_.empty()) {
        gate_.probe_started();
        Delivery d = std::move(held_.front());
        held_.pop_front();
        start(std::move(d), true);
    }
    if (now >= next_hold_ && !held_.empty()) {
        std::vector<std::string> ids;
        ids.reserve(held_.size());
        for (const auto& d : held_) ids.push_back(d.message_id);
        std::sort(ids.begin(), ids.end());
        try {
            auto kept = co_await source_->hold(ids);
            std::sort(kept.begin(), kept.end());
            // held_ may have changed meanwhile (a straggler held, a probe
            // taken out): drop only what was asked for and not kept.
            const auto before = held_.size();
            std::erase_if(held_, [&](const Delivery& d) {
                return std::binary_search(ids.begin(), ids.end(), d.message_id) &&
                       !std::binary_search(kept.begin(), kept.end(), d.message_id);
            });
            if (held_.size() < before)
                log(spdlog::level::info, "{} held messages were taken over by other consumers",
                    before - held_.size());
        } catch (const std::exception& e) {
            // The broker is down too: nobody can take them from us meanwhile.
            log(spdlog::level::debug, "keeping held messages failed: {}", e.what());
        }
        now = Clock::now();
        next_hold_ = add_saturated(now, hold_interval());
    }
    if (now >= next_report_) {
        next_report_ = now + kReportInterval;
        log(spdlog::level::warn, "a dependency is still unavailable after {} s; {} messages held, next try in {} ms",
            seconds_since(gate_.since()), held_.size() + (gate_.probing() ? 1 : 0),
            std::max<long long>(0, std::chrono::duration_cast<milliseconds>(gate_.next_probe() - now).count()));
    }
    if (stopping_ || !gate_.open()) co_return;
    auto until = held_.empty() ? Clock::time_point::max() : next_hold_;
    if (!gate_.probing()) until = std::min(until, gate_.next_probe());
    until = std::min(until, next_report_);
    co_await wait(until);
}

void ConsumerLoop::start(Delivery d, bool probe) {
    auto it = inflight_.emplace(inflight_.end());
    it->probe = probe;
    asio::co_spawn(strand_, handle(std::move(d), it),
                   asio::bind_cancellation_slot(it->signal.slot(), [self = shared_from_this(),
                                                                    it](std::exception_ptr e) {
                       it->done = true;
                       if (e) self->log(spdlog::level::err, "settling a message failed: {}", describe(e));
                       // The finished coroutine's cancellation state still lives in
                       // `signal`: free it only after co_spawn is done with it.
                       asio::post(self->strand_, [self, it] {
                           self->inflight_.erase(it);
                           self->wake();
                       });
                   }));
}

asio::awaitable<void> ConsumerLoop::handle(Delivery d, std::list<InFlight>::iterator flight) {
    std::exception_ptr error;
    const auto began = Clock::now();
    try {
        co_await handler_(d);
    } catch (...) {
        error = std::current_exception();
    }
    const auto took = Clock::now() - began;
    // Settling must not be cut short by the cancellation that may have ended the handler.
    co_await asio::this_coro::reset_cancellation_state();
    const auto outcome = classify_handler(error, flight->cancelled);
    note_outcome(d, outcome, flight->probe);
    const Settle settlement = settle(outcome.result, d.delivery_count, options_.settings.max_deliveries);
    if (const auto& observer = options_.settings.observer; observer && settlement != Settle::leave_pending) {
        observe(observer, &Observer::message_handled, options_.topic, options_.group, handled_outcome(settlement),
                took);
        if (settlement == Settle::dead_letter)
            observe(observer, &Observer::message_dead_lettered, options_.topic, options_.group,
                    outcome.result == HandlerResult::rejected ? "rejected" : "max_deliveries");
    }
    switch (settlement) {
        case Settle::ack: co_await source_->ack(d); break;
        case Settle::redeliver:
            log(spdlog::level::warn, "handler failed on message {} (delivery {} of at most {}): {}", d.message_id,
                d.delivery_count, options_.settings.max_deliveries, outcome.what);
            co_await source_->redeliver(d, outcome.what);
            break;
        case Settle::dead_letter: co_await source_->dead_letter(d, outcome.what); break;
        case Settle::hold:
            if (stopping_) {
                log(spdlog::level::info, "message {} stays pending for another consumer (stopping): {}", d.message_id,
                    outcome.what);
            } else if (flight->probe) {
                held_.push_front(std::move(d));  // still the oldest
            } else {
                held_.push_back(std::move(d));
            }
            break;
        case Settle::leave_pending:
            log(spdlog::level::info, "handler of message {} cancelled on stop; it stays pending", d.message_id);
            break;
    }
}

void ConsumerLoop::note_outcome(const Delivery& d, const HandlerOutcome& outcome, bool probe) {
    switch (outcome.result) {
        case HandlerResult::unavailable:
            if (gate_.unavailable(Clock::now(), probe)) {
                next_hold_ = add_saturated(Clock::now(), hold_interval());
                next_report_ = Clock::now() + kReportInterval;
                log(spdlog::level::warn,
                    "a dependency is unavailable ({}); fetching paused, messages held (not counted as deliveries) "
                    "and retried with backoff",
                    outcome.what);
                note_paused(true);
                wake();  // leave a fetch's wait: the loop now rides the outage out
            } else {
                log(spdlog::level::debug, "message {}: still unavailable: {}", d.message_id, outcome.what);
            }
            break;
        case HandlerResult::abandoned:
            if (probe) gate_.probe_inconclusive(Clock::now());
            break;
        case HandlerResult::succeeded:
        case HandlerResult::failed:
        case HandlerResult::rejected: {
            const auto since = gate_.since();
            if (gate_.answered()) {
                log(spdlog::level::info, "dependencies answer again after {} s; resuming {} held messages and fetching",
                    seconds_since(since), held_.size());
                note_paused(false);
                resume_held();
            }
            break;
        }
    }
}

asio::awaitable<void> ConsumerLoop::sample_backlog() {
    const auto& observer = options_.settings.observer;
    while (!stopping_) {
        sample_timer_.expires_at(add_saturated(Clock::now(), options_.settings.backlog_interval));
        boost::system::error_code ec;  // cancelled by the stop request
        co_await sample_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        // While paused the broker or a dependency is down: the gauges keep
        // their last values, boong_consumer_paused says why.
        if (stopping_ || paused_) continue;
        std::optional<ConsumerGroupStatus> status;
        try {
            status = co_await source_->backlog();
        } catch (const std::exception& e) {
            log(spdlog::level::debug, "asking how far the group trails failed: {}", e.what());
            continue;
        }
        if (!status) continue;  // the group is not on the broker yet
        std::optional<std::chrono::nanoseconds> age;
        if (status->oldest_pending) {
            age = std::max(std::chrono::nanoseconds::zero(),
                           std::chrono::duration_cast<std::chrono::nanoseconds>(boong::Clock::now() -
                                                                                *status->oldest_pending));
        } else if (status->pending == std::size_t{0}) {
            age = std::chrono::nanoseconds::zero();
        }
        observe(observer, &Observer::consumer_backlog, options_.topic, options_.group, status->pending, status->lag,
                age);
        if (status->trimmed) note_trimmed(*status->trimmed);
    }
}

void ConsumerLoop::note_trimmed(std::size_t trimmed) {
    // Logged when the total grows (every consumer of the group sees the same
    // total; the first sample of a consumer reports one already there).
    if (trimmed > trimmed_seen_.value_or(0))
        log(spdlog::level::err,
            "{} message(s) were trimmed from the topic by its length or age limit (maxLen/ttl) before the group "
            "read them (was {}): they are lost to the group",
            trimmed, trimmed_seen_.value_or(0));
    trimmed_seen_ = trimmed;
    observe(options_.settings.observer, &Observer::consumer_trimmed_unread, options_.topic, options_.group, trimmed);
}

void ConsumerLoop::note_paused(bool paused) {
    if (paused == paused_) return;
    paused_ = paused;
    observe(options_.settings.observer, &Observer::consumer_paused, options_.topic, options_.group, paused);
}

void ConsumerLoop::resume_held() {
    if (stopping_) return;
    while (!held_.empty()) {
        Delivery d = std::move(held_.front());
        held_.pop_front();
        start(std::move(d));
    }
    wake();
}

// Graceful stop: no new messages; in-flight handlers get the grace period,
// then terminal cancellation, and we wait until every one has unwound.
asio::awaitable<void> ConsumerLoop::drain() {
    // A further cancellation during the grace period cuts it short.
    co_await asio::this_coro::reset_cancellation_state();
    const auto deadline = add_saturated(Clock::now(), options_.settings.shutdown_grace);
    bool forced = false;
    while (!inflight_.empty()) {
        const bool again =
            (co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none;
        if (!forced && (again || Clock::now() >= deadline)) {
            forced = true;
            for (auto& f : inflight_) {
                if (f.done) continue;
                f.cancelled = true;
                f.signal.emit(asio::cancellation_type::terminal);
            }
        }
        co_await wait(forced ? Clock::time_point::max() : deadline);
    }
    if (!held_.empty()) {
        log(spdlog::level::info, "{} messages held through an outage stay pending for other consumers", held_.size());
        held_.clear();
    }
}

void run_consumer_loop(std::shared_ptr<ConsumerLoop> loop, ErasedHandler<void> completion) {
    // The caller may emit cancellation from its own thread, so a stop request
    // hops onto the strand. co_spawn never completes inline; ErasedHandler
    // completes through the caller's executor and clears its slot first.
    completion.on_cancel([loop](asio::cancellation_type type) {
        asio::post(loop->strand(), [loop, type] { loop->request_stop(type); });
    });
    asio::co_spawn(loop->strand(), ConsumerLoop::run(loop),
                   asio::bind_cancellation_slot(loop->stop_signal().slot(),
                                                [loop, c = std::move(completion)](std::exception_ptr e) mutable {
                                                    loop->finished();
                                                    c.complete(std::move(e));
                                                }));
}

}  // namespace boong::detail
