// One AMQP connection and the thread that drives it. rabbitmq-c blocks and a
// connection must stay on one thread, so a Link owns a thread of its own:
// everything that touches the connection runs there, as jobs posted from any
// thread, and what the connection delivers (messages, confirms, closes) is
// handed to per-channel listeners on that thread, which post it onwards to
// the io_context. Nothing here blocks an io_context. Private to
// Boong::rabbitmq.
#pragma once

#include <boong/config.hpp>
#include <boong/error.hpp>
#include <boong/event.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

struct amqp_connection_state_t_;
struct amqp_table_t_;

namespace boong::rabbitmq {

using Clock = std::chrono::steady_clock;

// Where a link connects, with the secret resolved.
struct Endpoint {
    RabbitMqBrokerConfig config;
    std::string password;
    // The nodes a link tries in turn: config.nodes, or config.host and port.
    std::size_t node_count() const noexcept { return config.nodes.empty() ? 1 : config.nodes.size(); }
    RabbitMqNode node(std::size_t i) const;  // i modulo node_count()
    // "rabbitmq at host:port"; with several nodes "rabbitmq at h1:p1, h2:p2, ...".
    std::string describe() const;
};

// "host:port" ("[address]:port" for an IPv6 address).
std::string describe(const RabbitMqNode& node);

// A message as RabbitMQ delivered it (basic.deliver, basic.get, basic.return).
struct Message {
    std::uint64_t delivery_tag = 0;
    std::string message_id;        // the message_id property ("" when absent)
    std::string body;
    std::int64_t delivery_count = 0;  // the quorum queue's x-delivery-count header: earlier deliveries
    std::string dead_letter;       // our x-boong-dead-letter header (the record's JSON), when present
    std::string death_reason;      // RabbitMQ's x-first-death-reason, when it dead-lettered the message
    std::string death_queue;       // and x-first-death-queue
    std::int64_t timestamp = 0;    // the timestamp property (seconds), 0 when absent
};

// A message to publish.
// Always mandatory: unroutable is an error (basic.return), never silently dropped.
struct Outgoing {
    std::string exchange;  // declared (fanout, durable) before the first publish to it
    std::string message_id;  // set by the link: a new one for each attempt
    std::string body;
    std::string dead_letter;  // the x-boong-dead-letter header, when not empty
};

// What a channel's owner hears, on the link's thread.
class ChannelListener {
public:
    virtual ~ChannelListener() = default;
    virtual void on_deliver(Message) {}
    // The channel or the whole connection is gone (the reason as an
    // exception): its deliveries' tags mean nothing any more.
    virtual void on_closed(std::exception_ptr) {}
};

class Link;

// The connection as a job sees it, on the link's thread.
class Session {
public:
    amqp_connection_state_t_* connection() const noexcept { return conn_; }
    // Incremented on every (re)connection: a tag from another epoch is stale.
    std::uint64_t epoch() const noexcept { return epoch_; }

    // Opens a channel whose deliveries and closing go to `listener`.
    std::uint16_t open_channel(std::shared_ptr<ChannelListener> listener);
    void close_channel(std::uint16_t channel);
    bool channel_open(std::uint16_t channel) const;

    // Throws Error(protocol_error or broker_unavailable) when `reply` (an
    // amqp_rpc_reply_t) is not normal; `what` names the operation. A channel
    // error closes that channel (its listener hears it).
    void check(const void* reply, const std::string& what, std::uint16_t channel);
    // The same for a library status code.
    void check_status(int status, const std::string& what);

    // Topology, idempotent (a declaration that exists with other arguments
    // is an error naming them).
    void declare_exchange(std::uint16_t channel, const std::string& name);
    // A quorum queue bound to `exchange`, dead-lettering (at least once) to
    // `dead_letter_exchange` after `delivery_limit` unacked deliveries.
    void declare_group_queue(std::uint16_t channel, const std::string& queue, const std::string& exchange,
                             const std::string& dead_letter_exchange, int delivery_limit);
    // A durable queue holding dead letters, bound to `exchange`.
    void declare_dead_letter_queue(std::uint16_t channel, const std::string& queue, const std::string& exchange);
    // Messages ready and consumers of a queue; nullopt when it does not exist
    // (the passive declare closes `channel`, which is then reopened).
    struct QueueStatus {
        std::uint32_t messages = 0;
        std::uint32_t consumers = 0;
    };
    std::optional<QueueStatus> inspect_queue(std::uint16_t& channel, const std::string& queue);

    // basic.get (manual ack): nullopt when the queue is empty.
    std::optional<Message> get(std::uint16_t channel, const std::string& queue);
    void ack(std::uint16_t channel, std::uint64_t tag);
    void nack(std::uint16_t channel, std::uint64_t tag, bool requeue);
    void qos(std::uint16_t channel, std::uint16_t prefetch);
    // basic.consume with manual acks; returns the consumer tag.
    std::string consume(std::uint16_t channel, const std::string& queue);
    void cancel(std::uint16_t channel, const std::string& consumer_tag);

private:
    friend class Link;
    // A durable queue with `arguments` (an amqp_table_t), bound to `exchange`.
    void declare_bound_queue(std::uint16_t channel, const std::string& queue, const std::string& exchange,
                             const ::amqp_table_t_& arguments);
    Session(Link& link, amqp_connection_state_t_* conn, std::uint64_t epoch) : link_(link), conn_(conn), epoch_(epoch) {}
    Link& link_;
    amqp_connection_state_t_* conn_;
    std::uint64_t epoch_;
};

// One connection and its thread. Connects on first need and again after a
// loss (jobs wait meanwhile, up to the connect timeout each), to the
// endpoint's nodes in turn: after a loss, the next node first.
class Link {
public:
    using Job = std::function<void(Session&)>;
    using Failure = std::function<void(std::exception_ptr)>;
    // The error, or the message id it was stored under.
    using Confirmed = std::function<void(std::exception_ptr, std::string)>;

    Link(std::shared_ptr<const Endpoint> endpoint, std::string name);
    ~Link();
    Link(const Link&) = delete;
    Link& operator=(const Link&) = delete;

    // Runs `job` on the link's thread once connected. When the link cannot
    // connect within the connect timeout, or `job` throws, `failed` gets the
    // error instead (on the link's thread). Connection errors inside `job`
    // drop the connection (its listeners hear it).
    void run(Job job, Failure failed);

    // Publishes through the link's confirm channel: `done` runs once
    // RabbitMQ confirmed the message (null error, and the message id), or
    // with the error (a nack, unroutable, not confirmed within the publish
    // timeout). Sent again, under a new id, after a connection loss until
    // then (so it may be stored twice: at least once).
    void publish(Outgoing message, Confirmed done);

    const Endpoint& endpoint() const noexcept { return *endpoint_; }
    // "rabbitmq at host:port" of the node connected to, or to be tried next
    // (on the link's thread).
    std::string where() const;

private:
    friend class Session;
    struct Pending {
        Outgoing message;
        Confirmed done;
        Clock::time_point deadline;
        bool returned = false;
        std::string return_reason;
    };
    struct Task {
        Job job;
        Failure failed;
        Clock::time_point deadline;
    };

    void main();
    bool connect(std::string& why);
    void disconnect(std::exception_ptr why);
    void run_tasks();
    void send_publishes();
    void expire(Clock::time_point now);
    void read_frames();
    void dispatch_method(std::uint16_t channel, std::uint32_t method, void* decoded);
    void confirm(std::uint64_t tag, bool multiple, bool ack);
    // Closes the confirm channel and opens it afresh (after a nack).
    void reopen_confirm_channel();
    // Declares `exchange` once per connection; false (and `p` failed) when refused.
    bool ensure_exchange(Pending& p);
    void wait_for_io(std::chrono::milliseconds limit);
    void wake();
    std::chrono::milliseconds connect_backoff() const;

    std::shared_ptr<const Endpoint> endpoint_;
    std::string name_;

    mutable std::mutex mutex_;  // guards the queues below and blocked_
    std::deque<Task> tasks_;
    std::deque<Pending> to_send_;
    std::optional<std::string> blocked_;
    bool stopping_ = false;

    // The link thread's own.
    amqp_connection_state_t_* conn_ = nullptr;
    std::uint64_t epoch_ = 0;
    std::map<std::uint16_t, std::shared_ptr<ChannelListener>> channels_;
    std::uint16_t next_channel_ = 2;  // 1 is the confirm channel
    bool confirm_ready_ = false;
    bool reopen_confirm_ = false;  // a nack came: a fresh confirm channel once its publishes are settled
    std::uint64_t next_tag_ = 1;
    std::uint64_t unrouted_epoch_ = 0;  // the connection on which the unrouted queue was declared
    std::uint16_t admin_channel_ = 0;  // declarations for publishes; 0: none open
    std::set<std::string> declared_;   // exchanges declared on this connection
    IdGenerator ids_;
    std::map<std::uint64_t, Pending> unconfirmed_;
    std::string last_failure_;  // the last reason connecting failed, for jobs that time out
    std::string last_connect_error_;  // the last connect() error, for logging each new one once
    int connect_failures_ = 0;  // in a row, over every node
    std::size_t node_ = 0;      // the node connected to, or to try next: endpoint_->node(node_)
    Clock::time_point next_connect_{};

    int wake_fd_ = -1;  // an eventfd: written by any thread, polled by the link's
    std::thread thread_;
};

}  // namespace boong::rabbitmq
