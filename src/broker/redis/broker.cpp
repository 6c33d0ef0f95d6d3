#include <boong/broker/redis.hpp>
#include <boong/detail/run_consumer.hpp>
#include <boong/detail/validate.hpp>

#include "broker/redis/connection.hpp"
#include "broker/redis/envelope.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <list>
#include <map>
#include <mutex>

namespace boong {
namespace asio = boost::asio;
using redis::Connection;
using redis::Reply;
using redis::Resp;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// Dead-letters one entry atomically: XADD to the dead-letter stream and XACK
// on the source, in one script, so that a crash between them cannot lose the
// message nor (on the shared connection) interleave with other commands.
// KEYS: dlq, source. ARGV: maxlen, group, source id, field, value, ...
constexpr const char* dead_letter_script = R"lua(
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 4))
redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])
return id
)lua";

json reply_to_json(const Reply& r) {
    switch (r.type) {
    case Reply::Type::nil: return nullptr;
    case Reply::Type::string:
    case Reply::Type::status:
    case Reply::Type::error:
        return json::parse(json(r.str).dump(-1, ' ', false, json::error_handler_t::replace));
    case Reply::Type::integer: return r.integer;
    case Reply::Type::array: {
        json a = json::array();
        for (const auto& e : r.elements) a.push_back(reply_to_json(e));
        return a;
    }
    }
    return nullptr;
}

Error protocol(const redis::Endpoint& e, const std::string& what) {
    return Error(errc::protocol_error, e.describe() + ": " + what);
}

bool is_unavailable(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const Error& err) {
        return err.code() == errc::broker_unavailable;
    } catch (...) {
        return false;
    }
}

// Exponential backoff for reconnecting: 50 ms doubling up to 2 s.
milliseconds backoff(int failures) {
    const int shift = std::clamp(failures - 1, 0, 6);
    return std::min(milliseconds(50 << shift), milliseconds(2000));
}

SteadyClock::time_point add_saturated(SteadyClock::time_point t, milliseconds d) {
    const auto room = std::chrono::duration_cast<milliseconds>(SteadyClock::time_point::max() - t);
    return d >= room ? SteadyClock::time_point::max() : t + d;
}

struct Failure {
    std::string what;
    bool rejected = false;
    bool abandoned = false;
};

Failure describe(std::exception_ptr e, bool abandoned) {
    try {
        std::rethrow_exception(e);
    } catch (const Rejection& r) {
        return {r.what(), true, abandoned};
    } catch (const std::exception& ex) {
        return {ex.what(), false, abandoned};
    } catch (...) {
        return {"unknown exception", false, abandoned};
    }
}

}  // namespace

struct RedisBroker::Shared {
    RedisBrokerConfig config;
    std::string max_len_args;  // "MAXLEN" "~" <config.max_len> in RESP, made once
    redis::Endpoint endpoint;
    std::shared_ptr<Connection> publisher;  // pipelined: publishes, acks, dead letters, raw commands
    IdGenerator ids;                        // for dead letters of undecodable entries
    std::mutex trim_mutex;
    std::map<std::string, SteadyClock::time_point, std::less<>> last_trim;  // with ttl: per topic

    // XADD for `e` on `topic`, in RESP: MAXLEN ~ max_len, or MINID ~ (now - ttl).
    PreparedPublish xadd(std::string_view topic, const EventData& e) const {
        // Room for the usual event: the envelope's JSON is written in place.
        static constexpr Resp::Word xadd("XADD");
        static constexpr Resp::Word minid("MINID");
        static constexpr Resp::Word approx("~");
        static constexpr Resp::Word auto_id("*");
        // XADD topic, MAXLEN|MINID ~ n, *, then the envelope's field and value.
        Resp resp(8, 512 + e.event_id.size() + e.type.size() + topic.size());
        resp.raw(xadd.view()).arg(topic);
        PreparedPublish p;
        p.topic_size = topic.size();
        p.topic_offset = resp.size() - 2 - topic.size();
        if (config.ttl) {
            const auto now_ms = std::chrono::duration_cast<milliseconds>(Clock::now().time_since_epoch());
            const auto cutoff = std::max<std::int64_t>(0, (now_ms - *config.ttl).count());
            resp.raw(minid.view()).raw(approx.view()).arg(static_cast<long long>(cutoff));
        } else {
            resp.raw(max_len_args);  // MAXLEN ~ <max_len>
        }
        resp.raw(auto_id.view());
        redis::append_envelope(resp, e);
        p.command = resp.take();
        return p;
    }

    // With a ttl, XADD trims by age: the length cap is then applied by an
    // XTRIM at most once a second per topic (XADD takes only one of the two).
    void trim_by_length(std::string_view topic) {
        if (!config.ttl) return;
        const auto now = SteadyClock::now();
        {
            std::lock_guard lock(trim_mutex);
            auto it = last_trim.find(topic);
            if (it == last_trim.end()) it = last_trim.emplace(std::string(topic), SteadyClock::time_point{}).first;
            if (now - it->second < std::chrono::seconds(1)) return;
            it->second = now;
        }
        publisher->async_exec({"XTRIM", std::string(topic), "MAXLEN", "~", std::to_string(config.max_len)},
                              [topic = std::string(topic)](std::exception_ptr e, Reply r) {
                                  if (e || r.is_error())
                                      spdlog::warn("redis broker: XTRIM of '{}' failed: {}", topic,
                                                   e ? "connection" : r.str);
                              });
    }

    // The dead-letter script's argv for `e` (already carrying its dead_letter info).
    std::vector<std::string> dead_letter_argv(const std::string& topic, const std::string& group,
                                              const std::string& source_id, const EventData& e) const {
        std::vector<std::string> argv{"EVAL", dead_letter_script, "2", dead_letter_topic(topic), topic,
                                      std::to_string(config.max_len), group, source_id};
        redis::append_envelope(argv, e);
        // For operators reading the stream with redis-cli.
        argv.push_back("dead_letter");
        argv.push_back(e.metadata.extra.at("dead_letter").dump(-1, ' ', false, json::error_handler_t::replace));
        return argv;
    }
};

// One running async_consume. Its loop, its connection and its handlers run on
// one strand, so its members need no lock.
class RedisBroker::Consumer : public std::enable_shared_from_this<Consumer> {
public:
    Consumer(std::shared_ptr<Shared> shared, const executor_type& ex, ConsumerOptions options, MessageHandler handler)
        : shared_(std::move(shared)),
          strand_(asio::make_strand(ex)),
          timer_(strand_),
          options_(std::move(options)),
          handler_(std::move(handler)),
          conn_(std::make_shared<Connection>(strand_, shared_->endpoint, "consumer '" + options_.consumer + "'")) {}

    const asio::strand<executor_type>& strand() const { return strand_; }
    asio::cancellation_signal& stop_signal() { return stop_signal_; }

    // On the strand. Dropping the reading connection ends a blocked XREADGROUP
    // at once; what it had already read stays pending for others.
    void request_stop(asio::cancellation_type type) {
        if (finished_) return;
        stopping_ = true;
        conn_->close(true);
        timer_.cancel();
        stop_signal_.emit(type);
    }
    void finished() { finished_ = true; }

    static asio::awaitable<void> run(std::shared_ptr<Consumer> self) {
        auto& c = *self;
        detail::validate_consumer_options(c.options_, c.handler_);
        co_await asio::this_coro::throw_if_cancelled(false);
        std::exception_ptr failure;
        try {
            co_await c.loop();
        } catch (...) {
            failure = std::current_exception();
        }
        c.stopping_ = true;
        c.conn_->close(true);
        co_await c.drain();
        if (failure) std::rethrow_exception(failure);
    }

private:
    struct InFlight {
        asio::cancellation_signal signal;
        bool cancelled = false;
        bool done = false;
    };

    bool stopped() const { return stopping_; }

    template <class... Args>
    asio::awaitable<Reply> exec(Connection& conn, std::vector<std::string> argv, milliseconds extra = {}) {
        co_return co_await conn.async_exec(std::move(argv), asio::use_awaitable, extra);
    }

    // How often pending entries are looked at for reclaiming.
    milliseconds claim_interval() const {
        const auto quarter = options_.visibility_timeout / 4;
        return std::clamp(quarter, milliseconds(10), std::max(milliseconds(10), shared_->config.block_timeout));
    }

    asio::awaitable<void> loop() {
        int failures = 0;
        while (!stopped()) {
            try {
                if (!group_ready_) {
                    co_await create_group();
                    group_ready_ = true;
                    if (failures > 0)
                        spdlog::info("redis broker: consumer '{}' of '{}' reconnected to {}", options_.consumer,
                                     options_.topic, shared_->endpoint.describe());
                }
                if (inflight_.size() >= options_.concurrency) {
                    co_await wait(SteadyClock::time_point::max());  // a finishing handler wakes us
                    continue;
                }
                auto now = SteadyClock::now();
                if (now >= next_claim_) {
                    const bool more = co_await reclaim();
                    next_claim_ = more ? now : now + claim_interval();
                    failures = 0;
                    continue;
                }
                co_await read_new();
                failures = 0;
            } catch (const Error& e) {
                if (stopped()) break;
                if (e.code() != errc::broker_unavailable) throw;
                ++failures;
                group_ready_ = false;  // the server may have restarted without the group
                spdlog::warn("redis broker: consumer '{}' of '{}': {}; retrying in {} ms", options_.consumer,
                             options_.topic, e.what(), backoff(failures).count());
            }
            if (failures > 0 && !stopped()) co_await wait(SteadyClock::now() + backoff(failures));
        }
    }

    asio::awaitable<void> wait(SteadyClock::time_point until) {
        timer_.expires_at(until);
        boost::system::error_code ec;  // cancelled by wake() or stop
        co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    void wake() { timer_.cancel(); }

    asio::awaitable<void> create_group() {
        // Idempotent: BUSYGROUP means it exists. A new group starts at the
        // beginning of the stream, as the Broker contract asks.
        std::vector<std::string> argv{"XGROUP", "CREATE", options_.topic, options_.group, "0", "MKSTREAM"};
        auto r = co_await exec(*conn_, std::move(argv));
        if (r.is_error() && r.str.rfind("BUSYGROUP", 0) != 0)
            throw protocol(shared_->endpoint, "XGROUP CREATE '" + options_.topic + "' '" + options_.group +
                                                  "' failed: " + r.str);
    }

    asio::awaitable<void> read_new() {
        const auto free = options_.concurrency - inflight_.size();
        const auto until_claim = std::chrono::duration_cast<milliseconds>(next_claim_ - SteadyClock::now());
        const auto block = std::clamp(until_claim, milliseconds(1), shared_->config.block_timeout);
        std::vector<std::string> argv{"XREADGROUP", "GROUP",   options_.group,
                                      options_.consumer, "COUNT",   std::to_string(free),
                                      "BLOCK",         std::to_string(block.count()),
                                      "STREAMS",       options_.topic, ">"};
        auto r = co_await exec(*conn_, std::move(argv), block);
        if (r.is_error()) {
            if (r.str.rfind("NOGROUP", 0) == 0) {
                group_ready_ = false;  // deleted (or lost in a restart): create it again
                co_return;
            }
            throw protocol(shared_->endpoint, "XREADGROUP on '" + options_.topic + "' failed: " + r.str);
        }
        if (r.is_nil() || stopped()) co_return;  // timed out; or stopping: what was read stays pending
        if (r.type != Reply::Type::array || r.elements.empty() || r.elements[0].elements.size() != 2)
            throw protocol(shared_->endpoint, "XREADGROUP returned an unexpected reply");
        for (auto& entry : redis::parse_entries(r.elements[0].elements[1])) {
            if (entry.deleted) continue;
            co_await deliver(std::move(entry), 1);
        }
    }

    // XAUTOCLAIM entries idle longer than the visibility timeout. True when
    // the scan has more to look at.
    asio::awaitable<bool> reclaim() {
        const auto free = options_.concurrency - inflight_.size();
        std::vector<std::string> argv{"XAUTOCLAIM", options_.topic, options_.group, options_.consumer,
                                        std::to_string(options_.visibility_timeout.count()), claim_cursor_, "COUNT",
                                        std::to_string(free)};
        auto r = co_await exec(*conn_, std::move(argv));
        if (r.is_error()) {
            if (r.str.rfind("NOGROUP", 0) == 0) {
                group_ready_ = false;
                co_return false;
            }
            throw protocol(shared_->endpoint, "XAUTOCLAIM on '" + options_.topic + "' failed: " + r.str);
        }
        if (r.type != Reply::Type::array || r.elements.size() < 2)
            throw protocol(shared_->endpoint, "XAUTOCLAIM returned an unexpected reply");
        claim_cursor_ = r.elements[0].str;
        const bool more = claim_cursor_ != "0-0";
        auto entries = redis::parse_entries(r.elements[1]);
        std::erase_if(entries, [](const redis::Entry& e) { return e.deleted; });
        if (entries.empty() || stopped()) co_return more;
        // XAUTOCLAIM counted this delivery; XPENDING tells the count.
        std::vector<std::string> pending_argv{"XPENDING", options_.topic, options_.group, entries.front().id,
                                        entries.back().id, std::to_string(entries.size() + inflight_.size() + 16),
                                        options_.consumer};
        auto p = co_await exec(*conn_, std::move(pending_argv));
        std::map<std::string, int> counts;
        if (p.type == Reply::Type::array) {
            for (const auto& row : p.elements)
                if (row.elements.size() == 4) counts[row.elements[0].str] = static_cast<int>(row.elements[3].integer);
        }
        for (auto& entry : entries) {
            const auto it = counts.find(entry.id);
            const int count = it == counts.end() ? 2 : it->second;
            const int before = count - 1;
            if (before >= options_.max_deliveries) {
                // Its last allowed delivery never settled (the consumer hung or died).
                co_await dead_letter(*conn_, entry, before,
                                     "not acknowledged within the visibility timeout after " +
                                         std::to_string(before) + " deliveries");
                continue;
            }
            co_await deliver(std::move(entry), count);
        }
        co_return more;
    }

    asio::awaitable<void> deliver(redis::Entry entry, int count) {
        auto decoded = redis::decode_envelope(entry.fields);
        if (!decoded.event) {
            // It can never succeed: dead letter now, never loop on it.
            co_await dead_letter(*conn_, entry, count, decoded.error);
            co_return;
        }
        start(Delivery{options_.topic, options_.group, options_.consumer, std::move(entry.id), count,
                       std::move(*decoded.event)});
    }

    // The dead letter of `entry`: its event with metadata.extra.dead_letter,
    // or for an undecodable entry a boong.UndecodableMessage event carrying
    // the raw fields.
    EventData dead_letter_event(const redis::Entry& entry, int count, const std::string& reason,
                                const EventData* event) {
        EventData e;
        if (event) {
            e = *event;
        } else {
            auto decoded = redis::decode_envelope(entry.fields);
            if (decoded.event) {
                e = std::move(*decoded.event);
            } else {
                e.event_id = shared_->ids.next();
                e.type = "boong.UndecodableMessage";
                e.schema_version = 1;
                e.payload = json{{"fields", redis::fields_to_json(entry.fields)}};
                e.metadata.timestamp = Clock::now();
            }
        }
        if (!e.metadata.extra.is_object()) e.metadata.extra = json::object();
        e.metadata.extra["dead_letter"] = json{{"source_topic", options_.topic},
                                               {"source_message_id", entry.id},
                                               {"group", options_.group},
                                               // It may quote the entry's bytes (a JSON parser's message).
                                               {"reason", redis::with_utf8_replaced(reason)},
                                               {"delivery_count", count}};
        return e;
    }

    asio::awaitable<void> dead_letter(Connection& conn, const redis::Entry& entry, int count, std::string reason,
                                      const EventData* event = nullptr) {
        const auto e = dead_letter_event(entry, count, reason, event);
        auto r = co_await exec(conn, shared_->dead_letter_argv(options_.topic, options_.group, entry.id, e));
        if (r.is_error())
            throw protocol(shared_->endpoint, "dead-lettering message " + entry.id + " of '" + options_.topic +
                                                  "' failed: " + r.str);
        spdlog::error("redis broker: message {} of topic '{}' (group '{}') dead-lettered to '{}' as {} after {} "
                      "deliveries: {}",
                      entry.id, options_.topic, options_.group, dead_letter_topic(options_.topic), r.str, count,
                      reason);
    }

    void start(Delivery d) {
        auto it = inflight_.emplace(inflight_.end());
        asio::co_spawn(strand_, handle(std::move(d), it),
                       asio::bind_cancellation_slot(it->signal.slot(), [self = shared_from_this(),
                                                                        it](std::exception_ptr e) {
                           it->done = true;
                           if (e) {
                               try {
                                   std::rethrow_exception(e);
                               } catch (const std::exception& ex) {
                                   spdlog::error("redis broker: settling a message of topic '{}' failed: {}",
                                                 self->options_.topic, ex.what());
                               } catch (...) {
                               }
                           }
                           // The coroutine's cancellation state lives in `signal`:
                           // free it only after co_spawn is done with it.
                           asio::post(self->strand_, [self, it] {
                               self->inflight_.erase(it);
                               self->wake();
                           });
                       }));
    }

    asio::awaitable<void> handle(Delivery d, std::list<InFlight>::iterator flight) {
        std::exception_ptr error;
        try {
            co_await handler_(d);
        } catch (...) {
            error = std::current_exception();
        }
        // Settling must not be cut short by the cancellation that may have
        // ended the handler.
        co_await asio::this_coro::reset_cancellation_state();
        auto& publisher = *shared_->publisher;
        if (!error) {
            auto r = co_await ack(publisher, d.message_id);
            if (r.is_error())
                throw protocol(shared_->endpoint, "XACK of " + d.message_id + " failed: " + r.str);
            co_return;
        }
        const auto failure = describe(error, flight->cancelled);
        if (failure.rejected || (!failure.abandoned && d.delivery_count >= options_.max_deliveries)) {
            redis::Entry entry{d.message_id, {}, false};
            co_await dead_letter(publisher, entry, d.delivery_count, failure.what, &d.event);
        } else if (failure.abandoned) {
            spdlog::info("redis broker: handler of message {} (topic '{}' group '{}') cancelled on stop; it stays "
                         "pending",
                         d.message_id, d.topic, d.group);
        } else {
            spdlog::warn("redis broker: handler failed: topic '{}' group '{}' message {} delivery {}: {}", d.topic,
                         d.group, d.message_id, d.delivery_count, failure.what);
        }
    }

    // XACK, retried through a connection loss until the command timeout: a
    // lost acknowledgement costs a redelivery. (XACK is idempotent.)
    asio::awaitable<Reply> ack(Connection& conn, const std::string& id) {
        const auto& c = shared_->config;
        const auto limit = c.command_timeout.count() > 0 ? c.command_timeout : c.connect_timeout;
        const auto deadline = add_saturated(SteadyClock::now(), limit);
        asio::steady_timer pause(strand_);
        for (int attempt = 1;; ++attempt) {
            try {
                std::vector<std::string> argv{"XACK", options_.topic, options_.group, id};
                co_return co_await exec(conn, std::move(argv));
            } catch (const Error& e) {
                if (e.code() != errc::broker_unavailable || SteadyClock::now() + backoff(attempt) >= deadline) throw;
            }
            pause.expires_after(backoff(attempt));
            boost::system::error_code ec;
            co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
    }

    // Graceful stop: no new reads; in-flight handlers get the grace period,
    // then terminal cancellation; we wait until every one has unwound.
    asio::awaitable<void> drain() {
        co_await asio::this_coro::reset_cancellation_state();
        const auto deadline = add_saturated(SteadyClock::now(), options_.shutdown_grace);
        bool forced = false;
        while (!inflight_.empty()) {
            const bool again =
                (co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none;
            if (!forced && (again || SteadyClock::now() >= deadline)) {
                forced = true;
                for (auto& f : inflight_) {
                    if (f.done) continue;
                    f.cancelled = true;
                    f.signal.emit(asio::cancellation_type::terminal);
                }
            }
            co_await wait(forced ? SteadyClock::time_point::max() : deadline);
        }
    }

    std::shared_ptr<Shared> shared_;
    asio::strand<executor_type> strand_;
    asio::steady_timer timer_;  // the loop's waits: a free slot, a backoff, the grace deadline
    ConsumerOptions options_;
    MessageHandler handler_;
    std::shared_ptr<Connection> conn_;  // this consumer's own: XREADGROUP BLOCK stalls its connection
    std::list<InFlight> inflight_;      // a list: signals must not move while a handler runs
    asio::cancellation_signal stop_signal_;
    bool stopping_ = false;
    bool finished_ = false;
    bool group_ready_ = false;
    std::string claim_cursor_ = "0-0";
    SteadyClock::time_point next_claim_{};  // the first look is at once: a restarted consumer reclaims first
};

RedisBroker::RedisBroker(executor_type ex, RedisBrokerConfig config) : ex_(std::move(ex)) {
    auto invalid = [](const std::string& what) { throw Error(errc::invalid_config, "redis broker: " + what); };
    if (config.host.empty()) invalid("host is empty");
    if (config.port < 1 || config.port > 65535) invalid("port " + std::to_string(config.port) + " is not 1..65535");
    if (config.database < 0) invalid("database is negative");
    if (config.block_timeout < milliseconds(1)) invalid("block_timeout must be >= 1 ms (0 blocks forever)");
    if (config.max_len < 1) invalid("max_len must be >= 1");
    if (config.connect_timeout < milliseconds::zero() || config.command_timeout < milliseconds::zero())
        invalid("timeouts must not be negative");
    if (config.ttl && *config.ttl <= milliseconds::zero()) invalid("ttl must be positive");
    shared_ = std::make_shared<Shared>();
    shared_->endpoint = redis::make_endpoint(config);
    for (const std::string& a : {std::string("MAXLEN"), std::string("~"), std::to_string(config.max_len)})
        Resp::append_arg(shared_->max_len_args, a);
    shared_->config = std::move(config);
    shared_->publisher = std::make_shared<Connection>(asio::make_strand(ex_), shared_->endpoint, "publisher");
}

// Running consumers keep what they use (Shared, the publishing connection).
RedisBroker::~RedisBroker() = default;

const RedisBrokerConfig& RedisBroker::config() const { return shared_->config; }
std::string RedisBroker::endpoint() const { return shared_->endpoint.describe(); }

void RedisBroker::open_impl(detail::ErasedHandler<void> completion) {
    shared_->publisher->async_connect(
        [c = std::move(completion)](std::exception_ptr e, Reply) mutable { c.complete(std::move(e)); });
}

namespace {

// One publish, retried after connection losses until its deadline. It is
// the connection's Command: the connection holds it while it is in flight.
struct PublishOp final : Connection::Command, std::enable_shared_from_this<PublishOp> {
    std::shared_ptr<Connection> conn;
    std::string command;  // the XADD, in RESP
    std::size_t topic_offset = 0, topic_size = 0;
    detail::ErasedHandler<std::string> completion;
    SteadyClock::time_point deadline;
    int attempts = 0;
    std::unique_ptr<asio::steady_timer> timer;

    std::string_view resp() const override { return command; }
    std::string topic() const { return command.substr(topic_offset, topic_size); }

    void attempt() {
        ++attempts;
        conn->exec(shared_from_this());
    }

    // Only completes, or starts a timer: fine inside the reply callback.
    void on_reply(std::exception_ptr e, Reply r) override {
        if (e) {
            const auto delay = backoff(attempts);
            if (is_unavailable(e) && SteadyClock::now() + delay < deadline) {
                if (!timer) timer = std::make_unique<asio::steady_timer>(conn->get_executor());
                timer->expires_after(delay);
                timer->async_wait([self = shared_from_this()](boost::system::error_code) { self->attempt(); });
                return;
            }
            completion.complete(e);
        } else if (r.is_error()) {
            completion.complete(std::make_exception_ptr(
                protocol(conn->endpoint(), "XADD to '" + topic() + "' failed: " + r.str)));
        } else if (r.type != Reply::Type::string) {
            completion.complete(
                std::make_exception_ptr(protocol(conn->endpoint(), "XADD to '" + topic() + "' returned no id")));
        } else {
            completion.complete(nullptr, std::move(r.str));
        }
    }
};

}  // namespace

RedisBroker::PreparedPublish RedisBroker::prepare_publish(std::string_view topic,
                                                          const EventData& event) const noexcept {
    try {
        detail::validate_publish(topic, event);
        return shared_->xadd(topic, event);
    } catch (...) {
        PreparedPublish p;
        p.error = std::current_exception();
        return p;
    }
}

void RedisBroker::publish_impl(PreparedPublish publish, detail::ErasedHandler<std::string> completion) {
    if (publish.error) {
        completion.complete(std::move(publish.error));
        return;
    }
    auto op = std::make_shared<PublishOp>();
    op->conn = shared_->publisher;
    op->command = std::move(publish.command);
    op->topic_offset = publish.topic_offset;
    op->topic_size = publish.topic_size;
    op->completion = std::move(completion);
    const auto limit = shared_->config.command_timeout.count() > 0 ? shared_->config.command_timeout
                                                                    : shared_->config.connect_timeout;
    op->deadline = add_saturated(SteadyClock::now(), limit);
    shared_->trim_by_length(std::string_view(op->command).substr(op->topic_offset, op->topic_size));
    op->attempt();
}

void RedisBroker::consume_impl(ConsumerOptions options, MessageHandler handler,
                               detail::ErasedHandler<void> completion) {
    detail::run_consumer(std::make_shared<Consumer>(shared_, ex_, std::move(options), std::move(handler)),
                         std::move(completion));
}

void RedisBroker::command_impl(std::vector<std::string> argv, detail::ErasedHandler<json> completion) {
    if (argv.empty()) {
        completion.complete(std::make_exception_ptr(Error(errc::invalid_argument, "redis command: argv is empty")));
        return;
    }
    auto name = argv.front();
    shared_->publisher->async_exec(
        std::move(argv), [c = std::move(completion), name, endpoint = shared_->endpoint](std::exception_ptr e,
                                                                                           Reply r) mutable {
            if (e) c.complete(std::move(e));
            else if (r.is_error()) c.complete(std::make_exception_ptr(protocol(endpoint, name + ": " + r.str)));
            else c.complete(nullptr, reply_to_json(r));
        });
}

}  // namespace boong
