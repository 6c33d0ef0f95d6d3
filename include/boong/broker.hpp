// The Broker concept: how events reach other services.
#pragma once

#include <boong/event.hpp>
#include <boong/observer.hpp>
#include <boong/policy.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace boong {

// One delivery of a message to a consumer.
struct Delivery {
    std::string topic;
    std::string group;
    std::string consumer;
    std::string message_id;  // broker-assigned, unique within the topic
    int delivery_count = 1;  // 1 on first delivery, +1 on each redelivery
    EventData event;
};

// A handler completes normally to acknowledge the message. What throwing does
// depends on what it throws:
//  - boong::Rejection: the message can never succeed; it goes to the dead
//    letters at once.
//  - an error saying a dependency is unavailable (boong::is_unavailable: the
//    store or the broker cannot be reached, or boong::Unavailable): not the
//    message's fault. The consumer keeps the message, stops fetching, and
//    tries it again with backoff (outage_backoff) until the dependency
//    answers; then everything it kept is handled and fetching resumes. Such
//    failures never count towards max_deliveries, however long the outage.
//  - anything else: the message stays unacknowledged, is delivered again after
//    the visibility timeout, and goes to the dead letters once it reached
//    max_deliveries.
using MessageHandler = std::function<boost::asio::awaitable<void>(const Delivery&)>;

// How a consumer handles messages. Declared once: the same settings serve a
// consumer (ConsumerOptions), the event bus (EventBusOptions::consumers) and
// the configuration file's defaults (messageBroker.consumer).
struct ConsumerSettings {
    std::size_t concurrency = 1;                          // handlers in flight at once
    std::chrono::milliseconds visibility_timeout{30000};  // unacked this long -> redelivered
    int max_deliveries = 5;                               // then -> "<topic>.dlq"
    std::chrono::milliseconds shutdown_grace{5000};       // in-flight handlers get this long on stop
    // How often a paused consumer tries one of the messages it keeps while a
    // dependency is unavailable: 100 ms, doubling up to 5 s, +-20 %
    // (attempts is unused: an outage is waited out, however long).
    RetryPolicy outage_backoff{1, std::chrono::milliseconds(100), 2.0, std::chrono::milliseconds(5000), 0.2};
    // Told of every message handled, redelivered or dead-lettered, and of
    // pauses for an outage (metrics, paging); null: none.
    std::shared_ptr<Observer> observer{};
    // How often a consumer with an observer asks the broker how far its group
    // trails (Observer::consumer_backlog: pending, lag, oldest pending); one
    // small query per consumer and interval. Zero: never.
    std::chrono::milliseconds backlog_interval{15000};
};

struct ConsumerOptions {
    std::string topic;
    std::string group;     // consumers of one group share the work; each group sees every message
    std::string consumer;  // this consumer's name within the group
    ConsumerSettings settings{};
};

// The dead-letter topic of a topic.
inline std::string dead_letter_topic(std::string_view topic) { return std::string(topic) + ".dlq"; }

// A Broker publishes events to topics and runs consumers in groups.
//
//  - async_publish(topic, event, token): completes with the message id once the
//    broker holds the message. Signature void(std::exception_ptr, std::string).
//  - async_consume(options, handler, token): runs the consumer until the
//    operation is cancelled (through the token's cancellation slot), which is a
//    graceful stop: no new reads, in-flight handlers finish within
//    shutdown_grace, unfinished messages stay pending for other consumers.
//    Signature void(std::exception_ptr).
//
// Dead letters carry the original event, with metadata.extra holding
// "dead_letter": {"source_topic", "source_message_id", "group", "reason",
// "delivery_count", "at"}. A message that was not decoded (it does not
// decode, or it was quarantined after too many deliveries, see below) is kept
// as the bytes it arrived as.
//
// A message whose deliveries reach max_deliveries without an acknowledgement
// (its handlers kept failing, or its consumers kept dying while handling it)
// is moved to the dead letters when it is next reclaimed, without being
// decoded or handled again: a message that crashes the process is
// quarantined after at most max_deliveries crashes.
template <class B>
concept Broker = requires(B& b, std::string topic, EventData event, ConsumerOptions options,
                          MessageHandler handler) {
    typename B::executor_type;
    { b.get_executor() } -> std::convertible_to<typename B::executor_type>;
    { b.async_publish(topic, event, boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<std::string>>;
    { b.async_consume(options, handler, boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<void>>;
};

// How one consumer group of a topic stands: what operators and backpressure
// look at (both brokers have async_consumer_groups(topic, token), completing
// with void(std::exception_ptr, std::vector<ConsumerGroupStatus>); an unknown
// topic has no groups).
//
// nullopt: the broker cannot tell. RabbitMQ (AMQP 0-9-1) shows a queue's ready
// messages and consumers, never its unacknowledged ones: pending and
// oldest_pending are unknown there.
struct ConsumerGroupStatus {
    std::string group;
    std::size_t consumers = 0;                       // consumers known to the group
    std::optional<std::size_t> pending;              // delivered, not acknowledged yet
    std::optional<std::size_t> lag;                  // not delivered to the group yet
    std::optional<Clock::time_point> oldest_pending;  // when the oldest pending message was published (none pending: nullopt)
    // Messages published to the topic that a length or age limit removed
    // before the group read them: lost to the group. A total the broker keeps
    // (Redis: until the group is created again); 0 on a broker that never
    // removes unread messages (MemoryBroker).
    std::optional<std::size_t> trimmed;
};

// ---- dead letters ----------------------------------------------------------

// One dead letter, as DeadLetterQueue lists it.
struct DeadLetter {
    std::string message_id;         // its id in "<topic>.dlq"
    std::string source_topic;       // the topic it came from (and goes back to)
    std::string source_message_id;  // its id there
    std::string group;              // the consumer group that gave up on it
    std::string reason;             // why
    int delivery_count = 0;         // deliveries it had
    Clock::time_point at{};         // when it was dead-lettered
    std::optional<EventData> event;  // the event, when it decodes (without "dead_letter" in metadata.extra)
    std::string raw;                 // otherwise what the broker held, for people to read (invalid UTF-8 replaced)
};

// Which dead letters of a topic an operation applies to: exactly one of
// `ids` (message ids in the dead-letter topic), `all`, or `before` (those
// dead-lettered before that time).
struct DeadLetterSelection {
    std::vector<std::string> ids{};
    bool all = false;
    std::optional<Clock::time_point> before{};

    static DeadLetterSelection of(std::vector<std::string> ids) { return {std::move(ids), false, std::nullopt}; }
    static DeadLetterSelection everything() { return {{}, true, std::nullopt}; }
    static DeadLetterSelection older_than(Clock::time_point t) { return {{}, false, t}; }
};

// A broker whose dead letters can be listed, sent back and dropped.
//
//  - async_dead_letters(topic, after, max_count, token): the dead letters of
//    `topic` (read from "<topic>.dlq"), oldest first, starting after the
//    message id `after` ("" for the first). void(std::exception_ptr, vector<DeadLetter>).
//  - async_redrive(topic, selection, token): publishes each selected dead
//    letter to `topic` again, exactly as it first arrived (same event id,
//    metadata without "dead_letter"), then removes it from the dead letters;
//    completes with how many went back. Every group of the topic receives it
//    again: idempotent consumers (the event bus's inbox) absorb it where it
//    was already handled. void(std::exception_ptr, std::size_t).
//  - async_drop(topic, selection, token): removes the selected dead letters
//    for good. void(std::exception_ptr, std::size_t).
// An id that is not a dead letter of `topic` is skipped (not counted); a
// selection that names nothing, or more than one way, is invalid_argument.
template <class B>
concept DeadLetterQueue = Broker<B> && requires(B& b, std::string topic, std::string after, std::size_t n,
                                                 DeadLetterSelection selection) {
    { b.async_dead_letters(topic, after, n, boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<std::vector<DeadLetter>>>;
    { b.async_redrive(topic, selection, boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<std::size_t>>;
    { b.async_drop(topic, selection, boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<std::size_t>>;
};

}  // namespace boong
