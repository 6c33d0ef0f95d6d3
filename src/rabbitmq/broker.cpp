#include <boong/rabbitmq/broker.hpp>

#include "broker/consumer_loop.hpp"
#include "broker/dead_letters.hpp"
#include "broker/delivery_policy.hpp"
#include "broker/envelope.hpp"
#include "rabbitmq/link.hpp"

#include <boong/detail/post.hpp>
#include <boong/detail/validate.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace boong {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using rabbitmq::Link;
using rabbitmq::Message;
using rabbitmq::Session;

namespace {

// A delivery's id: its message_id, or (a message published without one, by
// hand) its delivery tag.
std::string delivery_id(const Message& m) {
    return m.message_id.empty() ? "tag-" + std::to_string(m.delivery_tag) : m.message_id;
}

std::string group_queue(std::string_view topic, std::string_view group) {
    return std::string(topic) + "." + std::string(group);
}

// Runs `job(session)` on `link`'s thread and completes with what it returns.
template <class T, class Job>
asio::awaitable<T> run_on(Link& link, Job job_in) {
    return asio::async_initiate<const asio::use_awaitable_t<>, typename detail::completion<T>::signature>(
        [&link](auto handler, Job job) {
            auto ex = asio::get_associated_executor(handler);
            auto done = std::make_shared<detail::ErasedHandler<T>>(std::move(handler), ex);
            link.run(
                [done, job = std::move(job)](Session& s) mutable {
                    if constexpr (std::is_void_v<T>) {
                        job(s);
                        done->complete(nullptr);
                    } else {
                        done->complete(nullptr, job(s));
                    }
                },
                [done](std::exception_ptr e) { done->complete(std::move(e)); });
        },
        asio::use_awaitable, std::move(job_in));
}

// Declares a topic's exchange, its dead letters and the queues of `groups`.
void declare_topology(Session& s, std::uint16_t channel, const std::string& topic,
                      const std::vector<std::string>& groups, int delivery_limit) {
    const auto dlq = dead_letter_topic(topic);
    s.declare_exchange(channel, topic);
    s.declare_exchange(channel, dlq);
    s.declare_dead_letter_queue(channel, dlq, dlq);
    for (const auto& g : groups) s.declare_group_queue(channel, group_queue(topic, g), topic, dlq, delivery_limit);
}

void validate_declaration(const std::string& topic, const std::vector<std::string>& groups) {
    if (topic.empty() || topic.size() > detail::max_topic_length)
        throw Error(errc::invalid_argument, "rabbitmq broker: a topic has 1.." +
                                                std::to_string(detail::max_topic_length) + " bytes, not " +
                                                std::to_string(topic.size()));
    for (const auto& g : groups) {
        // Queue names are AMQP short strings; "dlq" is the dead letters' own.
        if (g.empty() || group_queue(topic, g).size() > 255)
            throw Error(errc::invalid_argument, "rabbitmq broker: group '" + g + "' of topic '" + topic +
                                                    "': \"<topic>.<group>\" must have 1..255 bytes");
        if (g == "dlq")
            throw Error(errc::invalid_argument,
                        "rabbitmq broker: 'dlq' cannot name a consumer group (\"<topic>.dlq\" holds the dead letters)");
    }
}

// A dead letter read back from "<topic>.dlq".
DeadLetter to_dead_letter(const std::string& topic, const Message& m, int max_depth) {
    DeadLetter d;
    if (!m.dead_letter.empty()) {
        try {
            d = detail::dead_letter_from_info(detail::read_json(m.dead_letter, max_depth));
        } catch (const std::exception&) {
            d.reason = detail::with_utf8_replaced(m.dead_letter);
        }
    } else {
        // Dead-lettered by RabbitMQ itself (its queue's delivery limit).
        d.source_topic = topic;
        const auto prefix = topic + ".";
        if (m.death_queue.rfind(prefix, 0) == 0) d.group = m.death_queue.substr(prefix.size());
        d.reason = m.death_reason == "delivery_limit"
                       ? "quarantined by RabbitMQ: delivered more than the queue's delivery limit without an ack "
                         "(its consumers kept dying or hanging while handling it)"
                       : "dead-lettered by RabbitMQ (" + m.death_reason + ")";
        d.delivery_count = static_cast<int>(m.delivery_count);
        d.source_message_id = m.message_id;
        if (m.timestamp > 0) d.at = Clock::time_point(std::chrono::seconds(m.timestamp));
    }
    d.message_id = m.message_id;
    if (d.source_topic.empty()) d.source_topic = topic;
    auto decoded = detail::decode_envelope_text(m.body, max_depth, "the message body");
    if (decoded.event) {
        d.event = std::move(decoded.event);
    } else {
        d.raw = detail::with_utf8_replaced(m.body);
    }
    return d;
}

}  // namespace

struct RabbitMqBroker::Shared {
    std::shared_ptr<const rabbitmq::Endpoint> endpoint;
    std::unique_ptr<Link> publisher;  // publishes (confirmed), declarations, dead-letter operations
    std::unique_ptr<Link> consumers;  // every consumer's channel
    std::mutex mutex;
    std::map<std::string, std::set<std::string>, std::less<>> groups;  // per topic: configured and consumed

    const RabbitMqBrokerConfig& config() const { return endpoint->config; }

    void remember(const std::string& topic, const std::vector<std::string>& gs) {
        std::lock_guard lock(mutex);
        auto& set = groups[topic];
        set.insert(gs.begin(), gs.end());
    }

    // Publishes `body` to `exchange` and waits for the confirm.
    asio::awaitable<std::string> publish(std::string exchange, std::string body, std::string dead_letter = {}) {
        co_return co_await asio::async_initiate<const asio::use_awaitable_t<>, void(std::exception_ptr, std::string)>(
            [&](auto handler) {
                auto ex = asio::get_associated_executor(handler);
                auto done = std::make_shared<detail::ErasedHandler<std::string>>(std::move(handler), ex);
                rabbitmq::Outgoing o;
                o.exchange = std::move(exchange);
                o.body = std::move(body);
                o.dead_letter = std::move(dead_letter);
                publisher->publish(std::move(o), [done](std::exception_ptr e, std::string id) {
                    done->complete(std::move(e), std::move(id));
                });
            },
            asio::use_awaitable);
    }
};

// ---- the consumer's side ----------------------------------------------------------

// What the shared consumer loop needs of RabbitMQ: a channel on the consumer
// link with a prefetch of the concurrency, deliveries buffered here, acks and
// nacks by delivery tag, dead letters published to "<topic>.dlq" before the
// ack. Runs on the consumer's strand; the link's thread posts onto it.
class RabbitMqBroker::Source final : public detail::MessageSource, public std::enable_shared_from_this<Source> {
public:
    Source(std::shared_ptr<Shared> shared, asio::strand<asio::any_io_executor> strand, ConsumerOptions options)
        : shared_(std::move(shared)), strand_(std::move(strand)), options_(std::move(options)), timer_(strand_) {}

    ~Source() override {
        // Closing the channel gives RabbitMQ back whatever is still unacked.
        if (channel_ != 0) {
            auto ch = channel_;
            auto epoch = link_epoch_;
            shared_->consumers->run(
                [ch, epoch](Session& s) {
                    if (s.epoch() == epoch && s.channel_open(ch)) s.close_channel(ch);
                },
                [](std::exception_ptr) {});
        }
    }

    const char* broker_name() const noexcept override { return "rabbitmq broker"; }

    asio::awaitable<std::vector<Delivery>> fetch(std::size_t max) override {
        std::vector<Delivery> out;
        if (closed_) co_return out;
        if (!subscribed_) co_await subscribe();
        if (buffer_.empty()) {
            timer_.expires_after(std::chrono::seconds(1));
            boost::system::error_code ec;
            co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        if (!subscribed_ && !closed_) {
            throw Error(errc::broker_unavailable, lost_.empty() ? "the consumer's channel was closed" : lost_);
        }
        while (!buffer_.empty() && out.size() < max) {
            auto m = std::move(buffer_.front());
            buffer_.pop_front();
            const int before = static_cast<int>(m.delivery_count);
            if (detail::reclaim(before, options_.settings.max_deliveries) == detail::Reclaim::quarantine) {
                // Never decoded: a message that kills its consumer is not given the chance again.
                co_await dead_letter_message(m, before, detail::quarantine_reason(before, {}));
                detail::observe(options_.settings.observer, &Observer::message_dead_lettered, options_.topic,
                                options_.group, "max_deliveries");
                continue;
            }
            auto decoded = detail::decode_envelope_text(m.body, shared_->config().max_json_depth, "the message body");
            if (!decoded.event) {
                co_await dead_letter_message(m, before + 1, decoded.error);
                detail::observe(options_.settings.observer, &Observer::message_dead_lettered, options_.topic,
                                options_.group, "undecodable");
                continue;
            }
            if (!m.dead_letter.empty()) {
                // A dead letter read as a message: its record goes where the Broker contract says.
                auto& extra = decoded.event->metadata.extra;
                if (!extra.is_object()) extra = json::object();
                try {
                    extra["dead_letter"] = detail::read_json(m.dead_letter, shared_->config().max_json_depth);
                } catch (const std::exception&) {
                    extra["dead_letter"] = detail::with_utf8_replaced(m.dead_letter);
                }
            }
            auto id = delivery_id(m);
            out.push_back(Delivery{options_.topic, options_.group, options_.consumer, id, before + 1,
                                   std::move(*decoded.event)});
            unsettled_[std::move(id)] = Unsettled{subscription_, std::move(m)};
        }
        co_return out;
    }

    void wake() override { timer_.cancel(); }

    asio::awaitable<void> ack(const Delivery& d) override {
        auto u = take(d.message_id);
        if (!u) co_return;  // its channel is gone: RabbitMQ delivers it again
        co_await settle_on_channel(u->message.delivery_tag, Settlement::ack);
    }

    // Kept unacked for the visibility timeout, then returned to the queue
    // (which counts the delivery). Meanwhile the prefetch grows by one, so
    // that the held message does not take a handler's place.
    asio::awaitable<void> redeliver(const Delivery& d, const std::string&) override {
        auto it = unsettled_.find(d.message_id);
        if (it == unsettled_.end() || it->second.subscription != subscription_) co_return;
        const auto tag = it->second.message.delivery_tag;
        ++delayed_;
        co_await apply_qos();
        auto self = shared_from_this();
        asio::co_spawn(
            strand_,
            [self, tag, id = d.message_id, sub = subscription_]() -> asio::awaitable<void> {
                asio::steady_timer t(self->strand_, self->options_.settings.visibility_timeout);
                boost::system::error_code ec;
                co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                --self->delayed_;
                if (self->subscription_ == sub) {
                    self->take(id);
                    co_await self->settle_on_channel(tag, Settlement::requeue);
                    co_await self->apply_qos();
                }
            },
            [](std::exception_ptr e) {
                if (e) spdlog::debug("rabbitmq broker: returning a message failed: {}", describe(e));
            });
    }

    asio::awaitable<void> dead_letter(const Delivery& d, const std::string& reason) override {
        auto u = take(d.message_id);
        if (!u) co_return;  // its channel is gone: it comes again, and its count with it
        co_await dead_letter_message(u->message, d.delivery_count, reason);
    }

    asio::awaitable<std::vector<std::string>> hold(std::vector<std::string> ids) override {
        // Unacked messages stay ours as long as the channel lives.
        std::vector<std::string> kept;
        for (auto& id : ids) {
            auto it = unsettled_.find(id);
            if (subscribed_ && it != unsettled_.end() && it->second.subscription == subscription_)
                kept.push_back(std::move(id));
        }
        co_return kept;
    }

    asio::awaitable<std::optional<ConsumerGroupStatus>> backlog() override {
        auto groups = co_await consumer_groups(shared_, options_.topic);
        co_return detail::status_of(std::move(groups), options_.group);
    }

    // Stops deliveries (basic.cancel) and gives back what was not fetched;
    // the channel stays open so that running handlers can still ack.
    void close() override {
        if (closed_) return;
        closed_ = true;
        timer_.cancel();
        if (!subscribed_) return;
        std::vector<std::uint64_t> unfetched;
        for (const auto& m : buffer_) unfetched.push_back(m.delivery_tag);
        buffer_.clear();
        auto ch = channel_;
        auto epoch = link_epoch_;
        auto tag = consumer_tag_;
        shared_->consumers->run(
            [ch, epoch, tag, unfetched](Session& s) {
                if (s.epoch() != epoch || !s.channel_open(ch)) return;
                s.cancel(ch, tag);
                for (auto t : unfetched) s.nack(ch, t, true);
            },
            [](std::exception_ptr e) {
                spdlog::debug("rabbitmq broker: stopping a consumer: {}", describe(e));
            });
    }

    // From the link's thread, posted onto the strand.
    void arrived(std::uint64_t subscription, Message m) {
        if (subscription != subscription_) return;
        if (closed_) {
            // Came after the stop: give it back at once.
            auto ch = channel_;
            auto epoch = link_epoch_;
            shared_->consumers->run(
                [ch, epoch, t = m.delivery_tag](Session& s) {
                    if (s.epoch() == epoch && s.channel_open(ch)) s.nack(ch, t, true);
                },
                [](std::exception_ptr) {});
            return;
        }
        buffer_.push_back(std::move(m));
        timer_.cancel();
    }
    void channel_lost(std::uint64_t subscription, std::exception_ptr why) {
        if (subscription != subscription_) return;
        subscribed_ = false;
        channel_ = 0;
        lost_ = describe(why);
        buffer_.clear();  // their tags mean nothing now; RabbitMQ delivers them again
        timer_.cancel();
    }

private:
    struct Unsettled {
        std::uint64_t subscription = 0;
        Message message;  // as delivered: its tag, and its body for a dead letter
    };
    enum class Settlement { ack, requeue };

    // Hears the link's thread and hops onto the strand.
    struct Listener final : rabbitmq::ChannelListener {
        std::weak_ptr<Source> source;
        asio::strand<asio::any_io_executor> strand;
        std::uint64_t subscription = 0;
        Listener(std::weak_ptr<Source> s, asio::strand<asio::any_io_executor> st, std::uint64_t sub)
            : source(std::move(s)), strand(std::move(st)), subscription(sub) {}
        void on_deliver(Message m) override {
            asio::post(strand, [s = source, sub = subscription, m = std::move(m)]() mutable {
                if (auto self = s.lock()) self->arrived(sub, std::move(m));
            });
        }
        void on_closed(std::exception_ptr why) override {
            asio::post(strand, [s = source, sub = subscription, why] {
                if (auto self = s.lock()) self->channel_lost(sub, why);
            });
        }
    };

    std::optional<Unsettled> take(const std::string& id) {
        auto it = unsettled_.find(id);
        if (it == unsettled_.end()) return std::nullopt;
        auto u = std::move(it->second);
        unsettled_.erase(it);
        if (u.subscription != subscription_ || !subscribed_) return std::nullopt;
        return u;
    }

    std::uint16_t prefetch() const {
        const auto n = options_.settings.concurrency + delayed_;
        return static_cast<std::uint16_t>(std::min<std::size_t>(n, 65535));
    }

    asio::awaitable<void> subscribe() {
        const auto& c = shared_->config();
        if (options_.settings.max_deliveries > c.delivery_limit)
            throw Error(errc::invalid_argument,
                        "rabbitmq broker: max_deliveries " + std::to_string(options_.settings.max_deliveries) +
                            " of consumer '" + options_.consumer + "' is above the queues' delivery_limit " +
                            std::to_string(c.delivery_limit) + " (RabbitMQ would dead-letter first): raise delivery_limit");
        validate_declaration(options_.topic, {options_.group});
        const auto sub = ++subscription_;
        auto listener = std::make_shared<Listener>(weak_from_this(), strand_, sub);
        struct Subscribed {
            std::uint64_t epoch = 0;
            std::uint16_t channel = 0;
            std::string tag;
        };
        const auto topic = options_.topic;
        const auto queue = group_queue(options_.topic, options_.group);
        const std::vector<std::string> groups{options_.group};
        const int limit = c.delivery_limit;
        const auto pf = prefetch();
        auto job = [listener, topic, queue, groups, limit, pf](Session& s) {
            Subscribed r;
            r.channel = s.open_channel(listener);
            declare_topology(s, r.channel, topic, groups, limit);
            s.qos(r.channel, pf);
            r.tag = s.consume(r.channel, queue);
            r.epoch = s.epoch();
            return r;
        };
        auto r = co_await run_on<Subscribed>(*shared_->consumers, std::move(job));
        shared_->remember(options_.topic, groups);
        if (sub != subscription_ || closed_) co_return;  // lost meanwhile
        channel_ = r.channel;
        link_epoch_ = r.epoch;
        consumer_tag_ = std::move(r.tag);
        subscribed_ = true;
        lost_.clear();
    }

    asio::awaitable<void> apply_qos() {
        if (!subscribed_) co_return;
        auto ch = channel_;
        auto epoch = link_epoch_;
        auto pf = prefetch();
        auto job = [ch, epoch, pf](Session& s) {
            if (s.epoch() == epoch && s.channel_open(ch)) s.qos(ch, pf);
        };
        co_await run_on<void>(*shared_->consumers, std::move(job));
    }

    asio::awaitable<void> settle_on_channel(std::uint64_t tag, Settlement how) {
        auto ch = channel_;
        auto epoch = link_epoch_;
        auto job = [ch, epoch, tag, how](Session& s) {
            if (s.epoch() != epoch || !s.channel_open(ch)) return;  // gone: RabbitMQ delivers it again
            if (how == Settlement::ack) {
                s.ack(ch, tag);
            } else {
                s.nack(ch, tag, true);
            }
        };
        co_await run_on<void>(*shared_->consumers, std::move(job));
    }

    // Publishes `m` as it arrived to "<topic>.dlq" with the record, waits for
    // the confirm, then acks it (at least once: a crash in between leaves it
    // both dead and pending).
    asio::awaitable<void> dead_letter_message(const Message& m, int count, const std::string& reason) {
        const auto source_id = delivery_id(m);
        const auto info = detail::dead_letter_info(options_.topic, source_id, options_.group,
                                                   detail::with_utf8_replaced(reason), count, Clock::now());
        auto id = co_await shared_->publish(dead_letter_topic(options_.topic), m.body,
                                            info.dump(-1, ' ', false, json::error_handler_t::replace));
        co_await settle_on_channel(m.delivery_tag, Settlement::ack);
        spdlog::error("rabbitmq broker: message {} of topic '{}' (group '{}') dead-lettered to '{}' as {} after {} "
                      "deliveries: {}",
                      source_id, options_.topic, options_.group, dead_letter_topic(options_.topic), id, count, reason);
    }

    std::shared_ptr<Shared> shared_;
    asio::strand<asio::any_io_executor> strand_;
    ConsumerOptions options_;
    asio::steady_timer timer_;  // fetch's wait for deliveries
    std::deque<Message> buffer_;  // delivered, not fetched yet
    std::map<std::string, Unsettled> unsettled_;  // fetched, not settled, by message id
    std::uint64_t subscription_ = 0;  // one per subscribe(): deliveries of an older one are stale
    bool subscribed_ = false;
    bool closed_ = false;
    std::uint16_t channel_ = 0;
    std::uint64_t link_epoch_ = 0;
    std::string consumer_tag_;
    std::string lost_;
    std::size_t delayed_ = 0;  // failed messages waiting out their visibility timeout
};

// ---- the broker -------------------------------------------------------------------

RabbitMqBroker::RabbitMqBroker(executor_type ex, RabbitMqBrokerConfig config) : ex_(std::move(ex)) {
    auto invalid = [](const std::string& what) { return Error(errc::invalid_config, "rabbitmq broker: " + what); };
    if (config.nodes.empty()) {
        if (config.host.empty()) throw invalid("host is empty");
        if (config.port < 1 || config.port > 65535) throw invalid("port must be in 1..65535");
    }
    for (const auto& node : config.nodes) {
        if (node.host.empty()) throw invalid("a node's host is empty");
        if (node.port < 1 || node.port > 65535)
            throw invalid("node " + node.host + ": port must be in 1..65535, not " + std::to_string(node.port));
    }
    if (config.connect_timeout.count() <= 0) throw invalid("connect_timeout must be > 0");
    if (config.publish_timeout.count() <= 0) throw invalid("publish_timeout must be > 0");
    if (config.heartbeat.count() < 0 || config.heartbeat.count() > 65535) throw invalid("heartbeat must be 0..65535 s");
    if (config.max_unconfirmed < 1) throw invalid("max_unconfirmed must be >= 1");
    if (config.delivery_limit < 1) throw invalid("delivery_limit must be >= 1");
    if (config.max_json_depth < 1 || config.max_json_depth > 10000) throw invalid("max_json_depth must be 1..10000");
    if (!config.cert_file.empty() && config.key_file.empty()) throw invalid("cert_file needs key_file");
    if (config.unrouted_queue.size() > 255) throw invalid("unrouted_queue has more than 255 bytes");
    if (config.unrouted_ttl.count() <= 0) throw invalid("unrouted_ttl must be > 0");
    for (const auto& [topic, groups] : config.groups) {
        try {
            validate_declaration(topic, groups);
        } catch (const Error& e) {
            throw invalid(std::string("groups: ") + e.what());
        }
    }
    auto endpoint = std::make_shared<rabbitmq::Endpoint>();
    if (auto password = read_secret(config.password_env, config.password_file, "rabbitmq broker password"))
        endpoint->password = std::move(*password);
    else if (config.username == "guest")
        endpoint->password = "guest";
    endpoint->config = std::move(config);
    shared_ = std::make_shared<Shared>();
    shared_->endpoint = endpoint;
    shared_->publisher = std::make_unique<Link>(endpoint, "publisher");
    shared_->consumers = std::make_unique<Link>(endpoint, "consumers");
    for (const auto& [topic, groups] : endpoint->config.groups) shared_->remember(topic, groups);
}

RabbitMqBroker::~RabbitMqBroker() = default;

const RabbitMqBrokerConfig& RabbitMqBroker::config() const { return shared_->config(); }
std::string RabbitMqBroker::endpoint() const { return shared_->endpoint->describe(); }

void RabbitMqBroker::open_impl(detail::ErasedHandler<void> completion) {
    declare_groups(shared_->config().groups, std::move(completion));  // connects even with none
}

void RabbitMqBroker::declare_impl(std::string topic, std::vector<std::string> groups,
                                  detail::ErasedHandler<void> completion) {
    try {
        validate_declaration(topic, groups);
    } catch (...) {
        completion.complete(std::current_exception());
        return;
    }
    shared_->remember(topic, groups);
    declare_groups({{std::move(topic), std::move(groups)}}, std::move(completion));
}

void RabbitMqBroker::declare_groups(std::vector<std::pair<std::string, std::vector<std::string>>> groups,
                                    detail::ErasedHandler<void> completion) {
    auto done = std::make_shared<detail::ErasedHandler<void>>(std::move(completion));
    const int limit = shared_->config().delivery_limit;
    shared_->publisher->run(
        [done, groups = std::move(groups), limit](Session& s) {
            if (!groups.empty()) {
                const auto ch = s.open_channel(nullptr);
                for (const auto& [topic, gs] : groups) declare_topology(s, ch, topic, gs, limit);
                s.close_channel(ch);
            }
            done->complete(nullptr);
        },
        [done](std::exception_ptr e) { done->complete(std::move(e)); });
}

RabbitMqBroker::PreparedPublish RabbitMqBroker::prepare_publish(std::string_view topic,
                                                                const EventData& event) const noexcept {
    PreparedPublish p;
    try {
        detail::validate_publish(topic, event, shared_->config().max_json_depth);
        p.topic = std::string(topic);
        p.body = detail::envelope_text(event, shared_->config().max_json_depth);
    } catch (...) {
        p.error = std::current_exception();
    }
    return p;
}

void RabbitMqBroker::publish_impl(PreparedPublish publish, detail::ErasedHandler<std::string> completion) {
    if (publish.error) {
        completion.complete(std::move(publish.error));
        return;
    }
    auto done = std::make_shared<detail::ErasedHandler<std::string>>(std::move(completion));
    rabbitmq::Outgoing o;
    o.exchange = std::move(publish.topic);
    o.body = std::move(publish.body);
    shared_->publisher->publish(std::move(o), [done](std::exception_ptr e, std::string id) {
        done->complete(std::move(e), std::move(id));
    });
}

void RabbitMqBroker::consume_impl(ConsumerOptions options, MessageHandler handler,
                                  detail::ErasedHandler<void> completion) {
    detail::start_consumer<Source>(ex_, shared_, std::move(options), std::move(handler), std::move(completion));
}

asio::awaitable<std::vector<ConsumerGroupStatus>> RabbitMqBroker::consumer_groups(std::shared_ptr<Shared> shared,
                                                                                 std::string topic) {
    std::vector<std::string> groups;
    {
        std::lock_guard lock(shared->mutex);
        if (auto it = shared->groups.find(topic); it != shared->groups.end())
            groups.assign(it->second.begin(), it->second.end());
    }
    std::vector<ConsumerGroupStatus> out;
    if (groups.empty()) co_return out;
    auto job = [topic, groups](Session& s) {
        std::vector<ConsumerGroupStatus> r;
        std::uint16_t ch = s.open_channel(nullptr);
        for (const auto& g : groups) {
            auto status = s.inspect_queue(ch, group_queue(topic, g));
            if (!status) continue;  // not declared (yet)
            ConsumerGroupStatus cg;
            cg.group = g;
            cg.consumers = status->consumers;
            cg.lag = status->messages;
            r.push_back(std::move(cg));
        }
        s.close_channel(ch);
        return r;
    };
    co_return co_await run_on<std::vector<ConsumerGroupStatus>>(*shared->publisher, std::move(job));
}

namespace {

// Reads every message of `queue` on a channel of its own (left open: its
// messages stay ours until the channel closes or they are acked).
struct QueueRead {
    std::uint16_t channel = 0;
    std::uint64_t epoch = 0;
    std::vector<Message> messages;
};

QueueRead read_all(Session& s, const std::string& queue) {
    QueueRead snap;
    snap.channel = s.open_channel(nullptr);
    snap.epoch = s.epoch();
    auto status = s.inspect_queue(snap.channel, queue);
    if (!status) return snap;
    // What was there when we looked; messages dead-lettered meanwhile wait for the next listing.
    for (std::uint32_t i = 0; i < status->messages; ++i) {
        auto m = s.get(snap.channel, queue);
        if (!m) break;
        snap.messages.push_back(std::move(*m));
    }
    return snap;
}

// Closes the read's channel, giving back what it did not ack, and waits
// (briefly) until the queue holds them as ready again: a quorum queue takes
// returns asynchronously, and the next listing must see them.
void give_back(Session& s, const std::string& queue, const QueueRead& snap, std::size_t kept) {
    if (s.epoch() != snap.epoch || !s.channel_open(snap.channel)) return;
    s.close_channel(snap.channel);
    if (kept == 0) return;
    std::uint16_t ch = s.open_channel(nullptr);
    const auto deadline = Clock::now() + std::chrono::seconds(2);
    for (;;) {
        const auto status = s.inspect_queue(ch, queue);
        if (!status || status->messages >= kept || Clock::now() >= deadline) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));  // the link's own thread: no io_context waits
    }
    s.close_channel(ch);
}

}  // namespace

asio::awaitable<std::vector<DeadLetter>> RabbitMqBroker::list_dead_letters(std::shared_ptr<Shared> shared,
                                                                           std::string topic, std::string after,
                                                                           std::size_t max_count) {
    detail::validate_dead_letter_query(topic, max_count);
    const int depth = shared->config().max_json_depth;
    auto job = [topic](Session& s) {
        const auto queue = dead_letter_topic(topic);
        auto snap = read_all(s, queue);
        give_back(s, queue, snap, snap.messages.size());  // everything goes back
        return std::move(snap.messages);
    };
    auto messages = co_await run_on<std::vector<Message>>(*shared->publisher, std::move(job));
    std::vector<DeadLetter> all;
    for (const auto& m : messages) all.push_back(to_dead_letter(topic, m, depth));
    // By id: ids are version-7 UUIDs, which sort by the time they were
    // made (the dead-lettering, or for one RabbitMQ dead-lettered itself, the
    // first publish). `after` is a bound, so a page may start after an id
    // that was redriven or dropped meanwhile.
    std::sort(all.begin(), all.end(),
              [](const DeadLetter& a, const DeadLetter& b) { return a.message_id < b.message_id; });
    auto first = std::upper_bound(all.begin(), all.end(), after,
                                  [](const std::string& id, const DeadLetter& d) { return id < d.message_id; });
    std::vector<DeadLetter> out;
    for (auto it = first; it != all.end() && out.size() < max_count; ++it) out.push_back(std::move(*it));
    co_return out;
}

asio::awaitable<std::size_t> RabbitMqBroker::settle_dead_letters(std::shared_ptr<Shared> shared, std::string topic,
                                                                 DeadLetterSelection selection, bool redrive) {
    detail::validate_dead_letter_selection(topic, selection);
    const int depth = shared->config().max_json_depth;
    auto read = [topic](Session& s) { return read_all(s, dead_letter_topic(topic)); };  // named: g++ 12
    auto snap = co_await run_on<QueueRead>(*shared->publisher, std::move(read));
    std::vector<const Message*> chosen;
    for (const auto& m : snap.messages) {
        bool take = selection.all;
        if (!selection.ids.empty())
            take = std::find(selection.ids.begin(), selection.ids.end(), m.message_id) != selection.ids.end();
        if (selection.before) {
            const auto d = to_dead_letter(topic, m, depth);
            take = d.at != Clock::time_point{} && d.at < *selection.before;
        }
        if (take) chosen.push_back(&m);
    }
    std::vector<std::uint64_t> tags;
    std::exception_ptr failure;
    for (const auto* m : chosen) {
        if (redrive) {
            // Exactly as it first arrived: the body is the original envelope.
            try {
                co_await shared->publish(topic, m->body);
            } catch (...) {
                failure = std::current_exception();
                break;
            }
        }
        tags.push_back(m->delivery_tag);
    }
    const auto kept = snap.messages.size() - tags.size();
    auto settle = [snap = std::move(snap), tags, kept, topic](Session& s) {
        if (s.epoch() != snap.epoch || !s.channel_open(snap.channel)) return std::size_t{0};
        for (auto t : tags) s.ack(snap.channel, t);
        give_back(s, dead_letter_topic(topic), snap, kept);  // the rest goes back
        return tags.size();
    };
    const auto settled = co_await run_on<std::size_t>(*shared->publisher, std::move(settle));
    if (failure) std::rethrow_exception(failure);
    if (settled != tags.size())
        throw Error(errc::broker_unavailable, "rabbitmq broker: the connection was lost while settling dead letters of '" +
                                                  topic + "': list them again to see what is left");
    co_return settled;
}

}  // namespace boong
