// The RabbitMQ backend of the Broker concept (target Boong::rabbitmq).
//
// A topic is a durable fanout exchange named after it; a consumer group is a
// durable quorum queue "<topic>.<group>" bound to it; a message's body is the
// event's envelope (the JSON object the Redis broker keeps in its "event"
// field), with a message_id and persistent delivery. Publishes are mandatory
// and confirmed: one completes once RabbitMQ holds the message in every
// group's queue, and a message no queue takes is an error. Consumers ack by
// hand with a prefetch of their concurrency; a failed handler's message goes
// back to its queue after the visibility timeout (the quorum queue counts
// its deliveries: x-delivery-count); dead letters go to "<topic>.dlq"
// (exchange and quorum queue), from our consumers with the reason, or from
// RabbitMQ itself once a message reached the queues' delivery limit
// (x-delivery-limit, at-least-once dead-lettering).
//
// rabbitmq-c blocks, and a connection must stay on one thread: the broker
// runs two connections, each on a thread of its own (one publishes and
// manages, one carries every consumer's channel); nothing blocks the
// io_context. See docs/rabbitmq.md.
#pragma once

#include <boong/broker.hpp>
#include <boong/config.hpp>
#include <boong/detail/erased_handler.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>

#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boong {

class RabbitMqBroker {
public:
    using executor_type = boost::asio::any_io_executor;
    using publish_signature = void(std::exception_ptr, std::string);
    using consume_signature = void(std::exception_ptr);
    using open_signature = void(std::exception_ptr);

    // Does not connect (async_open does, or the first use). Throws
    // boong::Error(errc::invalid_config) when `config` cannot be used (a
    // password_env naming an unset variable, a timeout of 0, ...).
    RabbitMqBroker(executor_type ex, RabbitMqBrokerConfig config);
    ~RabbitMqBroker();
    RabbitMqBroker(const RabbitMqBroker&) = delete;
    RabbitMqBroker& operator=(const RabbitMqBroker&) = delete;

    executor_type get_executor() const { return ex_; }
    const RabbitMqBrokerConfig& config() const;
    // "rabbitmq at host:port", as error messages name the server.
    std::string endpoint() const;

    // Connects now and declares the configured topology (config.groups), so
    // that a wrong address or password shows at start-up
    // (errc::broker_unavailable naming the server, within connect_timeout)
    // and what is published from now on is kept for every declared group.
    template <class Token>
    auto async_open(Token&& token) {
        return boost::asio::async_initiate<Token, open_signature>(
            [this](auto h) { open_impl(detail::ErasedHandler<void>(std::move(h), ex_)); }, token);
    }

    // Declares `topic` with the queues of `groups` (and its dead letters):
    // idempotent. Messages published to a topic before a group's queue exists
    // are not that group's (RabbitMQ routes at publish time).
    template <class Token>
    auto async_declare(std::string topic, std::vector<std::string> groups, Token&& token) {
        return boost::asio::async_initiate<Token, open_signature>(
            [this](auto h, std::string t, std::vector<std::string> g) {
                declare_impl(std::move(t), std::move(g), detail::ErasedHandler<void>(std::move(h), ex_));
            },
            token, std::move(topic), std::move(groups));
    }

    // Publishes to the topic's exchange and completes with the message id once
    // RabbitMQ confirmed it. Through a connection loss it is sent again until
    // publish_timeout has passed (it may then be stored twice, same event_id);
    // otherwise errc::broker_unavailable. A topic with no queue bound is
    // errc::invalid_argument (nothing would keep the message). While a
    // resource alarm blocks the connection, publishes wait (up to the timeout).
    // The event is written out by this call: neither argument need outlive it.
    template <class Token>
    auto async_publish(std::string_view topic, const EventData& event, Token&& token) {
        return boost::asio::async_initiate<Token, publish_signature>(
            [this](auto h, PreparedPublish p) {
                publish_impl(std::move(p), detail::ErasedHandler<std::string>(std::move(h), ex_));
            },
            token, prepare_publish(topic, event));
    }

    // Runs a consumer until terminal cancellation through the token's slot (a
    // graceful stop). See boong::Broker; connection losses are waited out.
    template <class Token>
    auto async_consume(ConsumerOptions options, MessageHandler handler, Token&& token) {
        return boost::asio::async_initiate<Token, consume_signature>(
            [this](auto h, ConsumerOptions o, MessageHandler mh) {
                consume_impl(std::move(o), std::move(mh), detail::ErasedHandler<void>(std::move(h), ex_));
            },
            token, std::move(options), std::move(handler));
    }

    // The dead letters of `topic`: see boong::DeadLetterQueue. Listing reads
    // the whole "<topic>.dlq" queue and puts it back (it is meant for
    // operators, not for a hot path); the order is the time of dead-lettering.
    template <class Token>
    auto async_dead_letters(std::string topic, std::string after, std::size_t max_count, Token&& token) {
        return boost::asio::co_spawn(ex_, list_dead_letters(shared_, std::move(topic), std::move(after), max_count),
                                     std::forward<Token>(token));
    }
    template <class Token>
    auto async_redrive(std::string topic, DeadLetterSelection selection, Token&& token) {
        return boost::asio::co_spawn(ex_, settle_dead_letters(shared_, std::move(topic), std::move(selection), true),
                                     std::forward<Token>(token));
    }
    template <class Token>
    auto async_drop(std::string topic, DeadLetterSelection selection, Token&& token) {
        return boost::asio::co_spawn(ex_, settle_dead_letters(shared_, std::move(topic), std::move(selection), false),
                                     std::forward<Token>(token));
    }

    // How the consumer groups of `topic` stand: the configured groups and those
    // this broker consumed, each with its consumers and `lag` (messages ready
    // in its queue). `pending` (delivered, unacked) is not visible over AMQP
    // 0-9-1: it counts only this process's consumers' unsettled deliveries.
    template <class Token>
    auto async_consumer_groups(std::string topic, Token&& token) {
        return boost::asio::co_spawn(ex_, consumer_groups(shared_, std::move(topic)), std::forward<Token>(token));
    }

private:
    struct Shared;
    static boost::asio::awaitable<std::vector<ConsumerGroupStatus>> consumer_groups(std::shared_ptr<Shared> shared,
                                                                                   std::string topic);
    static boost::asio::awaitable<std::vector<DeadLetter>> list_dead_letters(std::shared_ptr<Shared> shared,
                                                                             std::string topic, std::string after,
                                                                             std::size_t max_count);
    static boost::asio::awaitable<std::size_t> settle_dead_letters(std::shared_ptr<Shared> shared, std::string topic,
                                                                   DeadLetterSelection selection, bool redrive);

    struct PreparedPublish {
        std::string topic;
        std::string body;
        std::exception_ptr error;
    };
    // Never throws: a problem is kept in `error`.
    PreparedPublish prepare_publish(std::string_view topic, const EventData& event) const noexcept;

    void open_impl(detail::ErasedHandler<void> completion);
    void declare_impl(std::string topic, std::vector<std::string> groups, detail::ErasedHandler<void> completion);
    // Declares each topic with its groups' queues on the publishing connection.
    void declare_groups(std::vector<std::pair<std::string, std::vector<std::string>>> groups,
                        detail::ErasedHandler<void> completion);
    void publish_impl(PreparedPublish publish, detail::ErasedHandler<std::string> completion);
    void consume_impl(ConsumerOptions options, MessageHandler handler, detail::ErasedHandler<void> completion);

    class Source;
    executor_type ex_;
    std::shared_ptr<Shared> shared_;  // config and connections, shared with running consumers
};

static_assert(Broker<RabbitMqBroker>);
static_assert(DeadLetterQueue<RabbitMqBroker>);

}  // namespace boong
