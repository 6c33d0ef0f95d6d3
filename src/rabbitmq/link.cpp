#include "rabbitmq/link.hpp"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

#include <spdlog/spdlog.h>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace boong::rabbitmq {

namespace {

using std::chrono::milliseconds;

amqp_bytes_t bytes(const std::string& s) {
    return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};  // rabbitmq-c's API is not const-correct
}

std::string text(amqp_bytes_t b) { return b.len ? std::string(static_cast<const char*>(b.bytes), b.len) : std::string(); }

timeval to_timeval(milliseconds d) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(d.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
    return tv;
}

amqp_table_entry_t entry(const char* key, amqp_field_value_t value) {
    amqp_table_entry_t e{};
    e.key = amqp_cstring_bytes(key);
    e.value = value;
    return e;
}
// The value points at `s`'s bytes: `s` must outlive the table (no temporaries).
amqp_field_value_t utf8(const std::string& s) {
    amqp_field_value_t v{};
    v.kind = AMQP_FIELD_KIND_UTF8;
    v.value.bytes = bytes(s);
    return v;
}
amqp_field_value_t utf8(std::string&&) = delete;
amqp_field_value_t utf8(const char* literal) {
    amqp_field_value_t v{};
    v.kind = AMQP_FIELD_KIND_UTF8;
    v.value.bytes = amqp_cstring_bytes(literal);
    return v;
}
amqp_field_value_t i64(std::int64_t n) {
    amqp_field_value_t v{};
    v.kind = AMQP_FIELD_KIND_I64;
    v.value.i64 = n;
    return v;
}
amqp_field_value_t boolean(bool b) {
    amqp_field_value_t v{};
    v.kind = AMQP_FIELD_KIND_BOOLEAN;
    v.value.boolean = b ? 1 : 0;
    return v;
}

std::optional<std::int64_t> as_integer(const amqp_field_value_t& v) {
    switch (v.kind) {
        case AMQP_FIELD_KIND_I8: return v.value.i8;
        case AMQP_FIELD_KIND_U8: return v.value.u8;
        case AMQP_FIELD_KIND_I16: return v.value.i16;
        case AMQP_FIELD_KIND_U16: return v.value.u16;
        case AMQP_FIELD_KIND_I32: return v.value.i32;
        case AMQP_FIELD_KIND_U32: return v.value.u32;
        case AMQP_FIELD_KIND_I64: return v.value.i64;
        case AMQP_FIELD_KIND_U64: return static_cast<std::int64_t>(v.value.u64);
        default: return std::nullopt;
    }
}

std::string as_text(const amqp_field_value_t& v) {
    if (v.kind == AMQP_FIELD_KIND_UTF8 || v.kind == AMQP_FIELD_KIND_BYTES) return text(v.value.bytes);
    return {};
}

// The fields of a message we read.
Message to_message(const amqp_message_t& m) {
    Message out;
    out.body = text(m.body);
    const auto& p = m.properties;
    if (p._flags & AMQP_BASIC_MESSAGE_ID_FLAG) out.message_id = text(p.message_id);
    if (p._flags & AMQP_BASIC_TIMESTAMP_FLAG) out.timestamp = static_cast<std::int64_t>(p.timestamp);
    if (p._flags & AMQP_BASIC_HEADERS_FLAG) {
        for (int i = 0; i < p.headers.num_entries; ++i) {
            const auto& h = p.headers.entries[i];
            const auto key = text(h.key);
            if (key == "x-delivery-count") {
                out.delivery_count = as_integer(h.value).value_or(0);
            } else if (key == "x-boong-dead-letter") {
                out.dead_letter = as_text(h.value);
            } else if (key == "x-first-death-reason") {
                out.death_reason = as_text(h.value);
            } else if (key == "x-first-death-queue") {
                out.death_queue = as_text(h.value);
            }
        }
    }
    return out;
}

Error unavailable(const std::string& where, const std::string& what) {
    return Error(errc::broker_unavailable, where + ": " + what);
}

// "code text" of a server's close.
std::string close_reason(const amqp_rpc_reply_t& r) {
    switch (r.reply.id) {
        case AMQP_CONNECTION_CLOSE_METHOD: {
            const auto* c = static_cast<const amqp_connection_close_t*>(r.reply.decoded);
            return "connection closed by the server: " + std::to_string(c->reply_code) + " " + text(c->reply_text);
        }
        case AMQP_CHANNEL_CLOSE_METHOD: {
            const auto* c = static_cast<const amqp_channel_close_t*>(r.reply.decoded);
            return std::to_string(c->reply_code) + " " + text(c->reply_text);
        }
        default: return "unexpected server method " + std::to_string(r.reply.id);
    }
}

// Thrown out of a job when the connection itself failed (not a channel).
struct ConnectionLost : Error {
    using Error::Error;
};

}  // namespace

std::string describe(const RabbitMqNode& node) {
    const bool ipv6 = node.host.find(':') != std::string::npos;
    return (ipv6 ? "[" + node.host + "]" : node.host) + ":" + std::to_string(node.port);
}

RabbitMqNode Endpoint::node(std::size_t i) const {
    if (config.nodes.empty()) return RabbitMqNode{config.host, config.port};
    return config.nodes[i % config.nodes.size()];
}

std::string Endpoint::describe() const {
    std::string out = "rabbitmq at ";
    for (std::size_t i = 0; i < node_count(); ++i) out += (i ? ", " : "") + rabbitmq::describe(node(i));
    return out;
}

// ---- Session ------------------------------------------------------------------

std::uint16_t Session::open_channel(std::shared_ptr<ChannelListener> listener) {
    auto& l = link_;
    // Channel numbers are reused once closed; 1 is the confirm channel.
    std::uint16_t ch = 0;
    for (std::uint32_t tries = 0; tries < 65533 && ch == 0; ++tries) {
        const std::uint16_t candidate = l.next_channel_;
        l.next_channel_ = static_cast<std::uint16_t>(l.next_channel_ >= 65000 ? 2 : l.next_channel_ + 1);
        if (!l.channels_.count(candidate)) ch = candidate;
    }
    if (ch == 0) throw Error(errc::protocol_error, l.where() + ": no free channel");
    amqp_channel_open(conn_, ch);
    const auto reply = amqp_get_rpc_reply(conn_);
    check(&reply, "opening a channel", ch);
    l.channels_[ch] = std::move(listener);
    return ch;
}

void Session::close_channel(std::uint16_t channel) {
    auto& l = link_;
    if (!l.channels_.erase(channel)) return;
    const auto reply = amqp_channel_close(conn_, channel, AMQP_REPLY_SUCCESS);
    check(&reply, "closing a channel", 0);
}

bool Session::channel_open(std::uint16_t channel) const { return link_.channels_.count(channel) > 0; }

void Session::check(const void* reply_ptr, const std::string& what, std::uint16_t channel) {
    const auto& r = *static_cast<const amqp_rpc_reply_t*>(reply_ptr);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return;
    const auto here = link_.where();
    switch (r.reply_type) {
        case AMQP_RESPONSE_NORMAL: return;
        case AMQP_RESPONSE_NONE: throw ConnectionLost(errc::broker_unavailable, here + ": " + what + ": no reply");
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            throw ConnectionLost(errc::broker_unavailable,
                                 here + ": " + what + ": " + amqp_error_string2(r.library_error));
        case AMQP_RESPONSE_SERVER_EXCEPTION: break;
    }
    const auto reason = close_reason(r);
    if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        // The channel is gone; the connection lives on.
        amqp_channel_close_ok_t ok{};
        amqp_send_method(conn_, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        Error error(errc::protocol_error, here + ": " + what + " refused: " + reason);
        if (auto it = link_.channels_.find(channel); it != link_.channels_.end()) {
            auto listener = std::move(it->second);
            link_.channels_.erase(it);
            if (listener) listener->on_closed(std::make_exception_ptr(error));
        }
        if (channel == 1) link_.confirm_ready_ = false;
        throw error;
    }
    if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_ok_t ok{};
        amqp_send_method(conn_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    }
    throw ConnectionLost(errc::broker_unavailable, here + ": " + what + ": " + reason);
}

void Session::check_status(int status, const std::string& what) {
    if (status == AMQP_STATUS_OK) return;
    throw ConnectionLost(errc::broker_unavailable,
                         link_.where() + ": " + what + ": " + amqp_error_string2(status));
}

void Session::declare_exchange(std::uint16_t channel, const std::string& name) {
    const auto& unrouted = link_.endpoint_->config.unrouted_queue;
    if (unrouted.empty()) {
        amqp_exchange_declare(conn_, channel, bytes(name), amqp_cstring_bytes("fanout"), 0, 1, 0, 0, amqp_empty_table);
        const auto reply = amqp_get_rpc_reply(conn_);
        check(&reply, "declaring exchange '" + name + "'", channel);
        return;
    }
    // What no queue of the topic takes goes to the unrouted queue (kept, not
    // refused), through an alternate exchange declared first.
    if (link_.unrouted_epoch_ != epoch_) {
        amqp_exchange_declare(conn_, channel, bytes(unrouted), amqp_cstring_bytes("fanout"), 0, 1, 0, 0,
                              amqp_empty_table);
        const auto reply = amqp_get_rpc_reply(conn_);
        check(&reply, "declaring exchange '" + unrouted + "'", channel);
        amqp_table_entry_t args[] = {
            entry("x-queue-type", utf8("quorum")),
            entry("x-message-ttl", i64(link_.endpoint_->config.unrouted_ttl.count())),
        };
        declare_bound_queue(channel, unrouted, unrouted, amqp_table_t{static_cast<int>(std::size(args)), args});
        link_.unrouted_epoch_ = epoch_;
    }
    if (name == unrouted) return;
    amqp_table_entry_t args[] = {entry("alternate-exchange", utf8(unrouted))};
    amqp_exchange_declare(conn_, channel, bytes(name), amqp_cstring_bytes("fanout"), 0, 1, 0, 0,
                          amqp_table_t{static_cast<int>(std::size(args)), args});
    const auto reply = amqp_get_rpc_reply(conn_);
    check(&reply, "declaring exchange '" + name + "' (alternate exchange '" + unrouted + "')", channel);
}

void Session::declare_bound_queue(std::uint16_t channel, const std::string& queue, const std::string& exchange,
                                  const amqp_table_t& arguments) {
    amqp_queue_declare(conn_, channel, bytes(queue), 0, 1, 0, 0, arguments);
    const auto reply = amqp_get_rpc_reply(conn_);
    check(&reply, "declaring queue '" + queue + "'", channel);
    amqp_queue_bind(conn_, channel, bytes(queue), bytes(exchange), amqp_empty_bytes, amqp_empty_table);
    const auto bound = amqp_get_rpc_reply(conn_);
    check(&bound, "binding queue '" + queue + "' to '" + exchange + "'", channel);
}

void Session::declare_group_queue(std::uint16_t channel, const std::string& queue, const std::string& exchange,
                                  const std::string& dead_letter_exchange, int delivery_limit) {
    amqp_table_entry_t args[] = {
        entry("x-queue-type", utf8("quorum")),
        entry("x-delivery-limit", i64(delivery_limit)),
        entry("x-dead-letter-exchange", utf8(dead_letter_exchange)),
        // At-least-once dead-lettering needs publishers refused (not
        // messages dropped) when the queue is full.
        entry("x-dead-letter-strategy", utf8("at-least-once")),
        entry("x-overflow", utf8("reject-publish")),
    };
    declare_bound_queue(channel, queue, exchange, amqp_table_t{static_cast<int>(std::size(args)), args});
}

void Session::declare_dead_letter_queue(std::uint16_t channel, const std::string& queue, const std::string& exchange) {
    amqp_table_entry_t args[] = {entry("x-queue-type", utf8("quorum"))};
    declare_bound_queue(channel, queue, exchange, amqp_table_t{static_cast<int>(std::size(args)), args});
}

std::optional<Session::QueueStatus> Session::inspect_queue(std::uint16_t& channel, const std::string& queue) {
    const auto* ok = amqp_queue_declare(conn_, channel, bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    const auto reply = amqp_get_rpc_reply(conn_);
    if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
        static_cast<const amqp_channel_close_t*>(reply.reply.decoded)->reply_code == AMQP_NOT_FOUND) {
        // The passive declare closed the channel: open another in its place.
        auto listener = link_.channels_.count(channel) ? link_.channels_[channel] : nullptr;
        amqp_channel_close_ok_t close_ok{};
        amqp_send_method(conn_, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok);
        link_.channels_.erase(channel);
        channel = open_channel(listener);
        return std::nullopt;
    }
    check(&reply, "inspecting queue '" + queue + "'", channel);
    return QueueStatus{ok->message_count, ok->consumer_count};
}

std::optional<Message> Session::get(std::uint16_t channel, const std::string& queue) {
    const auto reply = amqp_basic_get(conn_, channel, bytes(queue), 0);
    check(&reply, "reading queue '" + queue + "'", channel);
    if (reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return std::nullopt;
    const auto* ok = static_cast<const amqp_basic_get_ok_t*>(reply.reply.decoded);
    const std::uint64_t tag = ok->delivery_tag;
    amqp_message_t m{};
    const auto read = amqp_read_message(conn_, channel, &m, 0);
    check(&read, "reading a message of '" + queue + "'", channel);
    auto out = to_message(m);
    amqp_destroy_message(&m);
    out.delivery_tag = tag;
    return out;
}

void Session::ack(std::uint16_t channel, std::uint64_t tag) {
    check_status(amqp_basic_ack(conn_, channel, tag, 0), "acknowledging a message");
}

void Session::nack(std::uint16_t channel, std::uint64_t tag, bool requeue) {
    check_status(amqp_basic_nack(conn_, channel, tag, 0, requeue ? 1 : 0), "returning a message");
}

void Session::qos(std::uint16_t channel, std::uint16_t prefetch) {
    amqp_basic_qos(conn_, channel, 0, prefetch, 0);
    const auto reply = amqp_get_rpc_reply(conn_);
    check(&reply, "setting the prefetch", channel);
}

std::string Session::consume(std::uint16_t channel, const std::string& queue) {
    const auto* ok = amqp_basic_consume(conn_, channel, bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    const auto reply = amqp_get_rpc_reply(conn_);
    check(&reply, "consuming from '" + queue + "'", channel);
    return text(ok->consumer_tag);
}

void Session::cancel(std::uint16_t channel, const std::string& consumer_tag) {
    amqp_basic_cancel(conn_, channel, bytes(consumer_tag));
    const auto reply = amqp_get_rpc_reply(conn_);
    check(&reply, "cancelling a consumer", channel);
}

// ---- Link ---------------------------------------------------------------------

Link::Link(std::shared_ptr<const Endpoint> endpoint, std::string name)
    : endpoint_(std::move(endpoint)), name_(std::move(name)) {
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "rabbitmq broker: eventfd");
    thread_ = std::thread([this] { main(); });
}

Link::~Link() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake();
    thread_.join();
    ::close(wake_fd_);
}

void Link::run(Job job, Failure failed) {
    {
        std::lock_guard lock(mutex_);
        tasks_.push_back(Task{std::move(job), std::move(failed), Clock::now() + endpoint_->config.connect_timeout});
    }
    wake();
}

void Link::publish(Outgoing message, Confirmed done) {
    {
        std::lock_guard lock(mutex_);
        Pending p;
        p.message = std::move(message);
        p.done = std::move(done);
        p.deadline = Clock::now() + endpoint_->config.publish_timeout;
        to_send_.push_back(std::move(p));
    }
    wake();
}

void Link::wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
}

std::string Link::where() const { return "rabbitmq at " + describe(endpoint_->node(node_)); }

std::chrono::milliseconds Link::connect_backoff() const {
    // 100 ms doubling to 2 s per round of failures over every node: a
    // restarting server is found soon, a dead one is not hammered.
    const int rounds = connect_failures_ / static_cast<int>(endpoint_->node_count());
    const int shift = std::min(rounds, 5);
    return std::min(milliseconds(2000), milliseconds(100) * (1 << shift));
}

bool Link::connect(std::string& why) {
    const auto& c = endpoint_->config;
    const auto node = endpoint_->node(node_);
    amqp_connection_state_t conn = amqp_new_connection();
    if (!conn) {
        why = "out of memory";
        return false;
    }
    auto fail = [&](std::string what) {
        why = std::move(what);
        amqp_destroy_connection(conn);
        return false;
    };
    amqp_socket_t* socket = c.tls ? amqp_ssl_socket_new(conn) : amqp_tcp_socket_new(conn);
    if (!socket) return fail("cannot create a socket");
    if (c.tls) {
        if (!c.ca_file.empty() && amqp_ssl_socket_set_cacert(socket, c.ca_file.c_str()) != AMQP_STATUS_OK)
            return fail("cannot read the CA file '" + c.ca_file + "'");
        if (!c.cert_file.empty() &&
            amqp_ssl_socket_set_key(socket, c.cert_file.c_str(), c.key_file.c_str()) != AMQP_STATUS_OK)
            return fail("cannot read the client certificate '" + c.cert_file + "' or its key");
        amqp_ssl_socket_set_verify_peer(socket, 1);
        amqp_ssl_socket_set_verify_hostname(socket, c.verify_hostname ? 1 : 0);
    }
    auto timeout = to_timeval(c.connect_timeout);
    amqp_set_handshake_timeout(conn, &timeout);
    amqp_set_rpc_timeout(conn, &timeout);
    if (const int s = amqp_socket_open_noblock(socket, node.host.c_str(), node.port, &timeout); s != AMQP_STATUS_OK)
        return fail(std::string("cannot connect: ") + amqp_error_string2(s));
    // Ask to be told when a resource alarm blocks us, and when a queue we
    // consume is deleted.
    amqp_table_entry_t capabilities[] = {entry("connection.blocked", boolean(true)),
                                         entry("consumer_cancel_notify", boolean(true)),
                                         entry("authentication_failure_close", boolean(true))};
    amqp_field_value_t caps{};
    caps.kind = AMQP_FIELD_KIND_TABLE;
    caps.value.table = amqp_table_t{static_cast<int>(std::size(capabilities)), capabilities};
    const std::string product = "boong (" + name_ + ")";
    amqp_table_entry_t props[] = {entry("capabilities", caps), entry("connection_name", utf8(product))};
    const amqp_table_t properties{static_cast<int>(std::size(props)), props};
    const auto login =
        amqp_login_with_properties(conn, c.vhost.c_str(), 0, AMQP_DEFAULT_FRAME_SIZE,
                                   static_cast<int>(c.heartbeat.count()), &properties, AMQP_SASL_METHOD_PLAIN,
                                   c.username.c_str(), endpoint_->password.c_str());
    if (login.reply_type != AMQP_RESPONSE_NORMAL) {
        std::string reason = login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
                                 ? amqp_error_string2(login.library_error)
                                 : (login.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION ? close_reason(login)
                                                                                       : std::string("no reply"));
        return fail("login as '" + c.username + "' on vhost '" + c.vhost + "' failed: " + reason);
    }
    // The confirm channel.
    amqp_channel_open(conn, 1);
    auto r = amqp_get_rpc_reply(conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) return fail("cannot open a channel");
    amqp_confirm_select(conn, 1);
    r = amqp_get_rpc_reply(conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) return fail("cannot put the channel in confirm mode");
    conn_ = conn;
    ++epoch_;
    confirm_ready_ = true;
    reopen_confirm_ = false;
    next_tag_ = 1;
    {
        std::lock_guard lock(mutex_);
        blocked_.reset();
    }
    return true;
}

void Link::disconnect(std::exception_ptr why) {
    if (!conn_) return;
    amqp_destroy_connection(conn_);  // closes the socket; no goodbye to a server that may be gone
    conn_ = nullptr;
    // In a cluster, the next connection starts with the next node: the one
    // lost is the likeliest to be down (it is tried last).
    node_ = (node_ + 1) % endpoint_->node_count();
    confirm_ready_ = false;
    admin_channel_ = 0;
    declared_.clear();
    auto channels = std::move(channels_);
    channels_.clear();
    for (auto& [ch, listener] : channels)
        if (listener) listener->on_closed(why);
    // Unconfirmed publishes go out again on the next connection (at least
    // once: the lost one may have been stored), oldest first.
    std::lock_guard lock(mutex_);
    for (auto it = unconfirmed_.rbegin(); it != unconfirmed_.rend(); ++it) {
        it->second.returned = false;
        to_send_.push_front(std::move(it->second));
    }
    unconfirmed_.clear();
}

void Link::run_tasks() {
    std::deque<Task> tasks;
    {
        std::lock_guard lock(mutex_);
        tasks.swap(tasks_);
    }
    while (!tasks.empty()) {
        auto task = std::move(tasks.front());
        tasks.pop_front();
        if (!conn_) {
            // Not connected (and not connecting in time): keep it until its deadline.
            if (Clock::now() >= task.deadline) {
                task.failed(std::make_exception_ptr(
                    unavailable(endpoint_->describe(), "not reachable within " +
                                                std::to_string(endpoint_->config.connect_timeout.count()) +
                                                " ms: " + last_failure_)));
            } else {
                std::lock_guard lock(mutex_);
                tasks_.push_back(std::move(task));
            }
            continue;
        }
        try {
            Session session(*this, conn_, epoch_);
            task.job(session);
        } catch (const ConnectionLost& e) {
            last_failure_ = e.what();
            disconnect(std::current_exception());
            task.failed(std::current_exception());
        } catch (...) {
            task.failed(std::current_exception());
        }
    }
}

void Link::send_publishes() {
    if (!conn_ || !confirm_ready_) return;
    if (reopen_confirm_) {
        if (!unconfirmed_.empty()) return;  // their confirms come on the present channel
        reopen_confirm_channel();
    }
    for (;;) {
        Pending p;
        {
            std::lock_guard lock(mutex_);
            if (to_send_.empty() || blocked_ || unconfirmed_.size() >= endpoint_->config.max_unconfirmed) return;
            p = std::move(to_send_.front());
            to_send_.pop_front();
        }
        if (!ensure_exchange(p)) {
            if (!conn_) return;  // declaring lost the connection: p went back to the queue
            continue;            // refused: p failed
        }
        p.message.message_id = ids_.next();
        amqp_basic_properties_t props{};
        props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                       AMQP_BASIC_TIMESTAMP_FLAG;
        props.content_type = amqp_cstring_bytes("application/json");
        props.delivery_mode = 2;  // persistent
        props.message_id = bytes(p.message.message_id);
        props.timestamp = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                .count());
        amqp_table_entry_t headers[] = {entry("x-boong-dead-letter", utf8(p.message.dead_letter))};
        if (!p.message.dead_letter.empty()) {
            props._flags |= AMQP_BASIC_HEADERS_FLAG;
            props.headers = amqp_table_t{1, headers};
        }
        const int status = amqp_basic_publish(conn_, 1, bytes(p.message.exchange), amqp_empty_bytes, /*mandatory*/ 1,
                                              0, &props, bytes(p.message.body));
        if (status != AMQP_STATUS_OK) {
            {
                std::lock_guard lock(mutex_);
                to_send_.push_front(std::move(p));
            }
            last_failure_ = std::string("publishing failed: ") + amqp_error_string2(status);
            disconnect(std::make_exception_ptr(unavailable(where(), last_failure_)));
            return;
        }
        unconfirmed_.emplace(next_tag_++, std::move(p));
    }
}

bool Link::ensure_exchange(Pending& p) {
    if (declared_.count(p.message.exchange)) return true;
    try {
        Session s(*this, conn_, epoch_);
        if (admin_channel_ == 0 || !s.channel_open(admin_channel_)) admin_channel_ = s.open_channel(nullptr);
        s.declare_exchange(admin_channel_, p.message.exchange);
        declared_.insert(p.message.exchange);
        return true;
    } catch (const ConnectionLost& e) {
        {
            std::lock_guard lock(mutex_);
            to_send_.push_front(std::move(p));
        }
        last_failure_ = e.what();
        disconnect(std::current_exception());
        return false;
    } catch (...) {
        admin_channel_ = 0;  // a refused declaration closed it
        p.done(std::current_exception(), "");
        return false;
    }
}

// RabbitMQ (3.10) keeps a client of each quorum queue a channel publishes
// to, made at the channel's first publish to it: when that publish finds the
// queue's leader on a node that is down (a crash, before the others elected
// another), it is nacked and so is every later one on that channel, as long
// as that node stays down. A nack therefore retires the confirm channel
// (once nothing sent on it awaits its confirm): the next publishes go on a
// fresh channel, which finds the queue's present leader.
void Link::reopen_confirm_channel() {
    spdlog::debug("rabbitmq broker: {}: a publish was refused (nack): opening a fresh publishing channel", name_);
    reopen_confirm_ = false;
    confirm_ready_ = false;
    auto fail = [&](const char* what) {
        return ConnectionLost(errc::broker_unavailable, where() + ": " + what + " the publishing channel failed");
    };
    if (amqp_channel_close(conn_, 1, AMQP_REPLY_SUCCESS).reply_type != AMQP_RESPONSE_NORMAL) throw fail("closing");
    amqp_channel_open(conn_, 1);
    if (amqp_get_rpc_reply(conn_).reply_type != AMQP_RESPONSE_NORMAL) throw fail("reopening");
    amqp_confirm_select(conn_, 1);
    if (amqp_get_rpc_reply(conn_).reply_type != AMQP_RESPONSE_NORMAL) throw fail("confirm mode on");
    next_tag_ = 1;
    confirm_ready_ = true;
}

void Link::confirm(std::uint64_t tag, bool multiple, bool ack) {
    if (!ack) reopen_confirm_ = true;
    auto settle = [&](Pending& p) {
        std::exception_ptr error;
        if (p.returned) {
            error = std::make_exception_ptr(Error(
                errc::invalid_argument, where() + ": message " + p.message.message_id + " to '" +
                                            p.message.exchange + "' is unroutable (" + p.return_reason +
                                            "): no queue is bound to the exchange; declare the topic's consumer "
                                            "groups first, or set unrouted_queue to keep such messages"));
        } else if (!ack) {
            error = std::make_exception_ptr(unavailable(
                where(), "message " + p.message.message_id + " to '" + p.message.exchange +
                                "' was refused (nack): a queue is full or failed; try again"));
        }
        p.done(error, error ? std::string() : p.message.message_id);
    };
    if (multiple) {
        auto end = unconfirmed_.upper_bound(tag);
        for (auto it = unconfirmed_.begin(); it != end; ++it) settle(it->second);
        unconfirmed_.erase(unconfirmed_.begin(), end);
    } else if (auto it = unconfirmed_.find(tag); it != unconfirmed_.end()) {
        settle(it->second);
        unconfirmed_.erase(it);
    }
}

void Link::expire(Clock::time_point now) {
    std::vector<Pending> expired;
    {
        std::lock_guard lock(mutex_);
        const std::string why = blocked_ ? "the connection is blocked by RabbitMQ (" + *blocked_ + ")"
                                         : (conn_ ? "not confirmed in time" : "not reachable: " + last_failure_);
        for (auto it = to_send_.begin(); it != to_send_.end();) {
            if (it->deadline <= now) {
                it->return_reason = why;
                expired.push_back(std::move(*it));
                it = to_send_.erase(it);
            } else {
                ++it;
            }
        }
    }
    std::optional<std::string> blocked;
    {
        std::lock_guard lock(mutex_);
        blocked = blocked_;
    }
    for (auto it = unconfirmed_.begin(); it != unconfirmed_.end();) {
        if (it->second.deadline <= now) {
            it->second.return_reason = blocked ? "sent, not confirmed: RabbitMQ blocks publishing (" + *blocked + ")"
                                               : "sent, not confirmed in time";
            expired.push_back(std::move(it->second));
            it = unconfirmed_.erase(it);
        } else {
            ++it;
        }
    }
    for (auto& p : expired) {
        p.done(std::make_exception_ptr(unavailable(
            conn_ ? where() : endpoint_->describe(), "publish to '" + p.message.exchange + "' failed within " +
                            std::to_string(endpoint_->config.publish_timeout.count()) + " ms: " + p.return_reason)), "");
    }
}

void Link::dispatch_method(std::uint16_t channel, std::uint32_t method, void* decoded) {
    switch (method) {
        case AMQP_BASIC_DELIVER_METHOD: {
            const auto* d = static_cast<const amqp_basic_deliver_t*>(decoded);
            const std::uint64_t tag = d->delivery_tag;
            amqp_message_t m{};
            const auto r = amqp_read_message(conn_, channel, &m, 0);
            Session s(*this, conn_, epoch_);
            s.check(&r, "reading a delivery", channel);
            auto msg = to_message(m);
            amqp_destroy_message(&m);
            msg.delivery_tag = tag;
            if (auto it = channels_.find(channel); it != channels_.end() && it->second) {
                it->second->on_deliver(std::move(msg));
            }
            return;
        }
        case AMQP_BASIC_ACK_METHOD: {
            const auto* a = static_cast<const amqp_basic_ack_t*>(decoded);
            if (channel == 1) confirm(a->delivery_tag, a->multiple != 0, true);
            return;
        }
        case AMQP_BASIC_NACK_METHOD: {
            const auto* n = static_cast<const amqp_basic_nack_t*>(decoded);
            if (channel == 1) confirm(n->delivery_tag, n->multiple != 0, false);
            return;
        }
        case AMQP_BASIC_RETURN_METHOD: {
            const auto* ret = static_cast<const amqp_basic_return_t*>(decoded);
            const std::string reason = std::to_string(ret->reply_code) + " " + text(ret->reply_text);
            amqp_message_t m{};
            const auto r = amqp_read_message(conn_, channel, &m, 0);
            Session s(*this, conn_, epoch_);
            s.check(&r, "reading a returned message", channel);
            const auto id = (m.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) ? text(m.properties.message_id) : "";
            amqp_destroy_message(&m);
            // The confirm that follows settles it, as an error.
            for (auto& [tag, p] : unconfirmed_) {
                if (p.message.message_id == id && !p.returned) {
                    p.returned = true;
                    p.return_reason = reason;
                    break;
                }
            }
            return;
        }
        case AMQP_BASIC_CANCEL_METHOD: {
            // The server cancelled a consumer (its queue was deleted).
            auto it = channels_.find(channel);
            if (it == channels_.end()) return;
            auto listener = std::move(it->second);
            channels_.erase(it);
            amqp_channel_close(conn_, channel, AMQP_REPLY_SUCCESS);
            if (listener)
                listener->on_closed(std::make_exception_ptr(
                    unavailable(where(), "the server cancelled the consumer (its queue was deleted)")));
            return;
        }
        case AMQP_CHANNEL_CLOSE_METHOD: {
            const auto* c = static_cast<const amqp_channel_close_t*>(decoded);
            const std::string reason = std::to_string(c->reply_code) + " " + text(c->reply_text);
            amqp_channel_close_ok_t ok{};
            amqp_send_method(conn_, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
            spdlog::warn("rabbitmq broker: {}: channel {} closed by the server: {}", name_, channel, reason);
            if (channel == 1) {
                // The confirm channel: start afresh on a new connection.
                throw ConnectionLost(errc::broker_unavailable,
                                     where() + ": the publishing channel was closed: " + reason);
            }
            if (auto it = channels_.find(channel); it != channels_.end()) {
                auto listener = std::move(it->second);
                channels_.erase(it);
                if (listener)
                    listener->on_closed(std::make_exception_ptr(
                        Error(errc::protocol_error, where() + ": channel closed: " + reason)));
            }
            return;
        }
        case AMQP_CONNECTION_CLOSE_METHOD: {
            const auto* c = static_cast<const amqp_connection_close_t*>(decoded);
            const std::string reason = std::to_string(c->reply_code) + " " + text(c->reply_text);
            amqp_connection_close_ok_t ok{};
            amqp_send_method(conn_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            throw ConnectionLost(errc::broker_unavailable, where() + ": connection closed: " + reason);
        }
        case AMQP_CONNECTION_BLOCKED_METHOD: {
            const auto* b = static_cast<const amqp_connection_blocked_t*>(decoded);
            const auto reason = text(b->reason);
            spdlog::warn("rabbitmq broker: {}: RabbitMQ blocks publishing ({}); publishes wait, up to the publish "
                         "timeout",
                         name_, reason);
            std::lock_guard lock(mutex_);
            blocked_ = reason.empty() ? std::string("resource alarm") : reason;
            return;
        }
        case AMQP_CONNECTION_UNBLOCKED_METHOD: {
            spdlog::info("rabbitmq broker: {}: RabbitMQ unblocked publishing", name_);
            std::lock_guard lock(mutex_);
            blocked_.reset();
            return;
        }
        default: return;  // basic.cancel-ok, qos-ok and the like: nothing to do
    }
}

void Link::read_frames() {
    for (;;) {
        amqp_frame_t frame{};
        timeval zero{};
        const int status = amqp_simple_wait_frame_noblock(conn_, &frame, &zero);
        if (status == AMQP_STATUS_TIMEOUT) break;
        if (status != AMQP_STATUS_OK)
            throw ConnectionLost(errc::broker_unavailable,
                                 where() + ": connection lost: " + amqp_error_string2(status));
        if (frame.frame_type == AMQP_FRAME_METHOD)
            dispatch_method(frame.channel, frame.payload.method.id, frame.payload.method.decoded);
    }
    amqp_maybe_release_buffers(conn_);
}

void Link::wait_for_io(std::chrono::milliseconds limit) {
    if (conn_ && (amqp_frames_enqueued(conn_) || amqp_data_in_buffer(conn_))) return;
    pollfd fds[2]{};
    fds[0].fd = wake_fd_;
    fds[0].events = POLLIN;
    nfds_t n = 1;
    if (conn_) {
        fds[1].fd = amqp_get_sockfd(conn_);
        fds[1].events = POLLIN;
        n = 2;
    }
    ::poll(fds, n, static_cast<int>(limit.count()));
    if (fds[0].revents & POLLIN) {
        std::uint64_t v = 0;
        [[maybe_unused]] const auto r = ::read(wake_fd_, &v, sizeof v);
    }
}

void Link::main() {
    for (;;) {
        bool need_connection = false;
        {
            std::lock_guard lock(mutex_);
            if (stopping_) break;
            need_connection = !tasks_.empty() || !to_send_.empty() || !channels_.empty();
        }
        const auto now = Clock::now();
        if (!conn_ && need_connection && now >= next_connect_) {
            std::string why;
            const auto count = endpoint_->node_count();
            if (connect(why)) {
                if (connect_failures_ > 0 || epoch_ > 1)
                    spdlog::info("rabbitmq broker: {}: connected to {} again", name_, where());
                connect_failures_ = 0;
                last_connect_error_.clear();
            } else {
                // Once per node at first, then each new reason once (a long outage logs little).
                if (connect_failures_ < static_cast<int>(count) || why != last_connect_error_)
                    spdlog::warn("rabbitmq broker: {}: {}: {}", name_, where(), why);
                last_connect_error_ = why;
                last_failure_ = count > 1 ? describe(endpoint_->node(node_)) + ": " + why : why;
                ++connect_failures_;
                // The next node at once; after a round over all of them, a pause.
                node_ = (node_ + 1) % count;
                next_connect_ = connect_failures_ % static_cast<int>(count) == 0 ? now + connect_backoff() : now;
            }
        }
        try {
            run_tasks();
            send_publishes();
            expire(Clock::now());
            // With a connection, wake for frames (and heartbeats) at least
            // every 100 ms; without, when the next attempt is due.
            auto limit = milliseconds(100);
            if (!conn_ && need_connection)
                limit = std::clamp(std::chrono::duration_cast<milliseconds>(next_connect_ - Clock::now()),
                                   milliseconds(1), milliseconds(100));
            wait_for_io(limit);
            if (conn_) read_frames();
        } catch (const ConnectionLost& e) {
            last_failure_ = e.what();
            spdlog::warn("rabbitmq broker: {}: {}", name_, e.what());
            disconnect(std::current_exception());
            next_connect_ = Clock::now() + connect_backoff();
        } catch (const std::exception& e) {
            // A listener or a confirmation callback failed: not the connection's fault.
            spdlog::error("rabbitmq broker: {}: {}", name_, e.what());
        }
    }
    // Stopping: fail what waits, close politely.
    std::deque<Task> tasks;
    std::deque<Pending> pending;
    {
        std::lock_guard lock(mutex_);
        tasks.swap(tasks_);
        pending.swap(to_send_);
    }
    const auto stopped = std::make_exception_ptr(Error(errc::broker_unavailable, "rabbitmq broker: closed"));
    for (auto& t : tasks) t.failed(stopped);
    for (auto& p : pending) p.done(stopped, "");
    for (auto& [tag, p] : unconfirmed_) p.done(stopped, "");
    unconfirmed_.clear();
    if (conn_) {
        amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(conn_);
        conn_ = nullptr;
    }
    for (auto& [ch, listener] : channels_)
        if (listener) listener->on_closed(stopped);
    channels_.clear();
}

}  // namespace boong::rabbitmq
