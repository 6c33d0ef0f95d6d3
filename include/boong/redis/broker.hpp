// The Redis Streams backend of the Broker concept (target Boong::redis).
//
// A topic is a stream; a message is a stream entry carrying the event's
// envelope in one field, "event": a JSON object with event_id, type,
// schema_version, metadata and payload. Consumers are consumer groups:
// XREADGROUP on a connection of their own (with a finite BLOCK), XACK after
// the handler succeeded, XAUTOCLAIM of entries idle longer than the
// visibility timeout, dead letters in "<topic>.dlq" (the entry as it arrived
// plus a "dead_letter" field), XCLAIM JUSTID to keep what a consumer holds
// through an outage. hiredis does the protocol, Asio the I/O: no thread per
// connection, nothing blocks the io_context. See docs/redis.md.
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

class RedisBroker {
public:
    using executor_type = boost::asio::any_io_executor;
    using publish_signature = void(std::exception_ptr, std::string);
    using consume_signature = void(std::exception_ptr);
    using open_signature = void(std::exception_ptr);
    using command_signature = void(std::exception_ptr, json);

    // Does not connect: the publishing connection opens on first use (or
    // async_open), each consumer opens its own. Throws
    // boong::Error(errc::invalid_config) when `config` cannot be used
    // (password_env naming an unset variable, block_timeout < 1 ms, ...).
    RedisBroker(executor_type ex, RedisBrokerConfig config);
    ~RedisBroker();
    RedisBroker(const RedisBroker&) = delete;
    RedisBroker& operator=(const RedisBroker&) = delete;

    executor_type get_executor() const { return ex_; }
    const RedisBrokerConfig& config() const;
    // "redis at host:port", as error messages name the server.
    std::string endpoint() const;

    // Connects the publishing connection now, so that a wrong address shows at
    // start-up: errc::broker_unavailable naming host:port, within connect_timeout.
    template <class Token>
    auto async_open(Token&& token) {
        return boost::asio::async_initiate<Token, open_signature>(
            [this](auto h) { open_impl(detail::ErasedHandler<void>(std::move(h), ex_)); }, token);
    }

    // XADD to the topic's stream (MAXLEN ~ max_len, or MINID ~ now - ttl with
    // ttl set) and completes with the entry id. Publishes from many coroutines
    // are pipelined on one connection. After a connection loss the publish is
    // retried (reconnecting, with backoff) until command_timeout has passed:
    // it may then be stored twice (same event_id) if the lost attempt had
    // reached Redis; otherwise it fails with errc::broker_unavailable.
    //
    // The event is written out (checked, and encoded as the XADD command) by
    // this call, not kept: neither `topic` nor `event` need outlive it, and
    // nothing is copied but the command's bytes. Invalid arguments complete
    // the operation with the error (nothing is thrown from this call).
    template <class Token>
    auto async_publish(std::string_view topic, const EventData& event, Token&& token) {
        return boost::asio::async_initiate<Token, publish_signature>(
            [this](auto h, PreparedPublish p) {
                publish_impl(std::move(p), detail::ErasedHandler<std::string>(std::move(h), ex_));
            },
            token, prepare_publish(topic, event));
    }

    // Runs a consumer until terminal cancellation through the token's slot
    // (a graceful stop; a second one cuts the shutdown grace short). See
    // boong::Broker for the semantics; connection losses are retried with
    // backoff and do not end the consumer.
    template <class Token>
    auto async_consume(ConsumerOptions options, MessageHandler handler, Token&& token) {
        return boost::asio::async_initiate<Token, consume_signature>(
            [this](auto h, ConsumerOptions o, MessageHandler mh) {
                consume_impl(std::move(o), std::move(mh), detail::ErasedHandler<void>(std::move(h), ex_));
            },
            token, std::move(options), std::move(handler));
    }

    // Runs one raw command on the publishing connection, for tools and tests
    // (XLEN, XPENDING, a hand-made XADD). The reply as JSON: bulk and status
    // strings as strings, integers as numbers, arrays as arrays, nil as null;
    // an error reply completes with errc::protocol_error.
    template <class Token>
    auto async_command(std::vector<std::string> argv, Token&& token) {
        return boost::asio::async_initiate<Token, command_signature>(
            [this](auto h, std::vector<std::string> a) {
                command_impl(std::move(a), detail::ErasedHandler<json>(std::move(h), ex_));
            },
            token, std::move(argv));
    }

    // The dead letters of `topic`, listed, sent back or dropped: see
    // boong::DeadLetterQueue. A redrive is not retried through a connection
    // loss (one that reached Redis must not run twice): it then fails with
    // broker_unavailable, and listing tells what is left.
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

    // How the consumer groups of `topic` stand (XINFO GROUPS; see ConsumerGroupStatus).
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

    // A publish as the XADD command it sends (RESP), or why it cannot be sent.
    struct PreparedPublish {
        std::string command;
        std::size_t topic_offset = 0;  // where the topic's bytes are in `command`
        std::size_t topic_size = 0;
        std::exception_ptr error;
    };
    // Never throws: a problem is kept in `error`.
    PreparedPublish prepare_publish(std::string_view topic, const EventData& event) const noexcept;

    void open_impl(detail::ErasedHandler<void> completion);
    void publish_impl(PreparedPublish publish, detail::ErasedHandler<std::string> completion);
    void consume_impl(ConsumerOptions options, MessageHandler handler, detail::ErasedHandler<void> completion);
    void command_impl(std::vector<std::string> argv, detail::ErasedHandler<json> completion);

    class Source;
    executor_type ex_;
    std::shared_ptr<Shared> shared_;  // config and publishing connection, shared with running consumers
};

static_assert(Broker<RedisBroker>);
static_assert(DeadLetterQueue<RedisBroker>);

}  // namespace boong
