// The Broker concept: how events reach other services.
#pragma once

#include <boong/event.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <functional>
#include <string>

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

// A handler completes normally to acknowledge the message. Throwing leaves it
// unacknowledged: it is delivered again after the visibility timeout, and moved
// to the dead-letter topic once it reached max_deliveries. Throwing
// boong::Rejection moves it to the dead letters at once (it cannot succeed).
using MessageHandler = std::function<boost::asio::awaitable<void>(const Delivery&)>;

struct ConsumerOptions {
    std::string topic;
    std::string group;     // consumers of one group share the work; each group sees every message
    std::string consumer;  // this consumer's name within the group
    std::size_t concurrency = 1;                          // handlers in flight at once
    std::chrono::milliseconds visibility_timeout{30000};  // unacked this long -> redelivered
    int max_deliveries = 5;                               // then -> "<topic>.dlq"
    std::chrono::milliseconds shutdown_grace{5000};       // in-flight handlers get this long on stop
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
// "delivery_count"}.
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

}  // namespace boong
