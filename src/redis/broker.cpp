#include <boong/redis/broker.hpp>
#include "broker/delivery_policy.hpp"
#include <boong/detail/validate.hpp>

#include "broker/consumer_loop.hpp"
#include "broker/dead_letters.hpp"
#include "redis/connection.hpp"
#include "redis/envelope.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <mutex>
#include <set>

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

// Sends dead letters back, atomically per entry: XADD to the topic of the
// entry's fields as they were (all but "dead_letter"), then XDEL from the
// dead-letter stream. Entries no longer there are skipped.
// KEYS: dlq, topic. ARGV: maxlen, id, id, ...
constexpr const char* redrive_script = R"lua(
local n = 0
for i = 2, #ARGV do
  local found = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #found == 1 then
    local fields = found[1][2]
    local args = {}
    for j = 1, #fields, 2 do
      if fields[j] ~= 'dead_letter' then
        args[#args + 1] = fields[j]
        args[#args + 1] = fields[j + 1]
      end
    end
    if #args > 0 then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', unpack(args))
    end
    redis.call('XDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
)lua";

// How the consumer groups of stream KEYS[1] stand, read at one instant (the
// figures are differences of counters that move as messages flow).
// ARGV[1]: how many unread entries the script counts at most.
//
// Redis's own lag (entries-added - entries-read) also counts the entries a
// length or age limit trimmed before the group read them. The script splits
// it: the group's unread entries are 0 when it has read the last one, the
// stream's length when it trails the first one left, else counted (up to
// ARGV[1]; beyond, lag is Redis's and trimmed unknown). Trimmed is known only
// while the stream has had no XDEL (which makes the counters estimates).
// Per group: name, consumers, pending, lag, trimmed, oldest pending id
// (nil: cannot tell, or nothing pending).
constexpr const char* group_status_script = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local function fields(list)
  local t = {}
  for i = 1, #list, 2 do t[list[i]] = list[i + 1] end
  return t
end
local function id_less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local s = fields(redis.call('XINFO', 'STREAM', KEYS[1]))
local first = s['first-entry'] and s['first-entry'][1]
local cap = tonumber(ARGV[1])
local out = {}
for _, raw in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local g = fields(raw)
  local last = g['last-delivered-id']
  local unread = false
  if s['length'] == 0 or not id_less(last, s['last-generated-id']) then
    unread = 0
  elseif first and id_less(last, first) then
    unread = s['length']
  else
    local n = #redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', cap)
    if n < cap then unread = n end
  end
  local trimmed = false
  if unread and g['entries-read'] and s['max-deleted-entry-id'] == '0-0' then
    trimmed = math.max(0, s['entries-added'] - g['entries-read'] - unread)
  end
  local lag = unread
  if lag == false then lag = g['lag'] end
  local oldest = false
  if g['pending'] > 0 then oldest = redis.call('XPENDING', KEYS[1], g['name'])[2] end
  out[#out + 1] = {g['name'], g['consumers'], g['pending'], lag, trimmed, oldest}
end
return out
)lua";

// Unread entries the group status script counts at most: the script then
// holds Redis for about 3 ms (2.8 ms for 1,000 entries of 450 bytes, Redis
// 7.0 on the 2-core development machine), once per consumer and
// backlog_interval.
constexpr int group_status_count_limit = 1000;

json reply_to_json(const Reply& r) {
    switch (r.type) {
    case Reply::Type::nil: return nullptr;
    case Reply::Type::string:
    case Reply::Type::status:
    case Reply::Type::error: return redis::with_utf8_replaced(r.str);
    case Reply::Type::integer: return r.integer;
    case Reply::Type::array: {
        // hiredis's reader nests replies at most 7 deep: this recursion is bounded.
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

// Exponential backoff for a publish or an ack retried through a connection
// loss: 50 ms doubling up to 2 s.
milliseconds backoff(int failures) {
    const int shift = std::clamp(failures - 1, 0, 6);
    return std::min(milliseconds(50 << shift), milliseconds(2000));
}

// A stream id as XRANGE's exclusive start: "(1-2".
std::string after_id(const std::string& id) { return id.empty() ? "-" : "(" + id; }

}  // namespace

struct RedisBroker::Shared {
    RedisBrokerConfig config;
    std::string max_len_args;  // "MAXLEN" "~" <config.max_len> in RESP, made once
    redis::Endpoint endpoint;
    std::shared_ptr<Connection> publisher;  // pipelined: publishes, acks, dead letters, raw commands
    std::mutex trim_mutex;
    std::map<std::string, SteadyClock::time_point, std::less<>> last_trim;  // with ttl: per topic

    milliseconds retry_limit() const {
        return config.command_timeout.count() > 0 ? config.command_timeout : config.connect_timeout;
    }

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
        redis::append_envelope(resp, e, config.max_json_depth);
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

    // The dead-letter script's argv: the entry's fields as they arrived (a
    // "dead_letter" field of its own is replaced), then the record.
    std::vector<std::string> dead_letter_argv(const std::string& topic, const std::string& group,
                                              const std::string& source_id, const redis::Fields& fields,
                                              const json& info) const {
        std::vector<std::string> argv{"EVAL", dead_letter_script, "2", dead_letter_topic(topic), topic,
                                      std::to_string(config.max_len), group, source_id};
        for (const auto& [k, v] : fields) {
            if (k == redis::kDeadLetterField) continue;
            argv.push_back(k);
            argv.push_back(v);
        }
        argv.emplace_back(redis::kDeadLetterField);
        argv.push_back(info.dump(-1, ' ', false, json::error_handler_t::replace));
        return argv;
    }

    // A command on the publishing connection, retried through connection
    // losses until the retry limit (for idempotent commands only).
    asio::awaitable<Reply> exec_retrying(std::vector<std::string> argv) {
        const auto deadline = detail::add_saturated(SteadyClock::now(), retry_limit());
        std::optional<asio::steady_timer> pause;
        for (int attempt = 1;; ++attempt) {
            try {
                co_return co_await publisher->async_exec(argv, asio::use_awaitable);
            } catch (const Error& e) {
                if (e.code() != errc::broker_unavailable || SteadyClock::now() + backoff(attempt) >= deadline) throw;
            }
            if (!pause) pause.emplace(co_await asio::this_coro::executor);
            pause->expires_after(backoff(attempt));
            boost::system::error_code ec;
            co_await pause->async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
    }

    // The ids of the dead letters of `topic` that `selection` names, a page
    // at a time after `after` (ids: the page of the given ones).
    asio::awaitable<std::vector<std::string>> select_page(const std::string& topic,
                                                          const DeadLetterSelection& selection,
                                                          const std::string& after, std::size_t page) {
        std::vector<std::string> ids;
        if (!selection.ids.empty()) co_return ids;  // handled by the caller
        std::string end = "+";
        if (selection.before) {
            const auto ms = std::chrono::duration_cast<milliseconds>(selection.before->time_since_epoch()).count();
            end = "(" + std::to_string(std::max<long long>(0, ms)) + "-0";
        }
        std::vector<std::string> argv{"XRANGE", dead_letter_topic(topic), after_id(after), end, "COUNT",
                                      std::to_string(page)};
        auto r = co_await exec_retrying(std::move(argv));
        if (r.is_error()) throw protocol(endpoint, "XRANGE on '" + dead_letter_topic(topic) + "' failed: " + r.str);
        for (auto& entry : redis::parse_entries(r)) ids.push_back(std::move(entry.id));
        co_return ids;
    }
};

// What the shared consumer loop needs of Redis: XREADGROUP on a connection of
// its own (with a finite BLOCK), XAUTOCLAIM of entries idle longer than the
// visibility timeout, XACK, dead letters, and XCLAIM JUSTID to keep held
// entries. Runs on the consumer's strand.
class RedisBroker::Source final : public detail::MessageSource {
public:
    Source(std::shared_ptr<Shared> shared, const asio::strand<asio::any_io_executor>& strand, ConsumerOptions options)
        : shared_(std::move(shared)),
          options_(std::move(options)),
          conn_(std::make_shared<Connection>(strand, shared_->endpoint, "consumer '" + options_.consumer + "'")) {}

    const char* broker_name() const noexcept override { return "redis broker"; }

    asio::awaitable<std::vector<Delivery>> fetch(std::size_t max) override {
        try {
            if (!group_ready_) {
                co_await create_group();
                group_ready_ = true;
            }
            const auto now = SteadyClock::now();
            if (now >= next_claim_) {
                bool more = false;
                auto reclaimed = co_await reclaim(max, more);
                next_claim_ = more ? now : now + claim_interval();
                if (!reclaimed.empty() || more) co_return reclaimed;
            }
            co_return co_await read_new(max);
        } catch (const Error& e) {
            if (is_unavailable(e.code())) group_ready_ = false;  // the server may have restarted without the group
            throw;
        }
    }

    void wake() override {}  // a blocked XREADGROUP ends within block_timeout anyway

    asio::awaitable<void> ack(const Delivery& d) override {
        raw_.erase(d.message_id);
        trimmed_held_.erase(d.message_id);
        std::vector<std::string> argv{"XACK", options_.topic, options_.group, d.message_id};
        auto r = co_await shared_->exec_retrying(std::move(argv));
        if (r.is_error()) throw protocol(shared_->endpoint, "XACK of " + d.message_id + " failed: " + r.str);
    }

    asio::awaitable<void> redeliver(const Delivery& d, const std::string& why) override {
        if (trimmed_held_.erase(d.message_id) > 0) {
            // No longer pending in Redis: it would never come again. Kept as a
            // dead letter, from what this consumer read.
            co_await dead_letter(d, "its entry was trimmed from the topic (maxLen/ttl) while this consumer held it, "
                                    "so it cannot be delivered again; its handler failed: " + why);
            detail::observe(options_.settings.observer, &Observer::message_dead_lettered, options_.topic,
                            options_.group, "max_deliveries");
            co_return;
        }
        raw_.erase(d.message_id);  // it stays pending; XAUTOCLAIM brings it back
    }

    asio::awaitable<void> dead_letter(const Delivery& d, const std::string& reason) override {
        trimmed_held_.erase(d.message_id);
        redis::Entry entry{d.message_id, {}, false};
        if (auto it = raw_.find(d.message_id); it != raw_.end()) {
            entry.fields = std::move(it->second);
            raw_.erase(it);
        } else {
            redis::append_envelope(entry.fields, d.event, shared_->config.max_json_depth);
        }
        co_await dead_letter(*shared_->publisher, entry, d.delivery_count, reason);
    }

    asio::awaitable<std::vector<std::string>> hold(std::vector<std::string> ids) override {
        // Claims them again for this consumer without counting a delivery
        // (JUSTID), but only those idle for a while: one another consumer
        // has just taken is left to it.
        const auto min_idle = std::max(milliseconds(1), options_.settings.visibility_timeout / 4);
        std::vector<std::string> argv{"XCLAIM", options_.topic, options_.group, options_.consumer,
                                      std::to_string(min_idle.count())};
        for (const auto& id : ids) argv.push_back(id);
        argv.emplace_back("JUSTID");
        auto r = co_await shared_->publisher->async_exec(std::move(argv), asio::use_awaitable);
        if (r.is_error()) throw protocol(shared_->endpoint, "XCLAIM on '" + options_.topic + "' failed: " + r.str);
        std::vector<std::string> kept;
        for (auto& e : r.elements) kept.push_back(std::move(e.str));
        for (const auto& id : ids) {
            if (std::find(kept.begin(), kept.end(), id) != kept.end()) continue;
            if (trimmed_held_.count(id)) {  // found trimmed by an earlier hold
                kept.push_back(id);
                continue;
            }
            // Not claimed: another consumer took it, or a length or age limit
            // trimmed its entry (Redis then drops it from the pending entries
            // too). Trimmed, nobody else can ever have it: this consumer keeps
            // it, from what it read, rather than lose it.
            std::vector<std::string> lookup{"XRANGE", options_.topic, id, id};
            auto found = co_await shared_->publisher->async_exec(std::move(lookup), asio::use_awaitable);
            if (found.type == Reply::Type::array && found.elements.empty()) {
                spdlog::warn("redis broker: held message {} of topic '{}' (group '{}') was trimmed by the topic's "
                             "length or age limit; this consumer still handles it",
                             id, options_.topic, options_.group);
                trimmed_held_.insert(id);
                kept.push_back(id);
            } else {
                raw_.erase(id);
            }
        }
        co_return kept;
    }

    asio::awaitable<std::optional<ConsumerGroupStatus>> backlog() override {
        auto groups = co_await consumer_groups(shared_, options_.topic);
        co_return detail::status_of(std::move(groups), options_.group);
    }

    // Dropping the reading connection ends a blocked XREADGROUP at once; what
    // it had already read stays pending for others.
    void close() override { conn_->close(true); }

private:
    // How often pending entries are looked at for reclaiming.
    milliseconds claim_interval() const {
        const auto quarter = options_.settings.visibility_timeout / 4;
        return std::clamp(quarter, milliseconds(10), std::max(milliseconds(10), shared_->config.block_timeout));
    }

    asio::awaitable<Reply> exec(std::vector<std::string> argv, milliseconds extra = {}) {
        co_return co_await conn_->async_exec(std::move(argv), asio::use_awaitable, extra);
    }

    asio::awaitable<void> create_group() {
        // Idempotent: BUSYGROUP means it exists. A new group starts at the
        // beginning of the stream, as the Broker contract asks.
        std::vector<std::string> argv{"XGROUP", "CREATE", options_.topic, options_.group, "0", "MKSTREAM"};
        auto r = co_await exec(std::move(argv));
        if (r.is_error() && r.str.rfind("BUSYGROUP", 0) != 0)
            throw protocol(shared_->endpoint, "XGROUP CREATE '" + options_.topic + "' '" + options_.group +
                                                  "' failed: " + r.str);
    }

    asio::awaitable<std::vector<Delivery>> read_new(std::size_t max) {
        const auto until_claim = std::chrono::duration_cast<milliseconds>(next_claim_ - SteadyClock::now());
        const auto block = std::clamp(until_claim, milliseconds(1), shared_->config.block_timeout);
        std::vector<std::string> argv{"XREADGROUP", "GROUP", options_.group, options_.consumer,
                                      "COUNT",      std::to_string(max), "BLOCK", std::to_string(block.count()),
                                      "STREAMS",    options_.topic,      ">"};
        auto r = co_await exec(std::move(argv), block);
        std::vector<Delivery> out;
        if (r.is_error()) {
            if (r.str.rfind("NOGROUP", 0) == 0) {
                group_ready_ = false;  // deleted (or lost in a restart): create it again
                co_return out;
            }
            throw protocol(shared_->endpoint, "XREADGROUP on '" + options_.topic + "' failed: " + r.str);
        }
        if (r.is_nil()) co_return out;  // timed out
        if (r.type != Reply::Type::array || r.elements.empty() || r.elements[0].elements.size() != 2)
            throw protocol(shared_->endpoint, "XREADGROUP returned an unexpected reply");
        for (auto& entry : redis::parse_entries(r.elements[0].elements[1])) {
            if (entry.deleted) continue;
            co_await deliver(std::move(entry), 1, out);
        }
        co_return out;
    }

    // XAUTOCLAIM entries idle longer than the visibility timeout; `more`:
    // the scan has more to look at.
    asio::awaitable<std::vector<Delivery>> reclaim(std::size_t max, bool& more) {
        std::vector<Delivery> out;
        std::vector<std::string> argv{"XAUTOCLAIM", options_.topic, options_.group, options_.consumer,
                                      std::to_string(options_.settings.visibility_timeout.count()), claim_cursor_,
                                      "COUNT", std::to_string(max)};
        auto r = co_await exec(std::move(argv));
        if (r.is_error()) {
            if (r.str.rfind("NOGROUP", 0) == 0) {
                group_ready_ = false;
                co_return out;
            }
            throw protocol(shared_->endpoint, "XAUTOCLAIM on '" + options_.topic + "' failed: " + r.str);
        }
        if (r.type != Reply::Type::array || r.elements.size() < 2)
            throw protocol(shared_->endpoint, "XAUTOCLAIM returned an unexpected reply");
        claim_cursor_ = r.elements[0].str;
        more = claim_cursor_ != "0-0";
        auto entries = redis::parse_entries(r.elements[1]);
        // Pending entries a length or age limit trimmed away: Redis 7 drops
        // them from the group and lists their ids third (6.2 listed them
        // without fields). Their messages are lost: said, never skipped quietly.
        std::vector<std::string> trimmed;
        if (r.elements.size() >= 3)
            for (const auto& id : r.elements[2].elements) trimmed.push_back(id.str);
        for (const auto& e : entries)
            if (e.deleted) trimmed.push_back(e.id);
        if (!trimmed.empty()) report_trimmed_pending(trimmed);
        std::erase_if(entries, [](const redis::Entry& e) { return e.deleted; });
        if (entries.empty()) co_return out;
        // XAUTOCLAIM counted this delivery; XPENDING tells the count.
        std::vector<std::string> pending_argv{"XPENDING", options_.topic, options_.group, entries.front().id,
                                              entries.back().id, std::to_string(entries.size() + 16), options_.consumer};
        auto p = co_await exec(std::move(pending_argv));
        std::map<std::string, int> counts;
        if (p.type == Reply::Type::array) {
            for (const auto& row : p.elements)
                if (row.elements.size() == 4) counts[row.elements[0].str] = static_cast<int>(row.elements[3].integer);
        }
        for (auto& entry : entries) {
            const auto it = counts.find(entry.id);
            const int count = it == counts.end() ? 2 : it->second;
            const int before = count - 1;
            if (detail::reclaim(before, options_.settings.max_deliveries) == detail::Reclaim::quarantine) {
                // Never decoded: a message that kills its consumer is not given the chance again.
                co_await dead_letter(*conn_, entry, before, detail::quarantine_reason(before, {}));
                detail::observe(options_.settings.observer, &Observer::message_dead_lettered, options_.topic,
                                options_.group, "max_deliveries");
                continue;
            }
            co_await deliver(std::move(entry), count, out);
        }
        co_return out;
    }

    asio::awaitable<void> deliver(redis::Entry entry, int count, std::vector<Delivery>& out) {
        auto decoded = redis::decode_envelope(entry.fields, shared_->config.max_json_depth);
        if (!decoded.event) {
            // It can never succeed: dead letter now, as it is, never loop on it.
            co_await dead_letter(*conn_, entry, count, decoded.error);
            detail::observe(options_.settings.observer, &Observer::message_dead_lettered, options_.topic,
                            options_.group, "undecodable");
            co_return;
        }
        raw_[entry.id] = std::move(entry.fields);
        out.push_back(Delivery{options_.topic, options_.group, options_.consumer, std::move(entry.id), count,
                               std::move(*decoded.event)});
    }

    // Moves `entry` (its fields as they arrived) to the dead letters.
    asio::awaitable<void> dead_letter(Connection& conn, const redis::Entry& entry, int count,
                                      const std::string& reason) {
        const auto info = detail::dead_letter_info(options_.topic, entry.id, options_.group,
                                                   redis::with_utf8_replaced(reason), count, Clock::now());
        auto argv = shared_->dead_letter_argv(options_.topic, options_.group, entry.id, entry.fields, info);
        auto r = co_await conn.async_exec(std::move(argv), asio::use_awaitable);
        if (r.is_error())
            throw protocol(shared_->endpoint, "dead-lettering message " + entry.id + " of '" + options_.topic +
                                                  "' failed: " + r.str);
        spdlog::error("redis broker: message {} of topic '{}' (group '{}') dead-lettered to '{}' as {} after {} "
                      "deliveries: {}",
                      entry.id, options_.topic, options_.group, dead_letter_topic(options_.topic), r.str, count,
                      reason);
    }

    void report_trimmed_pending(const std::vector<std::string>& ids) const {
        constexpr std::size_t shown = 5;
        std::string listed;
        for (std::size_t i = 0; i < std::min(ids.size(), shown); ++i) listed += (i ? ", " : "") + ids[i];
        if (ids.size() > shown) listed += ", ...";
        spdlog::error("redis broker: {} message(s) of topic '{}' delivered to group '{}' and never acknowledged "
                      "were trimmed away by its length or age limit (maxLen/ttl) before they could be delivered "
                      "again; they are lost to the group: {}",
                      ids.size(), options_.topic, options_.group, listed);
        detail::observe(options_.settings.observer, &Observer::consumer_trimmed_pending, options_.topic,
                        options_.group, ids.size());
    }

    std::shared_ptr<Shared> shared_;
    ConsumerOptions options_;
    std::shared_ptr<Connection> conn_;  // this consumer's own: XREADGROUP BLOCK stalls its connection
    std::map<std::string, redis::Fields> raw_;  // what each unsettled delivery arrived as, for its dead letter
    std::set<std::string> trimmed_held_;        // held deliveries whose entries were trimmed (see hold)
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
    if (config.max_json_depth < 1 || config.max_json_depth > 10000)
        invalid("max_json_depth " + std::to_string(config.max_json_depth) + " is not 1..10000");
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
        detail::validate_publish(topic, event, shared_->config.max_json_depth);
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
    op->deadline = detail::add_saturated(SteadyClock::now(), shared_->retry_limit());
    shared_->trim_by_length(std::string_view(op->command).substr(op->topic_offset, op->topic_size));
    op->attempt();
}

void RedisBroker::consume_impl(ConsumerOptions options, MessageHandler handler,
                               detail::ErasedHandler<void> completion) {
    detail::start_consumer<Source>(ex_, shared_, std::move(options), std::move(handler), std::move(completion));
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

namespace {

// Dead letters as XRANGE returns them: the record, and the event (or, when it
// does not decode, its text).
std::vector<DeadLetter> to_dead_letters(const Reply& r, int max_depth) {
    std::vector<DeadLetter> out;
    for (auto& entry : redis::parse_entries(r)) {
        if (entry.deleted) continue;
        json info;
        redis::Fields original;
        for (auto& [k, v] : entry.fields) {
            if (k == redis::kDeadLetterField) info = json::parse(v, nullptr, false);
            else original.emplace_back(std::move(k), std::move(v));
        }
        DeadLetter d = detail::dead_letter_from_info(info);
        d.message_id = std::move(entry.id);
        auto decoded = redis::decode_envelope(original, max_depth);
        if (decoded.event) {
            d.event = std::move(decoded.event);
        } else {
            d.raw = redis::fields_text(original);
        }
        out.push_back(std::move(d));
    }
    return out;
}

}  // namespace

asio::awaitable<std::vector<DeadLetter>> RedisBroker::list_dead_letters(std::shared_ptr<Shared> shared,
                                                                      std::string topic, std::string after,
                                                                      std::size_t max_count) {
    detail::validate_dead_letter_query(topic, max_count);
    const auto dlq = dead_letter_topic(topic);
    std::vector<std::string> argv{"XRANGE", dlq, after_id(after), "+", "COUNT", std::to_string(max_count)};
    auto r = co_await shared->exec_retrying(std::move(argv));
    if (r.is_error()) throw protocol(shared->endpoint, "XRANGE on '" + dlq + "' failed: " + r.str);
    co_return to_dead_letters(r, shared->config.max_json_depth);
}

namespace {

// The group status script's reply (see group_status_script).
std::vector<ConsumerGroupStatus> to_group_statuses(const redis::Endpoint& endpoint, const Reply& r) {
    const auto count = [](const Reply& v) -> std::optional<std::size_t> {
        if (v.type != Reply::Type::integer) return std::nullopt;
        return static_cast<std::size_t>(std::max<long long>(0, v.integer));
    };
    std::vector<ConsumerGroupStatus> out;
    for (const auto& g : r.elements) {
        if (g.elements.size() != 6) throw protocol(endpoint, "the group status script returned an unexpected reply");
        ConsumerGroupStatus s;
        s.group = g.elements[0].str;
        s.consumers = count(g.elements[1]).value_or(0);
        s.pending = count(g.elements[2]);
        s.lag = count(g.elements[3]);
        s.trimmed = count(g.elements[4]);
        // An entry id starts with the time it was added, in ms.
        if (const auto& id = g.elements[5].str; g.elements[5].type == Reply::Type::string) {
            long long ms = 0;
            const auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), ms);
            if (ec == std::errc{} && end != id.data()) s.oldest_pending = Clock::time_point(milliseconds(ms));
        }
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace

asio::awaitable<std::vector<ConsumerGroupStatus>> RedisBroker::consumer_groups(std::shared_ptr<Shared> shared,
                                                                              std::string topic) {
    if (topic.empty()) throw Error(errc::invalid_argument, "consumer groups: topic is empty");
    std::vector<std::string> argv{"EVAL", group_status_script, "1", topic, std::to_string(group_status_count_limit)};
    auto r = co_await shared->exec_retrying(std::move(argv));
    if (r.is_error()) throw protocol(shared->endpoint, "the group status of '" + topic + "' failed: " + r.str);
    co_return to_group_statuses(shared->endpoint, r);
}

namespace {

// Re-drives (the script) or drops (XDEL) one page of dead letters of `topic`.
asio::awaitable<std::size_t> settle_page(Connection& publisher, const std::string& topic, std::int64_t max_len,
                                         std::vector<std::string> ids, bool redrive) {
    std::vector<std::string> argv;
    if (redrive) {
        argv = {"EVAL", redrive_script, "2", dead_letter_topic(topic), topic, std::to_string(max_len)};
    } else {
        argv = {"XDEL", dead_letter_topic(topic)};
    }
    for (auto& id : ids) argv.push_back(std::move(id));
    // Not retried through a connection loss: a redrive that reached Redis
    // must not run twice (the entries would be sent back twice).
    auto r = co_await publisher.async_exec(std::move(argv), asio::use_awaitable);
    if (r.is_error())
        throw protocol(publisher.endpoint(), std::string(redrive ? "re-driving" : "dropping") + " dead letters of '" +
                                                 topic + "' failed: " + r.str);
    co_return static_cast<std::size_t>(r.integer);
}

}  // namespace

asio::awaitable<std::size_t> RedisBroker::settle_dead_letters(std::shared_ptr<Shared> shared, std::string topic,
                                                             DeadLetterSelection selection, bool redrive) {
    detail::validate_dead_letter_selection(topic, selection);
    constexpr std::size_t kPage = 100;
    std::size_t n = 0;
    if (!selection.ids.empty()) {
        for (std::size_t i = 0; i < selection.ids.size(); i += kPage) {
            const auto end = std::min(selection.ids.size(), i + kPage);
            std::vector<std::string> page(selection.ids.begin() + static_cast<std::ptrdiff_t>(i),
                                          selection.ids.begin() + static_cast<std::ptrdiff_t>(end));
            n += co_await settle_page(*shared->publisher, topic, shared->config.max_len, std::move(page), redrive);
        }
        co_return n;
    }
    std::string after;
    for (;;) {
        auto ids = co_await shared->select_page(topic, selection, after, kPage);
        if (ids.empty()) break;
        after = ids.back();
        const bool last = ids.size() < kPage;
        n += co_await settle_page(*shared->publisher, topic, shared->config.max_len, std::move(ids), redrive);
        if (last) break;
    }
    co_return n;
}

}  // namespace boong
