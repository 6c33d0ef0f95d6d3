// One hiredis async connection driven by Asio. Private to Boong::redis.
//
// hiredis is not thread-safe, so everything touching the redisAsyncContext
// runs on the connection's strand; public functions hop onto it. Replies are
// copied into an owned Reply inside hiredis's callback (hiredis frees its
// own reply after the callback returns) and completed through the caller's
// executor, never inline, so no user code runs inside a hiredis callback and
// the context is never freed from one.
#pragma once

#include <boong/config.hpp>
#include <boong/detail/erased_handler.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct redisAsyncContext;

namespace boong::redis {

using std::chrono::milliseconds;

// A reply, owned (hiredis's redisReply is freed when its callback returns).
struct Reply {
    enum class Type { nil, string, status, error, integer, array };
    Type type = Type::nil;
    std::string str;  // string, status and error
    long long integer = 0;
    std::vector<Reply> elements;

    bool is_error() const { return type == Type::error; }
    bool is_nil() const { return type == Type::nil; }
};

// Writes a command in RESP (an array of bulk strings): binary-safe, and what
// hiredis would produce from an argv, without its printf machinery.
class Resp {
public:
    explicit Resp(std::size_t argc, std::size_t size_hint = 64) {
        out_.reserve(size_hint + 16 * argc);
        char head[24] = {'*'};
        char* end = std::to_chars(head + 1, head + sizeof head - 2, argc).ptr;
        *end++ = '\r';
        *end++ = '\n';
        out_.append(head, static_cast<std::size_t>(end - head));
    }
    Resp& arg(std::string_view a) {
        append_arg(out_, a);
        return *this;
    }
    Resp& arg(long long n) {
        char text[24];
        const auto end = std::to_chars(text, text + sizeof text, n).ptr;
        return arg(std::string_view(text, static_cast<std::size_t>(end - text)));
    }
    // Arguments already in RESP (see append_arg and Word): fixed parts of a command.
    Resp& raw(std::string_view encoded) {
        out_.append(encoded);
        return *this;
    }
    std::size_t size() const { return out_.size(); }
    std::string take() { return std::move(out_); }

    // Appends `a` to `out` as one RESP argument (a bulk string).
    static void append_arg(std::string& out, std::string_view a) {
        char head[24] = {'$'};
        char* end = std::to_chars(head + 1, head + sizeof head - 2, a.size()).ptr;
        *end++ = '\r';
        *end++ = '\n';
        const auto head_size = static_cast<std::size_t>(end - head);
        // One call into std::string per argument (not five): it adds up.
        const std::size_t at = out.size();
        out.resize(at + head_size + a.size() + 2);
        char* p = out.data() + at;
        std::memcpy(p, head, head_size);
        if (!a.empty()) std::memcpy(p + head_size, a.data(), a.size());
        p[head_size + a.size()] = '\r';
        p[head_size + a.size() + 1] = '\n';
    }

    // A fixed word of a command as one RESP argument, encoded at compile time.
    template <std::size_t N>
    struct Word {
        char text[N + 6]{};
        std::size_t size = 0;
        consteval Word(const char (&word)[N]) {
            static_assert(N - 1 < 100, "a word of at most 99 bytes");
            constexpr std::size_t n = N - 1;
            text[size++] = '$';
            if (n >= 10) text[size++] = static_cast<char>('0' + n / 10);
            text[size++] = static_cast<char>('0' + n % 10);
            text[size++] = '\r';
            text[size++] = '\n';
            for (std::size_t i = 0; i < n; ++i) text[size++] = word[i];
            text[size++] = '\r';
            text[size++] = '\n';
        }
        constexpr std::string_view view() const { return {text, size}; }
    };

private:
    std::string out_;
};

std::string to_resp(const std::vector<std::string>& argv);

// Where and how to connect (from RedisBrokerConfig, password already read
// from its environment variable).
struct Endpoint {
    std::string host;
    int port = 6379;
    int database = 0;
    std::string username;
    std::string password;
    milliseconds connect_timeout{5000};  // 0: none
    milliseconds command_timeout{5000};  // 0: none

    // "redis at host:port", for messages.
    std::string describe() const;
};

Endpoint make_endpoint(const RedisBrokerConfig& config);

// The exception a connection failure completes with: errc::broker_unavailable
// naming the server.
Error unavailable(const Endpoint& e, const std::string& what);

class Connection : public std::enable_shared_from_this<Connection> {
public:
    using executor_type = boost::asio::strand<boost::asio::any_io_executor>;
    using exec_signature = void(std::exception_ptr, Reply);

    // `name` says what the connection is for, in logs ("publisher", "consumer c1").
    Connection(executor_type strand, Endpoint endpoint, std::string name);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    const executor_type& get_executor() const { return strand_; }
    const Endpoint& endpoint() const { return endpoint_; }

    // Sends `argv` (binary-safe: never formatted into a command string) and
    // completes with the reply; Redis error replies are replies too (type
    // error), only connection problems and timeouts complete with an
    // exception (errc::broker_unavailable). Connects first when not
    // connected. `extra_time` is added to the command timeout (for BLOCK).
    template <class Token>
    auto async_exec(std::vector<std::string> argv, Token&& token, milliseconds extra_time = milliseconds::zero()) {
        return boost::asio::async_initiate<Token, exec_signature>(
            [this](auto handler, std::vector<std::string> a, milliseconds extra) {
                exec(std::move(a), extra, detail::ErasedHandler<Reply>(std::move(handler), strand_));
            },
            token, std::move(argv), extra_time);
    }

    // Connects (if not connected) and completes once the connection is ready.
    template <class Token>
    auto async_connect(Token&& token) {
        return async_exec({"PING"}, std::forward<Token>(token));
    }

    // Type-erased form of async_exec; may be called from any thread.
    void exec(std::vector<std::string> argv, milliseconds extra_time, detail::ErasedHandler<Reply> handler);
    // The same with the command already in RESP form (see Resp): saves
    // hiredis's printf-style formatting on the publishing hot path.
    void exec_resp(std::string command, milliseconds extra_time, detail::ErasedHandler<Reply> handler);

    // The publishing hot path: a command that owns its RESP text and takes its
    // reply itself, so that sending it needs no copy of the text, no
    // std::function and no hop to complete.
    class Command {
    public:
        virtual ~Command() = default;
        // The command in RESP; must stay valid and unchanged until on_reply.
        virtual std::string_view resp() const = 0;
        // Runs on the strand, inside hiredis's reply callback or while the
        // connection is torn down, so it must not call into this connection
        // synchronously (posting, completing an ErasedHandler or starting a
        // timer is fine).
        virtual void on_reply(std::exception_ptr e, Reply r) = 0;
    };
    // May be called from any thread.
    void exec(std::shared_ptr<Command> command);

    // Drops the connection: what is in flight fails with broker_unavailable.
    // With `permanent`, later commands fail at once instead of reconnecting.
    // May be called from any thread; takes effect on the strand.
    void close(bool permanent);

private:
    struct Request {
        std::uint64_t id = 0;
        std::string command;  // RESP-encoded, unless `owner` holds it
        std::chrono::steady_clock::time_point deadline;
        detail::ErasedHandler<Reply> handler;
        std::shared_ptr<Command> owner;  // instead of command and handler, when set

        std::string_view resp() const { return owner ? owner->resp() : std::string_view(command); }
        void complete(std::exception_ptr e, Reply r = {}) {
            if (owner) std::exchange(owner, nullptr)->on_reply(std::move(e), std::move(r));
            else handler.complete(std::move(e), std::move(r));
        }
    };
    enum class State { idle, connecting, ready };

    void submit(Request r);  // from any thread
    void start_submitted();  // on the strand
    void start(Request r);   // on the strand
    void flush_writes();     // on the strand
    void handle_write();     // redisAsyncHandleWrite, never raising SIGPIPE
    void connect();
    void on_resolved(const std::string& address);
    void on_handshake(const Reply& reply, bool last);
    void send(Request r);
    void fail_waiting(const std::string& why);
    void teardown(const std::string& why);  // frees the context (never from a hiredis callback)
    void arm_read();
    void arm_write();
    void arm_timer();
    void on_timer();
    void check_idle();

    static void on_reply(redisAsyncContext* ac, void* reply, void* privdata);
    static void on_handshake_reply(redisAsyncContext* ac, void* reply, void* privdata);
    static void on_connect(const redisAsyncContext* ac, int status);
    static void on_disconnect(const redisAsyncContext* ac, int status);
    static void add_read(void* self);
    static void del_read(void* self);
    static void add_write(void* self);
    static void del_write(void* self);
    static void cleanup(void* self);

    executor_type strand_;
    Endpoint endpoint_;
    std::string name_;
    State state_ = State::idle;
    bool closed_ = false;
    redisAsyncContext* ac_ = nullptr;  // owned while set; hiredis frees it itself on an error
    // A dup() of hiredis's socket: hiredis closes its own fd, this one closes the copy.
    std::optional<boost::asio::posix::stream_descriptor> socket_;
    bool want_read_ = false, want_write_ = false;
    bool reading_ = false, writing_ = false;
    std::uint64_t generation_ = 0;  // bumped per context, so late waits on an old socket are ignored
    boost::asio::steady_timer timer_;          // command timeouts: the oldest in-flight deadline
    bool timer_armed_ = false;
    boost::asio::steady_timer connect_timer_;  // connect_timeout
    std::unique_ptr<boost::asio::ip::tcp::resolver> resolver_;
    std::mutex submit_mutex_;
    std::vector<Request> submitted_;  // guarded by submit_mutex_: to start on the strand
    bool start_posted_ = false;       // guarded by submit_mutex_: start_submitted() is due
    std::vector<Request> spare_;      // on the strand: an empty vector, for start_submitted()
    bool batching_ = false;           // starting a batch: its commands are written by flush_writes()
    std::uint64_t next_id_ = 1;
    std::deque<Request> waiting_;   // until the connection is ready
    std::deque<Request> inflight_;  // sent, in reply order
    int handshake_left_ = 0;
    std::string handshake_error_;
    std::string failure_;  // why the current context is going away, for the requests it fails
};

}  // namespace boong::redis
