// The outbox relay: publishes every stored event to the broker, in the
// store's global order, at least once, surviving restarts; of several
// processes running a relay of one name, one publishes at a time.
//
//   boong::PostgresOutbox outbox(store);
//   boong::OutboxRelay relay(store, outbox, broker, {.relay = "orders"});
//   relay.start();
//   ...
//   co_await relay.stop();
//
// See boong/postgres/outbox.hpp for why the events table is the outbox,
// and docs/durability.md for the guarantees.
#pragma once

#include <boong/broker.hpp>
#include <boong/detail/background.hpp>
#include <boong/detail/backoff.hpp>
#include <boong/detail/outage_log.hpp>
#include <boong/event_store.hpp>
#include <boong/observer.hpp>
#include <boong/outbox_cursor.hpp>
#include <boong/owner.hpp>
#include <boong/policy.hpp>

#include <boost/asio/bind_executor.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace boong {

// The topic of an event by default: its stream's category, the stream id up
// to its first '-' ("order-42" -> "order", "saga-7f..." -> "saga").
inline std::string stream_category(const RecordedEvent& e) {
    const auto dash = e.stream_id.find('-');
    return dash == std::string::npos ? e.stream_id : e.stream_id.substr(0, dash);
}

struct OutboxRelayOptions {
    std::string relay = "default";  // the cursor's name: relays of one name share it
    // "name/incarnation"; empty: make_owner(stable_owner_name("relay-" + relay)),
    // a name the process keeps across restarts, so a restarted relay takes
    // its cursor back at once instead of waiting out the lease.
    std::string owner{};
    // Where each event goes; empty: stream_category.
    std::function<std::string(const RecordedEvent&)> topic{};
    std::size_t batch_size = 500;           // events read and published at once
    milliseconds poll_interval{20};         // how often an idle relay looks for new events
    milliseconds lease{10000};              // how long the cursor stays held without progress
    // The backoff after a failure (attempts is unused: a relay never gives up).
    RetryPolicy retry{1, milliseconds(100), 2.0, milliseconds(5000), 0.2};
    std::shared_ptr<spdlog::logger> logger{};  // null: spdlog's default logger
    // Told of every publish (topic, latency, failure) and of the relay's lag
    // after each read (metrics); null: none.
    std::shared_ptr<Observer> observer{};
};

struct OutboxRelayStats {
    std::uint64_t published = 0;  // events published (again, after a failure or a takeover)
    std::uint64_t batches = 0;
    std::uint64_t failures = 0;   // batches that failed (store or broker) and were retried
    std::uint64_t acquired = 0;   // times this relay took the cursor
    std::uint64_t lost = 0;       // times it found another relay holding it
    std::int64_t position = 0;    // the last position it published
};

// Every stored event is published with its metadata plus "stream_id",
// "stream_version" and "position", so consumers can order and deduplicate.
template <EventStore Store, OutboxCursor Cursor, Broker B>
class OutboxRelay {
public:
    // Store, cursor and broker must outlive the relay; once started, stop()
    // must have completed before it is destroyed.
    OutboxRelay(Store& store, Cursor& cursor, B& broker, OutboxRelayOptions options = {})
        : store_(store), cursor_(cursor), broker_(broker), options_(std::move(options)) {
        if (options_.owner.empty()) options_.owner = make_owner(stable_owner_name("relay-" + options_.relay));
        if (!options_.topic) options_.topic = stream_category;
        if (!options_.logger) options_.logger = spdlog::default_logger();
        if (options_.batch_size < 1 || options_.batch_size > max_events_per_append) {
            throw Error(errc::invalid_config, "outbox relay: batch size must be in 1.." +
                                                  std::to_string(max_events_per_append));
        }
        if (options_.poll_interval < milliseconds(1) || options_.lease < milliseconds(100) ||
            options_.poll_interval * 3 > options_.lease) {
            throw Error(errc::invalid_config,
                        "outbox relay: poll interval must be >= 1 ms, lease >= 100 ms and at least 3 poll intervals");
        }
        background_ = std::make_shared<detail::Background>(store_.get_executor(), options_.logger);
    }

    const std::string& owner() const noexcept { return options_.owner; }

    // Starts publishing in the background (on a strand of the store's executor).
    void start() { background_->spawn("outbox relay " + options_.relay, loop()); }

    // Stops after the batch in flight and releases the cursor, so another
    // relay can take over at once.
    boost::asio::awaitable<void> stop() {
        co_await background_->stop();
        if (held_) {
            try {
                co_await cursor_.async_release(options_.relay, options_.owner, boost::asio::use_awaitable);
            } catch (const std::exception& e) {
                options_.logger->warn("outbox relay {}: could not release the cursor: {}", options_.relay, e.what());
            }
            held_ = false;
        }
    }

    OutboxRelayStats stats() const {
        OutboxRelayStats s;
        s.published = published_.load();
        s.batches = batches_.load();
        s.failures = failures_.load();
        s.acquired = acquired_.load();
        s.lost = lost_.load();
        s.position = position_.load();
        return s;
    }

private:
    boost::asio::awaitable<void> loop() {
        namespace asio = boost::asio;
        auto& log = *options_.logger;
        int failures_in_row = 0;
        auto last_progress = std::chrono::steady_clock::now();
        while (!background_->stopping()) {
            bool failed = false;
            std::string failure;
            try {
                if (!held_) {
                    if (twin_ && co_await twin_holds()) {
                        co_await background_->sleep(options_.lease / 3);
                        continue;
                    }
                    auto pos = co_await cursor_.async_acquire(options_.relay, options_.owner, options_.lease,
                                                              asio::use_awaitable);
                    if (!pos) {
                        co_await background_->sleep(options_.lease / 3);
                        continue;
                    }
                    held_ = true;
                    ++acquired_;
                    position_ = *pos;
                    last_progress = std::chrono::steady_clock::now();
                    log.info("outbox relay {}: {} publishes from position {}", options_.relay, options_.owner, *pos);
                }
                auto events = co_await store_.async_read_all(position_.load() + 1, options_.batch_size,
                                                             asio::use_awaitable);
                note_lag(events);
                if (events.empty()) {
                    // Idle: keep the lease alive, then look again.
                    if (std::chrono::steady_clock::now() - last_progress > options_.lease / 3) {
                        co_await advance(position_.load());
                        last_progress = std::chrono::steady_clock::now();
                    }
                    failures_in_row = 0;
                    recovered();
                    co_await background_->sleep(options_.poll_interval);
                    continue;
                }
                co_await publish_all(events);
                const std::int64_t last = events.back().position;
                if (co_await advance(last)) {
                    position_ = last;
                    published_ += events.size();
                    ++batches_;
                }
                last_progress = std::chrono::steady_clock::now();
                failures_in_row = 0;
                recovered();
            } catch (const std::exception& e) {
                failed = true;
                failure = e.what();
            }
            if (failed) {
                ++failures_;
                ++failures_in_row;
                const auto delay = detail::backoff_delay(options_.retry, failures_in_row, 0);
                const auto now = std::chrono::steady_clock::now();
                const auto level = outage_.failure(now);
                log.log(level, "outbox relay {}: {} (failing for {} s; retrying in {} ms from position {})",
                        options_.relay, failure, outage_.seconds(now), delay.count(), position_.load() + 1);
                co_await background_->sleep(delay);
            }
        }
    }

    // What the read found waiting: the events (a full batch means at least
    // that many) and the age of the oldest.
    void note_lag(const std::vector<RecordedEvent>& events) const {
        if (!options_.observer) return;
        const auto age = events.empty() ? Clock::duration::zero()
                                        : std::max(Clock::duration::zero(), Clock::now() - events.front().stored_at);
        detail::observe(options_.observer, &Observer::outbox_lag, static_cast<std::int64_t>(events.size()),
                        std::chrono::duration_cast<std::chrono::nanoseconds>(age));
    }

    // After a round that worked: says so once if rounds had been failing.
    void recovered() {
        if (auto lasted = outage_.success(std::chrono::steady_clock::now())) {
            options_.logger->info("outbox relay {}: working again after {} s of failures", options_.relay,
                                  std::chrono::duration_cast<std::chrono::seconds>(*lasted).count());
        }
    }

    // Records progress; false (and the cursor let go) when another relay holds it.
    boost::asio::awaitable<bool> advance(std::int64_t position) {
        const bool still = co_await cursor_.async_advance(options_.relay, options_.owner, position, options_.lease,
                                                          boost::asio::use_awaitable);
        if (!still) {
            held_ = false;
            ++lost_;
            const auto status = co_await cursor_.async_status(options_.relay, boost::asio::use_awaitable);
            if (same_name(status.owner)) {
                // A live process with this relay's owner name: the names are
                // not unique, and each would take the cursor back from the
                // other at once. Stand by until its lease lapses instead.
                if (!twin_) {
                    options_.logger->error(
                        "outbox relay {}: {} took the cursor while {} runs: two live relays share the owner name; "
                        "give each its own (OutboxRelayOptions::owner). This one stands by while the other's "
                        "lease lasts",
                        options_.relay, status.owner, options_.owner);
                }
                twin_ = true;
            } else {
                options_.logger->warn("outbox relay {}: {} holds the cursor now; {} stands by", options_.relay,
                                      status.owner.empty() ? std::string("another relay") : status.owner,
                                      options_.owner);
            }
        }
        co_return still;
    }

    // Whether `owner` is another incarnation of this relay's owner name.
    bool same_name(const std::string& owner) const {
        return !owner.empty() && owner != options_.owner && owner_name(owner) == owner_name(options_.owner);
    }

    // After meeting a twin: whether it still holds the cursor with a live lease.
    boost::asio::awaitable<bool> twin_holds() {
        const auto status = co_await cursor_.async_status(options_.relay, boost::asio::use_awaitable);
        co_return same_name(status.owner) && status.lease_until && *status.lease_until > Clock::now();
    }

    // Publishes a batch, every event at once (the broker pipelines them in
    // order), and waits for all. Any failure fails the batch: it is published
    // again from its first event, so nothing is skipped.
    boost::asio::awaitable<void> publish_all(const std::vector<RecordedEvent>& events) {
        namespace asio = boost::asio;
        struct Join {
            explicit Join(const asio::any_io_executor& ex, std::size_t n)
                : pending(n), done(ex, asio::steady_timer::time_point::max()) {}
            std::size_t pending;
            std::exception_ptr error;
            asio::steady_timer done;
        };
        const auto& ex = background_->get_executor();
        auto join = std::make_shared<Join>(ex, events.size());
        for (const auto& e : events) {
            EventData out = e.event;
            if (!out.metadata.extra.is_object()) out.metadata.extra = json::object();
            out.metadata.extra["stream_id"] = e.stream_id;
            out.metadata.extra["stream_version"] = e.version;
            out.metadata.extra["position"] = e.position;
            std::string topic = options_.topic(e);
            // The topic is kept for the observer only when there is one.
            std::string observed_topic = options_.observer ? topic : std::string();
            broker_.async_publish(
                std::move(topic), std::move(out),
                asio::bind_executor(ex, [join, observer = options_.observer, observed_topic = std::move(observed_topic),
                                         began = std::chrono::steady_clock::now()](std::exception_ptr error,
                                                                                     const std::string&) {
                    if (observer) {
                        detail::observe(observer, &Observer::published, observed_topic, !error,
                                        std::chrono::steady_clock::now() - began);
                    }
                    if (error && !join->error) join->error = error;
                    if (--join->pending == 0) join->done.cancel();
                }));
        }
        while (join->pending > 0) co_await join->done.async_wait(asio::as_tuple(asio::use_awaitable));
        if (join->error) std::rethrow_exception(join->error);
    }

    Store& store_;
    Cursor& cursor_;
    B& broker_;
    OutboxRelayOptions options_;
    std::shared_ptr<detail::Background> background_;
    bool held_ = false;  // on the strand
    detail::OutageLog outage_;  // on the strand
    std::atomic<std::uint64_t> published_{0}, batches_{0}, failures_{0}, acquired_{0}, lost_{0};
    bool twin_ = false;  // a live relay with this owner name took the cursor (loop-only)
    std::atomic<std::int64_t> position_{0};
};

}  // namespace boong
