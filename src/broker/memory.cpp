#include <boong/broker/memory.hpp>
#include <boong/detail/run_consumer.hpp>
#include <boong/detail/validate.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <list>
#include <map>
#include <mutex>
#include <optional>

namespace boong {
namespace asio = boost::asio;

namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// t + d, clamped so that a huge timeout means "never" rather than overflowing.
SteadyClock::time_point add_saturated(SteadyClock::time_point t, milliseconds d) {
    const auto room = std::chrono::duration_cast<milliseconds>(SteadyClock::time_point::max() - t);
    return d >= room ? SteadyClock::time_point::max() : t + d;
}

// Why a handler failed, as the consumer acts on it.
struct Failure {
    std::string what;
    bool rejected = false;   // boong::Rejection: dead letter at once
    bool abandoned = false;  // cancelled by our own stop: not the message's fault
};

Failure describe(std::exception_ptr e, bool abandoned) {
    try {
        std::rethrow_exception(e);
    } catch (const Rejection& r) {
        return {r.what(), true, abandoned};
    } catch (const std::exception& ex) {
        return {ex.what(), false, abandoned};
    } catch (...) {
        return {"unknown exception", false, abandoned};
    }
}

}  // namespace

// Everything the consumers share, behind one mutex. Modelled on Redis
// Streams: a topic is an append-only log; a group has a read cursor and a
// pending-entries list (delivered, not yet acknowledged).
struct MemoryBroker::State {
    struct Message {
        std::string id;
        EventData event;
    };
    struct Pending {
        std::string consumer;
        int delivery_count = 0;
        SteadyClock::time_point delivered_at;
        std::string last_error;  // why the last delivery failed, when it did
    };
    struct Group {
        std::size_t next = 0;                    // first message never delivered to the group
        std::map<std::size_t, Pending> pending;  // by message index, so redelivery goes oldest first
    };
    struct Topic {
        std::vector<Message> messages;  // messages[i] has id "<i+1>-0"
        std::map<std::string, Group, std::less<>> groups;
        std::vector<std::weak_ptr<Consumer>> consumers;  // woken when a message arrives
    };
    struct DeadLetter {
        std::string topic, group, message_id, reason, dead_letter_id;
        int delivery_count;
    };
    // What to do once the mutex is released: consumers are woken through their
    // strands (asio objects are not thread-safe) and logging waits too.
    struct Effects {
        std::vector<std::shared_ptr<Consumer>> wake;
        std::vector<DeadLetter> dead_letters;
        void apply() const;
    };
    struct Claim {
        std::optional<Delivery> delivery;
        std::size_t index = 0;
        std::optional<SteadyClock::time_point> next_due;  // when nothing was claimable: when something may be
    };
    enum class Settled { acked, retry, dead_lettered, left_pending, stale };

    mutable std::mutex mutex;
    std::map<std::string, Topic, std::less<>> topics;

    std::string publish(const std::string& topic, EventData event) {
        Effects fx;
        std::string id;
        {
            std::lock_guard lock(mutex);
            id = append(topic, std::move(event), fx);
        }
        fx.apply();
        return id;
    }

    void add_consumer(const ConsumerOptions& o, std::weak_ptr<Consumer> consumer) {
        std::lock_guard lock(mutex);
        auto& topic = topics[o.topic];
        topic.groups[o.group];  // created on first use, reading from the start of the topic
        std::erase_if(topic.consumers, [](const auto& w) { return w.expired(); });
        topic.consumers.push_back(std::move(consumer));
    }

    void remove_consumer(std::string_view topic_name, const std::weak_ptr<Consumer>& consumer) {
        std::lock_guard lock(mutex);
        if (auto t = topics.find(topic_name); t != topics.end()) {
            std::erase_if(t->second.consumers, [&](const auto& w) {
                return w.expired() || (!w.owner_before(consumer) && !consumer.owner_before(w));
            });
        }
    }

    // The next message for consumer `o.consumer`: first a pending one idle for
    // the visibility timeout (Redis: XAUTOCLAIM), else a new one (XREADGROUP >).
    // Like XAUTOCLAIM, this also takes a message whose handler is merely slow:
    // delivery is at-least-once.
    Claim claim(const ConsumerOptions& o, Effects& fx) {
        std::lock_guard lock(mutex);
        auto& topic = topics[o.topic];
        auto& group = topic.groups[o.group];
        const auto now = SteadyClock::now();
        Claim c;
        for (auto it = group.pending.begin(); it != group.pending.end();) {
            auto& p = it->second;
            const auto due = add_saturated(p.delivered_at, o.visibility_timeout);
            if (now < due) {
                c.next_due = std::min(c.next_due.value_or(due), due);
                ++it;
            } else if (p.delivery_count >= o.max_deliveries) {
                // Its last allowed delivery never settled (the consumer hung or died).
                std::string reason = "not acknowledged within the visibility timeout after " +
                                     std::to_string(p.delivery_count) + " deliveries";
                if (!p.last_error.empty()) reason += " (last error: " + p.last_error + ")";
                dead_letter(o.topic, topic, o.group, it->first, p.delivery_count, std::move(reason), fx);
                it = group.pending.erase(it);
            } else {
                p.consumer = o.consumer;
                p.delivered_at = now;
                ++p.delivery_count;
                c.index = it->first;
                c.delivery = make_delivery(o, topic, c.index, p.delivery_count);
                return c;
            }
        }
        if (group.next < topic.messages.size()) {
            c.index = group.next++;
            group.pending.emplace(c.index, Pending{o.consumer, 1, now, {}});
            c.delivery = make_delivery(o, topic, c.index, 1);
        }
        return c;
    }

    // Records the outcome of delivery `d` (failure == nullptr: success).
    Settled settle(const ConsumerOptions& o, const Delivery& d, std::size_t index, const Failure* failure,
                   Effects& fx) {
        std::lock_guard lock(mutex);
        auto& topic = topics.find(o.topic)->second;
        auto& group = topic.groups.find(o.group)->second;
        auto it = group.pending.find(index);
        if (it == group.pending.end()) return Settled::stale;
        auto& p = it->second;
        if (!failure) {
            group.pending.erase(it);  // like XACK: whoever holds the message now
            return Settled::acked;
        }
        // Redelivered meanwhile (this handler outlived the visibility timeout):
        // the newer delivery decides the message's fate.
        if (p.consumer != d.consumer || p.delivery_count != d.delivery_count) return Settled::stale;
        if (failure->rejected || (!failure->abandoned && p.delivery_count >= o.max_deliveries)) {
            dead_letter(o.topic, topic, o.group, index, p.delivery_count, failure->what, fx);
            group.pending.erase(it);
            return Settled::dead_lettered;
        }
        if (failure->abandoned) return Settled::left_pending;
        p.last_error = failure->what;
        return Settled::retry;
    }

private:
    // Appends with the mutex held.
    std::string append(const std::string& topic_name, EventData event, Effects& fx) {
        auto& topic = topics[topic_name];
        topic.messages.push_back({std::to_string(topic.messages.size() + 1) + "-0", std::move(event)});
        for (const auto& w : topic.consumers) {
            if (auto c = w.lock()) fx.wake.push_back(std::move(c));
        }
        return topic.messages.back().id;
    }

    // Publishes message `index` of `source` to its dead-letter topic, with the mutex held.
    void dead_letter(const std::string& source, const Topic& topic, const std::string& group, std::size_t index,
                     int delivery_count, std::string reason, Effects& fx) {
        const auto& message = topic.messages[index];
        EventData e = message.event;
        e.metadata.extra["dead_letter"] = json{{"source_topic", source},
                                               {"source_message_id", message.id},
                                               {"group", group},
                                               {"reason", reason},
                                               {"delivery_count", delivery_count}};
        // `message` stays valid: the dead-letter topic is another map node.
        auto id = append(dead_letter_topic(source), std::move(e), fx);
        fx.dead_letters.push_back({source, group, message.id, std::move(reason), std::move(id), delivery_count});
    }

    static Delivery make_delivery(const ConsumerOptions& o, const Topic& topic, std::size_t index, int count) {
        const auto& m = topic.messages[index];
        return Delivery{o.topic, o.group, o.consumer, m.id, count, m.event};
    }
};

// One running async_consume. Its loop and its handlers run on one strand, so
// its own members need no lock; only State is shared.
class MemoryBroker::Consumer : public std::enable_shared_from_this<Consumer> {
public:
    Consumer(std::shared_ptr<State> state, const executor_type& ex, ConsumerOptions options, MessageHandler handler)
        : state_(std::move(state)),
          strand_(asio::make_strand(ex)),
          timer_(strand_),
          options_(std::move(options)),
          handler_(std::move(handler)) {}

    const asio::strand<executor_type>& strand() const { return strand_; }

    // Something changed (a message arrived, a handler finished): look again. On the strand.
    void wake() { timer_.cancel(); }

    // The caller's cancellation, relayed onto the strand. The loop's
    // cancellation state hangs off this signal (through co_spawn).
    asio::cancellation_signal& stop_signal() { return stop_signal_; }
    void request_stop(asio::cancellation_type type) {
        if (!finished_) stop_signal_.emit(type);
    }
    void finished() { finished_ = true; }

    // The consumer's main loop; `self` keeps the consumer alive while it runs.
    static asio::awaitable<void> run(std::shared_ptr<Consumer> self) {
        auto& c = *self;
        detail::validate_consumer_options(c.options_, c.handler_);
        // A stop request (terminal cancellation through stop_signal_) must not
        // throw out of the loop: the loop checks for it.
        co_await asio::this_coro::throw_if_cancelled(false);
        c.state_->add_consumer(c.options_, self);
        std::exception_ptr failure;
        try {
            while ((co_await asio::this_coro::cancellation_state).cancelled() == asio::cancellation_type::none) {
                c.timer_.expires_at(c.fill().value_or(SteadyClock::time_point::max()));
                boost::system::error_code ec;  // cancelled by wake() or by the stop request
                co_await c.timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            }
        } catch (...) {
            failure = std::current_exception();
        }
        co_await c.drain();
        c.state_->remove_consumer(c.options_.topic, self);
        if (failure) std::rethrow_exception(failure);
    }

private:
    struct InFlight {
        asio::cancellation_signal signal;  // terminal cancellation when the grace runs out
        bool cancelled = false;
        bool done = false;
    };

    // Starts handlers until the concurrency limit or no claimable message;
    // returns when to look again (nullopt: only when woken).
    std::optional<SteadyClock::time_point> fill() {
        while (inflight_.size() < options_.concurrency) {
            State::Effects fx;
            auto claim = state_->claim(options_, fx);
            fx.apply();
            if (!claim.delivery) return claim.next_due;
            start(std::move(*claim.delivery), claim.index);
        }
        return std::nullopt;  // at capacity: a finishing handler wakes us
    }

    void start(Delivery d, std::size_t index) {
        auto it = inflight_.emplace(inflight_.end());
        asio::co_spawn(strand_, handle(std::move(d), index, it),
                       asio::bind_cancellation_slot(it->signal.slot(), [self = shared_from_this(),
                                                                        it](std::exception_ptr e) {
                           it->done = true;
                           if (e) {
                               try {
                                   std::rethrow_exception(e);
                               } catch (const std::exception& ex) {
                                   spdlog::error("memory broker: settling a message of topic '{}' failed: {}",
                                                 self->options_.topic, ex.what());
                               } catch (...) {
                               }
                           }
                           // The finished coroutine's cancellation state still lives in
                           // `signal`: free it only after co_spawn is done with it.
                           asio::post(self->strand_, [self, it] {
                               self->inflight_.erase(it);
                               self->wake();
                           });
                       }));
    }

    asio::awaitable<void> handle(Delivery d, std::size_t index, std::list<InFlight>::iterator flight) {
        std::exception_ptr error;
        try {
            co_await handler_(d);
        } catch (...) {
            error = std::current_exception();
        }
        std::optional<Failure> failure;
        if (error) failure = describe(error, flight->cancelled);
        State::Effects fx;
        const auto outcome = state_->settle(options_, d, index, failure ? &*failure : nullptr, fx);
        fx.apply();
        if (outcome == State::Settled::retry) {
            spdlog::warn("memory broker: handler failed: topic '{}' group '{}' message {} delivery {}: {}", d.topic,
                         d.group, d.message_id, d.delivery_count, failure->what);
        } else if (outcome == State::Settled::left_pending) {
            spdlog::info("memory broker: handler of message {} (topic '{}' group '{}') cancelled on stop; "
                         "it stays pending",
                         d.message_id, d.topic, d.group);
        }
    }

    // Graceful stop: no new messages; in-flight handlers get the grace period,
    // then terminal cancellation, and we wait until every one has unwound.
    asio::awaitable<void> drain() {
        // A further cancellation during the grace period cuts it short.
        co_await asio::this_coro::reset_cancellation_state();
        const auto deadline = add_saturated(SteadyClock::now(), options_.shutdown_grace);
        bool forced = false;
        while (!inflight_.empty()) {
            const bool again =
                (co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none;
            if (!forced && (again || SteadyClock::now() >= deadline)) {
                forced = true;
                for (auto& f : inflight_) {
                    if (f.done) continue;
                    f.cancelled = true;
                    f.signal.emit(asio::cancellation_type::terminal);
                }
            }
            timer_.expires_at(forced ? SteadyClock::time_point::max() : deadline);
            boost::system::error_code ec;
            co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
    }

    std::shared_ptr<State> state_;
    asio::strand<executor_type> strand_;
    asio::steady_timer timer_;  // the loop's single wait: new work, next redelivery, or grace deadline
    ConsumerOptions options_;
    MessageHandler handler_;
    std::list<InFlight> inflight_;  // a list: signals must not move while a handler runs
    asio::cancellation_signal stop_signal_;
    bool finished_ = false;
};

void MemoryBroker::State::Effects::apply() const {
    for (const auto& d : dead_letters) {
        spdlog::error("memory broker: message {} of topic '{}' (group '{}') dead-lettered to '{}' as {} after {} "
                      "deliveries: {}",
                      d.message_id, d.topic, d.group, dead_letter_topic(d.topic), d.dead_letter_id, d.delivery_count,
                      d.reason);
    }
    for (const auto& c : wake) asio::post(c->strand(), [c] { c->wake(); });
}

MemoryBroker::MemoryBroker(executor_type ex) : ex_(std::move(ex)), state_(std::make_shared<State>()) {}
MemoryBroker::~MemoryBroker() = default;

std::string MemoryBroker::publish(const std::string& topic, EventData event) {
    detail::validate_publish(topic, event);
    return state_->publish(topic, std::move(event));
}

void MemoryBroker::consume_impl(ConsumerOptions options, MessageHandler handler,
                                detail::ErasedHandler<void> completion) {
    detail::run_consumer(std::make_shared<Consumer>(state_, ex_, std::move(options), std::move(handler)),
                         std::move(completion));
}

std::size_t MemoryBroker::pending_count(std::string_view topic, std::string_view group) const {
    std::lock_guard lock(state_->mutex);
    auto t = state_->topics.find(topic);
    if (t == state_->topics.end()) return 0;
    auto g = t->second.groups.find(group);
    return g == t->second.groups.end() ? 0 : g->second.pending.size();
}

std::size_t MemoryBroker::size(std::string_view topic) const {
    std::lock_guard lock(state_->mutex);
    auto t = state_->topics.find(topic);
    return t == state_->topics.end() ? 0 : t->second.messages.size();
}

std::vector<Delivery> MemoryBroker::read_topic(std::string_view topic) const {
    std::lock_guard lock(state_->mutex);
    std::vector<Delivery> out;
    if (auto t = state_->topics.find(topic); t != state_->topics.end()) {
        out.reserve(t->second.messages.size());
        for (const auto& m : t->second.messages) out.push_back(Delivery{t->first, {}, {}, m.id, 0, m.event});
    }
    return out;
}

}  // namespace boong
