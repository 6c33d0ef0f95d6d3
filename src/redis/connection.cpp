#include "redis/connection.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/sds.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include <spdlog/spdlog.h>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <utility>

namespace boong::redis {
namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;

namespace {

Reply copy_reply(const redisReply* r) {
    Reply out;
    switch (r->type) {
    case REDIS_REPLY_STRING:
        out.type = Reply::Type::string;
        out.str.assign(r->str, r->len);
        break;
    case REDIS_REPLY_STATUS:
        out.type = Reply::Type::status;
        out.str.assign(r->str, r->len);
        break;
    case REDIS_REPLY_ERROR:
        out.type = Reply::Type::error;
        out.str.assign(r->str, r->len);
        break;
    case REDIS_REPLY_INTEGER:
        out.type = Reply::Type::integer;
        out.integer = r->integer;
        break;
    case REDIS_REPLY_ARRAY:
        out.type = Reply::Type::array;
        out.elements.reserve(r->elements);
        for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(copy_reply(r->element[i]));
        break;
    default:
        break;
    }
    return out;
}

// Sends argv through hiredis without formatting user data into a command string.
int send_argv(redisAsyncContext* ac, redisCallbackFn* fn, void* privdata, const std::vector<std::string>& argv) {
    constexpr std::size_t small = 16;
    const char* ptrs_small[small];
    std::size_t lens_small[small];
    std::vector<const char*> ptrs_big;
    std::vector<std::size_t> lens_big;
    const char** ptrs = ptrs_small;
    std::size_t* lens = lens_small;
    if (argv.size() > small) {
        ptrs_big.resize(argv.size());
        lens_big.resize(argv.size());
        ptrs = ptrs_big.data();
        lens = lens_big.data();
    }
    for (std::size_t i = 0; i < argv.size(); ++i) {
        ptrs[i] = argv[i].data();
        lens[i] = argv[i].size();
    }
    return redisAsyncCommandArgv(ac, fn, privdata, static_cast<int>(argv.size()), ptrs, lens);
}

// hiredis 0.14 writes with write(2). To a socket whose server has gone (a
// Redis restart: FIN, then RST for what we sent after it), that raises
// SIGPIPE, whose default action ends the host process without a word.
// Newer hiredis, like libpq and Asio, send with MSG_NOSIGNAL; here the
// signal is blocked in this thread around the write and, when the write
// failed, taken back off the thread before it is unblocked. The EPIPE then
// drops the connection like any other write error. The process's
// disposition of SIGPIPE is left as the host service set it.
class SigpipeBlock {
public:
    SigpipeBlock() noexcept {
        sigemptyset(&pipe_);
        sigaddset(&pipe_, SIGPIPE);
        // Already blocked here: the thread's owner deals with it; touch nothing.
        active_ = ::pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0 && !sigismember(&old_, SIGPIPE);
    }
    ~SigpipeBlock() {
        if (active_) ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    SigpipeBlock(const SigpipeBlock&) = delete;
    SigpipeBlock& operator=(const SigpipeBlock&) = delete;

    // After a failed write: the SIGPIPE it may have raised is pending on
    // this thread (none was before: it was unblocked); consume it.
    void discard_raised() noexcept {
        if (!active_) return;
        sigset_t pending;
        if (::sigpending(&pending) != 0 || !sigismember(&pending, SIGPIPE)) return;
        const timespec now{0, 0};
        while (::sigtimedwait(&pipe_, nullptr, &now) < 0 && errno == EINTR) {
        }
    }

private:
    sigset_t pipe_;
    sigset_t old_;
    bool active_ = false;
};

std::string context_error(const redisAsyncContext* ac, const char* fallback) {
    if (ac && ac->err && ac->errstr && *ac->errstr) return ac->errstr;
    return fallback;
}

}  // namespace

std::string Endpoint::describe() const { return "redis at " + host + ":" + std::to_string(port); }

Endpoint make_endpoint(const RedisBrokerConfig& c) {
    Endpoint e;
    e.host = c.host;
    e.port = c.port;
    e.database = c.database;
    e.username = c.username;
    e.connect_timeout = c.connect_timeout;
    e.command_timeout = c.command_timeout;
    if (auto password = read_secret(c.password_env, c.password_file, "redis broker password")) e.password = std::move(*password);
    return e;
}

Error unavailable(const Endpoint& e, const std::string& what) {
    return Error(errc::broker_unavailable, e.describe() + ": " + what);
}

Connection::Connection(executor_type strand, Endpoint endpoint, std::string name)
    : strand_(std::move(strand)),
      endpoint_(std::move(endpoint)),
      name_(std::move(name)),
      timer_(strand_),
      connect_timer_(strand_) {}

Connection::~Connection() {
    // Nothing else references us: no wait is outstanding, no callback can run
    // later. Detach before freeing so hiredis's farewell callbacks find nothing.
    if (auto* ac = std::exchange(ac_, nullptr)) {
        ac->data = nullptr;
        ac->ev.data = nullptr;
        ac->ev.addRead = ac->ev.delRead = ac->ev.addWrite = ac->ev.delWrite = ac->ev.cleanup = nullptr;
        socket_.reset();
        redisAsyncFree(ac);
    }
    // Requests still held complete with operation_aborted (ErasedHandler's destructor).
}

std::string to_resp(const std::vector<std::string>& argv) {
    std::size_t size = 0;
    for (const auto& a : argv) size += a.size();
    Resp resp(argv.size(), size);
    for (const auto& a : argv) resp.arg(a);
    return resp.take();
}

void Connection::exec(std::vector<std::string> argv, milliseconds extra_time, detail::ErasedHandler<Reply> handler) {
    exec_resp(to_resp(argv), extra_time, std::move(handler));
}

void Connection::exec_resp(std::string command, milliseconds extra_time, detail::ErasedHandler<Reply> handler) {
    Request r;
    r.command = std::move(command);
    const auto now = SteadyClock::now();
    r.deadline = endpoint_.command_timeout.count() > 0 ? now + endpoint_.command_timeout + extra_time
                                                       : SteadyClock::time_point::max();
    r.handler = std::move(handler);
    submit(std::move(r));
}

void Connection::exec(std::shared_ptr<Command> command) {
    Request r;
    r.deadline = endpoint_.command_timeout.count() > 0 ? SteadyClock::now() + endpoint_.command_timeout
                                                       : SteadyClock::time_point::max();
    r.owner = std::move(command);
    submit(std::move(r));
}

// Requests from outside the strand are queued and started in batches, one
// hop onto the strand for all those submitted in the meantime (a pipeline of
// publishes costs one post, not one each).
void Connection::submit(Request r) {
    if (strand_.running_in_this_thread()) {
        start_submitted();  // whatever came first goes first
        batching_ = true;
        start(std::move(r));
        batching_ = false;
        flush_writes();
        return;
    }
    {
        std::lock_guard lock(submit_mutex_);
        submitted_.push_back(std::move(r));
        if (start_posted_) return;
        start_posted_ = true;
    }
    asio::post(strand_, [self = shared_from_this()] { self->start_submitted(); });
}

void Connection::start_submitted() {
    auto batch = std::move(spare_);  // empty, with the capacity of an earlier batch
    {
        std::lock_guard lock(submit_mutex_);
        start_posted_ = false;
        batch.swap(submitted_);
    }
    batching_ = true;
    for (auto& r : batch) start(std::move(r));
    batching_ = false;
    batch.clear();
    spare_ = std::move(batch);
    flush_writes();
}

// Writes what a batch queued at once, in one write(2), instead of waiting for
// the socket to be writable first (a trip through epoll per batch). What the
// socket does not take is written when it is writable again.
void Connection::flush_writes() {
    if (!ac_ || state_ != State::ready || !want_write_) return;
    handle_write();  // on a write error hiredis drops the connection (cleanup() runs)
    arm_write();
}

void Connection::handle_write() {
    SigpipeBlock block;
    redisAsyncHandleWrite(ac_);
    if (!ac_ || ac_->err) block.discard_raised();  // the write failed; the context may be gone
}

void Connection::start(Request r) {
    if (closed_) {
        r.complete(std::make_exception_ptr(unavailable(endpoint_, "the " + name_ + " connection is closed")));
        return;
    }
    r.id = next_id_++;
    if (state_ == State::ready) {
        send(std::move(r));
        return;
    }
    waiting_.push_back(std::move(r));
    if (state_ == State::idle) connect();
}

void Connection::connect() {
    state_ = State::connecting;
    ++generation_;
    failure_.clear();
    const auto gen = generation_;
    if (endpoint_.connect_timeout.count() > 0) {
        connect_timer_.expires_after(endpoint_.connect_timeout);
        connect_timer_.async_wait([self = shared_from_this(), gen](boost::system::error_code ec) {
            if (ec || gen != self->generation_ || self->state_ != State::connecting) return;
            self->teardown("could not connect within " + std::to_string(self->endpoint_.connect_timeout.count()) +
                           " ms");
        });
    }
    // Resolved by Asio (getaddrinfo would block the event loop in hiredis).
    resolver_ = std::make_unique<asio::ip::tcp::resolver>(strand_);
    resolver_->async_resolve(
        endpoint_.host, std::to_string(endpoint_.port),
        [self = shared_from_this(), gen](boost::system::error_code ec, asio::ip::tcp::resolver::results_type results) {
            if (gen != self->generation_ || self->state_ != State::connecting) return;
            if (ec || results.empty()) {
                self->teardown("cannot resolve '" + self->endpoint_.host + "': " +
                               (ec ? ec.message() : std::string("no address")));
                return;
            }
            self->on_resolved(results.begin()->endpoint().address().to_string());
        });
}

void Connection::on_resolved(const std::string& address) {
    ac_ = redisAsyncConnect(address.c_str(), endpoint_.port);
    if (!ac_) {
        teardown("cannot allocate a hiredis context");
        return;
    }
    if (ac_->err) {
        const std::string why = context_error(ac_, "cannot connect");
        redisAsyncFree(std::exchange(ac_, nullptr));
        teardown("cannot connect: " + why);
        return;
    }
    ac_->data = this;
    ac_->ev.data = this;
    ac_->ev.addRead = &Connection::add_read;
    ac_->ev.delRead = &Connection::del_read;
    ac_->ev.addWrite = &Connection::add_write;
    ac_->ev.delWrite = &Connection::del_write;
    ac_->ev.cleanup = &Connection::cleanup;
    redisAsyncSetConnectCallback(ac_, &Connection::on_connect);
    redisAsyncSetDisconnectCallback(ac_, &Connection::on_disconnect);
    // Asio gets a copy of the socket: hiredis closes its fd when it frees the
    // context, and the descriptor closes only its own.
    const int fd = ::dup(ac_->c.fd);
    if (fd < 0) {
        teardown("cannot dup the socket");
        return;
    }
    socket_.emplace(strand_, fd);

    std::vector<std::vector<std::string>> handshake;
    if (!endpoint_.password.empty()) {
        if (endpoint_.username.empty()) handshake.push_back({"AUTH", endpoint_.password});
        else handshake.push_back({"AUTH", endpoint_.username, endpoint_.password});
    }
    if (endpoint_.database != 0) handshake.push_back({"SELECT", std::to_string(endpoint_.database)});
    handshake.push_back({"PING"});
    handshake_left_ = static_cast<int>(handshake.size());
    handshake_error_.clear();
    for (const auto& argv : handshake) {
        if (send_argv(ac_, &Connection::on_handshake_reply, nullptr, argv) != REDIS_OK) {
            teardown("cannot send the handshake");
            return;
        }
    }
}

void Connection::on_handshake_reply(redisAsyncContext* ac, void* reply, void*) {
    auto* self = static_cast<Connection*>(ac->data);
    if (!self || !reply) return;  // the context is going away: cleanup() fails the waiting requests
    const auto* r = static_cast<const redisReply*>(reply);
    if (r->type == REDIS_REPLY_ERROR && self->handshake_error_.empty()) self->handshake_error_.assign(r->str, r->len);
    if (--self->handshake_left_ > 0) return;
    // Not from inside hiredis: the context may have to be freed.
    asio::post(self->strand_, [s = self->shared_from_this(), gen = self->generation_] {
        if (gen != s->generation_ || s->state_ != State::connecting) return;
        if (!s->handshake_error_.empty()) {
            s->teardown("refused the connection handshake: " + s->handshake_error_);
            return;
        }
        s->state_ = State::ready;
        s->connect_timer_.cancel();
        auto waiting = std::move(s->waiting_);
        s->waiting_.clear();
        for (auto& request : waiting) s->send(std::move(request));
        s->check_idle();
    });
}

void Connection::send(Request r) {
    if (!ac_) {
        r.complete(std::make_exception_ptr(unavailable(endpoint_, "not connected")));
        return;
    }
    void* privdata = reinterpret_cast<void*>(static_cast<std::uintptr_t>(r.id));
    const auto command = r.resp();
    if (redisAsyncFormattedCommand(ac_, &Connection::on_reply, privdata, command.data(), command.size()) != REDIS_OK) {
        r.complete(
            std::make_exception_ptr(unavailable(endpoint_, "cannot send: " + context_error(ac_, "disconnecting"))));
        return;
    }
    r.command = std::string();  // hiredis has its copy; the id routes the reply
    inflight_.push_back(std::move(r));
    // A long pipeline goes out now rather than after everything queued on the
    // io_context has run, so Redis works on it while we prepare more.
    if (sdslen(ac_->c.obuf) >= 64 * 1024) handle_write();
    if (!ac_) return;  // the write failed and hiredis dropped the connection
    arm_read();
    arm_timer();
}

void Connection::on_reply(redisAsyncContext* ac, void* reply, void* privdata) {
    auto* self = static_cast<Connection*>(ac->data);
    if (!self) return;
    const auto id = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(privdata));
    auto& q = self->inflight_;
    auto it = q.begin();
    while (it != q.end() && it->id != id) ++it;
    if (it == q.end()) return;
    Request r = std::move(*it);
    q.erase(it);
    if (!reply) {
        // hiredis is dropping the connection (error, timeout, close).
        std::string why = !self->failure_.empty() ? self->failure_ : "connection lost: " + context_error(ac, "closed");
        r.complete(std::make_exception_ptr(unavailable(self->endpoint_, why)));
        return;
    }
    r.complete(nullptr, copy_reply(static_cast<const redisReply*>(reply)));
}

void Connection::on_connect(const redisAsyncContext* ac, int status) {
    auto* self = static_cast<Connection*>(ac->data);
    if (!self || status == REDIS_OK) return;
    if (self->failure_.empty()) self->failure_ = "cannot connect: " + context_error(ac, "connection refused");
}

void Connection::on_disconnect(const redisAsyncContext* ac, int status) {
    auto* self = static_cast<Connection*>(ac->data);
    if (!self) return;
    if (status != REDIS_OK && !self->closed_) {
        spdlog::warn("redis broker: {} connection to {} lost: {}", self->name_, self->endpoint_.describe(),
                     context_error(ac, "unknown error"));
    }
}

void Connection::add_read(void* p) {
    if (auto* self = static_cast<Connection*>(p)) {
        self->want_read_ = true;
        self->arm_read();
    }
}
void Connection::del_read(void* p) {
    if (auto* self = static_cast<Connection*>(p)) self->want_read_ = false;
}
void Connection::add_write(void* p) {
    if (auto* self = static_cast<Connection*>(p)) {
        self->want_write_ = true;
        if (!self->batching_) self->arm_write();  // else flush_writes() follows
    }
}
void Connection::del_write(void* p) {
    if (auto* self = static_cast<Connection*>(p)) self->want_write_ = false;
}

// hiredis is freeing the context (our teardown, or its own after an error).
void Connection::cleanup(void* p) {
    auto* self = static_cast<Connection*>(p);
    if (!self) return;
    self->ac_ = nullptr;
    self->want_read_ = self->want_write_ = false;
    self->socket_.reset();  // closes our dup; outstanding waits complete with operation_aborted
    const std::string why = !self->failure_.empty() ? self->failure_ : "connection lost";
    self->state_ = State::idle;
    self->connect_timer_.cancel();
    self->fail_waiting(why);
    // In-flight requests were failed by their own callbacks just before this.
    while (!self->inflight_.empty()) {
        auto r = std::move(self->inflight_.front());
        self->inflight_.pop_front();
        r.complete(std::make_exception_ptr(unavailable(self->endpoint_, why)));
    }
    if (self->timer_armed_) self->timer_.cancel();
}

void Connection::fail_waiting(const std::string& why) {
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& r : waiting) r.complete(std::make_exception_ptr(unavailable(endpoint_, why)));
}

void Connection::teardown(const std::string& why) {
    failure_ = why;
    ++generation_;  // late resolver, timer and wait completions of this context are ignored
    if (resolver_) resolver_->cancel();
    connect_timer_.cancel();
    if (ac_) {
        redisAsyncFree(ac_);  // fails what is in flight through the callbacks, then cleanup()
        ac_ = nullptr;
    }
    socket_.reset();
    want_read_ = want_write_ = false;
    state_ = State::idle;
    fail_waiting(why);
    while (!inflight_.empty()) {
        auto r = std::move(inflight_.front());
        inflight_.pop_front();
        r.complete(std::make_exception_ptr(unavailable(endpoint_, why)));
    }
    if (timer_armed_) timer_.cancel();
}

void Connection::close(bool permanent) {
    asio::dispatch(strand_, [self = shared_from_this(), permanent] {
        if (permanent) self->closed_ = true;
        if (self->state_ != State::idle || self->ac_) self->teardown("the " + self->name_ + " connection was closed");
        self->resolver_.reset();
    });
}

// Reads are waited for only while replies are expected: an idle connection
// leaves no work on the io_context (a server closing it is noticed by the
// next command, which then fails or is retried).
void Connection::arm_read() {
    if (reading_ || !socket_ || !ac_ || !want_read_) return;
    if (state_ != State::connecting && inflight_.empty()) return;
    reading_ = true;
    socket_->async_wait(asio::posix::stream_descriptor::wait_read,
                        [self = shared_from_this(), gen = generation_](boost::system::error_code ec) {
                            self->reading_ = false;
                            if (!ec && gen == self->generation_ && self->ac_) redisAsyncHandleRead(self->ac_);
                            self->arm_read();
                            self->arm_write();
                            self->check_idle();
                        });
}

void Connection::arm_write() {
    if (writing_ || !socket_ || !ac_ || !want_write_) return;
    writing_ = true;
    socket_->async_wait(asio::posix::stream_descriptor::wait_write,
                        [self = shared_from_this(), gen = generation_](boost::system::error_code ec) {
                            self->writing_ = false;
                            if (!ec && gen == self->generation_ && self->ac_) self->handle_write();
                            self->arm_write();
                            self->arm_read();
                            self->check_idle();
                        });
}

void Connection::arm_timer() {
    if (timer_armed_ || inflight_.empty()) return;
    const auto deadline = inflight_.front().deadline;
    if (deadline == SteadyClock::time_point::max()) return;
    timer_armed_ = true;
    timer_.expires_at(deadline);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        self->timer_armed_ = false;
        if (!ec) self->on_timer();
        self->arm_timer();
    });
}

void Connection::on_timer() {
    if (inflight_.empty() || inflight_.front().deadline > SteadyClock::now()) return;
    // Replies come in order: the oldest command is stuck, so is the connection.
    teardown("no reply within the command timeout (" + std::to_string(endpoint_.command_timeout.count()) +
             " ms); connection dropped");
}

void Connection::check_idle() {
    if (state_ == State::connecting || !inflight_.empty()) return;
    if (reading_ && socket_) socket_->cancel();
    if (timer_armed_) timer_.cancel();
}

}  // namespace boong::redis
