#include <boong/memory/broker.hpp>
#include "broker/delivery_policy.hpp"
#include <boong/detail/validate.hpp>

#include "broker/consumer_loop.hpp"
#include "broker/dead_letters.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>

namespace boong {
namespace asio = boost::asio;

namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Message ids are "<n>-0", n counting from 1: the index is n - 1.
std::optional<std::size_t> index_of(std::string_view id) {
    std::size_t n = 0;
    const auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), n);
    if (ec != std::errc{} || n == 0 || std::string_view(end, id.data() + id.size() - end) != "-0") return std::nullopt;
    return n - 1;
}

}  // namespace

// Everything the consumers share, behind one mutex. Modelled on Redis
// Streams: a topic is an append-only log; a group has a read cursor and a
// pending-entries list (delivered, not yet acknowledged).
struct MemoryBroker::State {
    struct Message {
        std::string id;
        EventData event;
        json dead_letter;      // a dead letter's "dead_letter" info (null for others)
        bool deleted = false;  // dropped or re-driven dead letter: never delivered again
        Clock::time_point published_at{};
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
        std::vector<std::weak_ptr<Source>> consumers;  // woken when a message arrives
    };
    struct DeadLettered {
        std::string topic, group, message_id, reason, dead_letter_id;
        int delivery_count;
    };
    // What to do once the mutex is released: consumers are woken through their
    // strands (asio objects are not thread-safe) and logging waits too.
    struct Effects {
        std::vector<std::shared_ptr<Source>> wake;
        std::vector<DeadLettered> dead_letters;
        void apply() const;
    };
    struct Claim {
        std::optional<Delivery> delivery;
        std::optional<SteadyClock::time_point> next_due;  // when nothing was claimable: when something may be
    };

    mutable std::mutex mutex;
    std::map<std::string, Topic, std::less<>> topics;

    std::vector<ConsumerGroupStatus> group_statuses(const std::string& topic_name) const;

    std::string publish(const std::string& topic, EventData event) {
        Effects fx;
        std::string id;
        {
            std::lock_guard lock(mutex);
            id = append(topic, std::move(event), json(), fx);
        }
        fx.apply();
        return id;
    }

    void add_consumer(const ConsumerOptions& o, std::weak_ptr<Source> consumer) {
        std::lock_guard lock(mutex);
        auto& topic = topics[o.topic];
        topic.groups[o.group];  // created on first use, reading from the start of the topic
        std::erase_if(topic.consumers, [](const auto& w) { return w.expired(); });
        topic.consumers.push_back(std::move(consumer));
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
            const auto due = detail::add_saturated(p.delivered_at, o.settings.visibility_timeout);
            if (topic.messages[it->first].deleted) {
                it = group.pending.erase(it);
            } else if (now < due) {
                c.next_due = std::min(c.next_due.value_or(due), due);
                ++it;
            } else if (detail::reclaim(p.delivery_count, o.settings.max_deliveries) == detail::Reclaim::quarantine) {
                dead_letter(o.topic, topic, o.group, it->first, p.delivery_count,
                            detail::quarantine_reason(p.delivery_count, p.last_error), fx);
                detail::observe(o.settings.observer, &Observer::message_dead_lettered, o.topic, o.group,
                                "max_deliveries");
                it = group.pending.erase(it);
            } else {
                p.consumer = o.consumer;
                p.delivered_at = now;
                ++p.delivery_count;
                c.delivery = make_delivery(o, topic, it->first, p.delivery_count);
                return c;
            }
        }
        while (group.next < topic.messages.size()) {
            const std::size_t index = group.next++;
            if (topic.messages[index].deleted) continue;
            group.pending.emplace(index, Pending{o.consumer, 1, now, {}});
            c.delivery = make_delivery(o, topic, index, 1);
            break;
        }
        return c;
    }

    // The pending entry of `d`, if `d` is still its latest delivery (not
    // redelivered meanwhile because its handler outlived the visibility timeout).
    Pending* current(const ConsumerOptions& o, const Delivery& d, std::map<std::size_t, Pending>::iterator* at) {
        const auto index = index_of(d.message_id);
        if (!index) return nullptr;
        auto& group = topics.find(o.topic)->second.groups.find(o.group)->second;
        auto it = group.pending.find(*index);
        if (it == group.pending.end() || it->second.consumer != d.consumer ||
            it->second.delivery_count != d.delivery_count)
            return nullptr;
        if (at) *at = it;
        return &it->second;
    }

    void ack(const ConsumerOptions& o, const Delivery& d) {
        std::lock_guard lock(mutex);
        auto& group = topics.find(o.topic)->second.groups.find(o.group)->second;
        if (const auto index = index_of(d.message_id)) group.pending.erase(*index);  // like XACK: whoever holds it now
    }

    void redeliver(const ConsumerOptions& o, const Delivery& d, const std::string& why) {
        std::lock_guard lock(mutex);
        if (auto* p = current(o, d, nullptr)) p->last_error = why;
    }

    void dead_letter(const ConsumerOptions& o, const Delivery& d, const std::string& reason) {
        Effects fx;
        {
            std::lock_guard lock(mutex);
            std::map<std::size_t, Pending>::iterator it;
            if (!current(o, d, &it)) return;  // a newer delivery decides the message's fate
            auto& topic = topics.find(o.topic)->second;
            dead_letter(o.topic, topic, o.group, it->first, it->second.delivery_count, reason, fx);
            topic.groups.find(o.group)->second.pending.erase(it);
        }
        fx.apply();
    }

    std::vector<std::string> hold(const ConsumerOptions& o, const std::vector<std::string>& ids) {
        std::lock_guard lock(mutex);
        auto& group = topics.find(o.topic)->second.groups.find(o.group)->second;
        const auto now = SteadyClock::now();
        std::vector<std::string> kept;
        for (const auto& id : ids) {
            const auto index = index_of(id);
            if (!index) continue;
            auto it = group.pending.find(*index);
            if (it == group.pending.end() || it->second.consumer != o.consumer) continue;
            it->second.delivered_at = now;
            kept.push_back(id);
        }
        return kept;
    }

    std::vector<DeadLetter> dead_letters(const std::string& topic_name, const std::string& after, std::size_t max) const {
        std::lock_guard lock(mutex);
        std::vector<DeadLetter> out;
        const auto t = topics.find(dead_letter_topic(topic_name));
        if (t == topics.end()) return out;
        std::size_t from = 0;
        if (!after.empty()) {
            const auto index = index_of(after);
            if (!index) throw Error(errc::invalid_argument, "dead letters of '" + topic_name + "': '" + after +
                                                                "' is not a message id of this broker");
            from = *index + 1;
        }
        for (std::size_t i = from; i < t->second.messages.size() && out.size() < max; ++i) {
            const auto& m = t->second.messages[i];
            if (m.deleted) continue;
            auto dl = detail::dead_letter_from_info(m.dead_letter);
            dl.message_id = m.id;
            dl.event = m.event;
            out.push_back(std::move(dl));
        }
        return out;
    }

    // Re-drives (publishes again) or drops the selected dead letters of `topic_name`.
    std::size_t settle_dead_letters(const std::string& topic_name, const DeadLetterSelection& selection, bool redrive) {
        Effects fx;
        std::size_t n = 0;
        {
            std::lock_guard lock(mutex);
            const auto t = topics.find(dead_letter_topic(topic_name));
            if (t == topics.end()) return 0;
            auto& dlq = t->second;
            auto chosen = [&](std::size_t i) {
                const auto& m = dlq.messages[i];
                if (m.deleted) return false;
                if (selection.all) return true;
                if (selection.before) return detail::dead_letter_from_info(m.dead_letter).at < *selection.before;
                return std::find(selection.ids.begin(), selection.ids.end(), m.id) != selection.ids.end();
            };
            for (std::size_t i = 0; i < dlq.messages.size(); ++i) {
                if (!chosen(i)) continue;
                auto& m = dlq.messages[i];
                m.deleted = true;
                ++n;
                // `m` stays valid: the source topic is another map node.
                if (redrive) append(topic_name, m.event, json(), fx);
            }
        }
        fx.apply();
        return n;
    }

private:
    // Appends with the mutex held.
    std::string append(const std::string& topic_name, EventData event, json dead_letter_info, Effects& fx) {
        auto& topic = topics[topic_name];
        topic.messages.push_back({std::to_string(topic.messages.size() + 1) + "-0", std::move(event),
                                  std::move(dead_letter_info), false, Clock::now()});
        for (const auto& w : topic.consumers) {
            if (auto c = w.lock()) fx.wake.push_back(std::move(c));
        }
        return topic.messages.back().id;
    }

    // Publishes message `index` of `source` to its dead-letter topic, with the mutex held.
    void dead_letter(const std::string& source, const Topic& topic, const std::string& group, std::size_t index,
                     int delivery_count, std::string reason, Effects& fx) {
        const auto& message = topic.messages[index];
        auto info = detail::dead_letter_info(source, message.id, group, reason, delivery_count, Clock::now());
        // `message` stays valid: the dead-letter topic is another map node.
        auto id = append(dead_letter_topic(source), message.event, std::move(info), fx);
        fx.dead_letters.push_back({source, group, message.id, std::move(reason), std::move(id), delivery_count});
    }

    // A dead letter is delivered (and read) with its "dead_letter" info in metadata.extra.
    static EventData with_info(const Message& m) {
        EventData e = m.event;
        if (!m.dead_letter.is_null()) {
            if (!e.metadata.extra.is_object()) e.metadata.extra = json::object();
            e.metadata.extra["dead_letter"] = m.dead_letter;
        }
        return e;
    }

    static Delivery make_delivery(const ConsumerOptions& o, const Topic& topic, std::size_t index, int count) {
        const auto& m = topic.messages[index];
        return Delivery{o.topic, o.group, o.consumer, m.id, count, with_info(m)};
    }

    friend class MemoryBroker;
};

// What the shared consumer loop needs of the in-memory log. Runs on the
// consumer's strand; only State is shared with other threads.
class MemoryBroker::Source final : public detail::MessageSource,
                                   public std::enable_shared_from_this<MemoryBroker::Source> {
public:
    Source(std::shared_ptr<State> state, const asio::strand<asio::any_io_executor>& strand, ConsumerOptions options)
        : state_(std::move(state)), strand_(strand), timer_(strand), options_(std::move(options)) {}

    const asio::strand<asio::any_io_executor>& strand() const { return strand_; }
    const std::string& group() const noexcept { return options_.group; }

    const char* broker_name() const noexcept override { return "memory broker"; }

    asio::awaitable<std::vector<Delivery>> fetch(std::size_t max) override {
        if (!registered_) {
            state_->add_consumer(options_, weak_from_this());
            registered_ = true;
        }
        std::vector<Delivery> out;
        std::optional<SteadyClock::time_point> next_due;
        while (out.size() < max) {
            State::Effects fx;
            auto claim = state_->claim(options_, fx);
            fx.apply();
            if (!claim.delivery) {
                next_due = claim.next_due;
                break;
            }
            out.push_back(std::move(*claim.delivery));
        }
        if (!out.empty() || closed_) co_return out;
        // Nothing now: wait for a publish (it wakes us), the next redelivery, or a wake().
        timer_.expires_at(next_due.value_or(SteadyClock::time_point::max()));
        boost::system::error_code ec;
        co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        co_return out;
    }

    void wake() override { timer_.cancel(); }

    asio::awaitable<void> ack(const Delivery& d) override {
        state_->ack(options_, d);
        co_return;
    }
    asio::awaitable<void> redeliver(const Delivery& d, const std::string& why) override {
        state_->redeliver(options_, d, why);
        co_return;
    }
    asio::awaitable<void> dead_letter(const Delivery& d, const std::string& reason) override {
        state_->dead_letter(options_, d, reason);
        co_return;
    }
    asio::awaitable<std::vector<std::string>> hold(std::vector<std::string> ids) override {
        co_return state_->hold(options_, ids);
    }
    asio::awaitable<std::optional<ConsumerGroupStatus>> backlog() override {
        co_return detail::status_of(state_->group_statuses(options_.topic), options_.group);
    }
    void close() override {
        closed_ = true;
        timer_.cancel();
    }

private:
    std::shared_ptr<State> state_;
    asio::strand<asio::any_io_executor> strand_;
    asio::steady_timer timer_;
    ConsumerOptions options_;
    bool registered_ = false;
    bool closed_ = false;
};

void MemoryBroker::State::Effects::apply() const {
    for (const auto& d : dead_letters) {
        spdlog::error("memory broker: message {} of topic '{}' (group '{}') dead-lettered to '{}' as {} after {} "
                      "deliveries: {}",
                      d.message_id, d.topic, d.group, dead_letter_topic(d.topic), d.dead_letter_id, d.delivery_count,
                      d.reason);
    }
    for (const auto& source : wake) asio::post(source->strand(), [source] { source->wake(); });
}

MemoryBroker::MemoryBroker(executor_type ex) : ex_(std::move(ex)), state_(std::make_shared<State>()) {}
MemoryBroker::~MemoryBroker() = default;

std::string MemoryBroker::publish(const std::string& topic, EventData event) {
    detail::validate_publish(topic, event);
    return state_->publish(topic, std::move(event));
}

void MemoryBroker::consume_impl(ConsumerOptions options, MessageHandler handler,
                                detail::ErasedHandler<void> completion) {
    detail::start_consumer<Source>(ex_, state_, std::move(options), std::move(handler), std::move(completion));
}

std::vector<DeadLetter> MemoryBroker::dead_letters(const std::string& topic, const std::string& after,
                                                   std::size_t max_count) const {
    detail::validate_dead_letter_query(topic, max_count);
    return state_->dead_letters(topic, after, max_count);
}

std::size_t MemoryBroker::redrive(const std::string& topic, const DeadLetterSelection& selection) {
    detail::validate_dead_letter_selection(topic, selection);
    return state_->settle_dead_letters(topic, selection, true);
}

std::size_t MemoryBroker::drop(const std::string& topic, const DeadLetterSelection& selection) {
    detail::validate_dead_letter_selection(topic, selection);
    return state_->settle_dead_letters(topic, selection, false);
}

std::vector<ConsumerGroupStatus> MemoryBroker::State::group_statuses(const std::string& topic_name) const {
    std::lock_guard lock(mutex);
    std::vector<ConsumerGroupStatus> out;
    const auto t = topics.find(topic_name);
    if (t == topics.end()) return out;
    const auto& topic = t->second;
    for (const auto& [name, group] : topic.groups) {
        ConsumerGroupStatus s;
        s.group = name;
        std::size_t pending = 0;  // dropped dead letters leave the list when next looked at: not counted
        for (const auto& [index, p] : group.pending) {
            if (topic.messages[index].deleted) continue;
            if (pending++ == 0) s.oldest_pending = topic.messages[index].published_at;  // the map is in log order
        }
        s.pending = pending;
        std::size_t lag = 0;
        for (std::size_t i = group.next; i < topic.messages.size(); ++i) lag += !topic.messages[i].deleted;
        s.lag = lag;
        s.trimmed = 0;  // no limit removes messages here
        for (const auto& w : topic.consumers) {
            if (auto c = w.lock(); c && c->group() == name) ++s.consumers;
        }
        out.push_back(std::move(s));
    }
    return out;
}

std::vector<ConsumerGroupStatus> MemoryBroker::consumer_groups(const std::string& topic) const {
    return state_->group_statuses(topic);
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
        for (const auto& m : t->second.messages) {
            if (!m.deleted) out.push_back(Delivery{t->first, {}, {}, m.id, 0, State::with_info(m)});
        }
    }
    return out;
}

}  // namespace boong
