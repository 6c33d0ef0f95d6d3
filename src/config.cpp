// Loading and validating Boong's configuration, and validating saga policies.
#include <boong/config.hpp>
#include <boong/error.hpp>
#include <boong/log.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <memory>
#include <ratio>
#include <sstream>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace boong {
namespace {

using nlohmann::json;

// ---- message text -----------------------------------------------------------

// A number as people write it: 1, 0.5, 100 (not 1.000000).
std::string show_number(double d) {
    std::ostringstream out;
    out << d;
    return out.str();
}

// A value as found in the file, as JSON text, cut short so that a large object
// does not swamp the message.
std::string show(const json& v) {
    // `replace`: a string built in memory may hold invalid UTF-8, and a
    // diagnostic must not throw something else instead.
    std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
    constexpr std::size_t kMaxShown = 60;
    if (s.size() > kMaxShown) {
        std::size_t cut = kMaxShown - 3;
        while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not mid-character
        s.resize(cut);
        s += "...";
    }
    return s;
}

bool is_plain_key(std::string_view key) {
    return !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
               c == '-';
    });
}

// The path of `key` inside `path`: "a.b", or a["x y"] when the key (a step
// name, an unknown key) would make a dotted path ambiguous.
std::string join_path(const std::string& path, std::string_view key) {
    if (!is_plain_key(key)) return path + "[" + show(json(std::string(key))) + "]";
    return path.empty() ? std::string(key) : path + "." + std::string(key);
}

// "<source>: <path>: <what>", the shape of every config error.
[[noreturn]] void fail_at(std::string_view source, const std::string& path, const std::string& what) {
    std::string message(source);
    message += ": ";
    if (!path.empty()) message += path + ": ";
    message += what;
    throw Error(errc::invalid_config, message);
}

// `[A-Za-z_][A-Za-z0-9_]*`, in explicit ASCII ranges: <cctype> would follow the locale.
bool has_identifier_shape(std::string_view s) noexcept {
    const auto is_start = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
    const auto is_rest = [&](char c) { return is_start(c) || (c >= '0' && c <= '9'); };
    return !s.empty() && is_start(s.front()) && std::all_of(s.begin() + 1, s.end(), is_rest);
}

// ---- the field reader -------------------------------------------------------

constexpr std::int64_t kUnbounded = std::numeric_limits<std::int64_t>::max();

struct IntRange {
    std::int64_t lo;
    std::int64_t hi = kUnbounded;
};

std::string describe(IntRange r) {
    if (r.hi == kUnbounded) return ">= " + std::to_string(r.lo);
    return "in [" + std::to_string(r.lo) + ", " + std::to_string(r.hi) + "]";
}

template <class Period>
constexpr std::string_view integer_kind() {
    if constexpr (std::is_same_v<Period, std::milli>) {
        return "an integer number of milliseconds";
    } else {
        static_assert(std::is_same_v<Period, std::micro>, "durations in the config are ms or us");
        return "an integer number of microseconds";
    }
}

// Reads the keys of one JSON object, knowing the object's path for messages.
// Each read names a key, checks its type and range, and records the key as
// known; check_no_unknown_keys() then refuses whatever was not asked for, so
// a misspelt key is an error rather than a silently ignored setting.
class FieldReader {
public:
    FieldReader(const json& object, std::string path, std::string_view source)
        : object_(object), path_(std::move(path)), source_(source) {
        if (!object_.is_object()) fail_at(source_, path_, "expected an object, got " + show(object_));
    }

    // The object under `key`; an absent key reads as an empty object, so every
    // section keeps its defaults when left out.
    FieldReader child(std::string_view key) {
        static const json kEmpty = json::object();
        const json* v = find(key);
        return FieldReader(v ? *v : kEmpty, join_path(path_, key), source_);
    }

    // For an object whose keys are names the user chooses (step names): calls
    // f(name, reader) with a reader over each member.
    template <class F>
    void for_each_member(F&& f) const {
        for (auto it = object_.begin(); it != object_.end(); ++it) {
            FieldReader member(it.value(), join_path(path_, it.key()), source_);
            f(it.key(), member);
        }
    }

    // Each read leaves `out` alone and returns false when the key is absent.
    bool read(std::string_view key, int& out, IntRange range) {
        const json* v = find(key);
        if (v) out = static_cast<int>(integer(key, *v, "an integer", range));  // ranges fit in int
        return v != nullptr;
    }

    bool read(std::string_view key, std::int64_t& out, IntRange range) {
        const json* v = find(key);
        if (v) out = integer(key, *v, "an integer", range);
        return v != nullptr;
    }

    template <class Rep, class Period>
    bool read(std::string_view key, std::chrono::duration<Rep, Period>& out, IntRange range) {
        const json* v = find(key);
        if (v) out = std::chrono::duration<Rep, Period>(integer(key, *v, integer_kind<Period>(), range));
        return v != nullptr;
    }

    // null turns the limit off explicitly.
    template <class Rep, class Period>
    bool read(std::string_view key, std::optional<std::chrono::duration<Rep, Period>>& out, IntRange range) {
        const json* v = find(key);
        if (!v) return false;
        if (v->is_null()) {
            out.reset();
        } else {
            out = std::chrono::duration<Rep, Period>(integer(key, *v, integer_kind<Period>(), range));
        }
        return true;
    }

    bool read(std::string_view key, bool& out) {
        const json* v = find(key);
        if (!v) return false;
        if (!v->is_boolean()) fail(key, "expected true or false, got " + show(*v));
        out = v->get<bool>();
        return true;
    }

    bool read(std::string_view key, double& out, double lo, double hi) {
        const json* v = find(key);
        if (!v) return false;
        if (!v->is_number()) fail(key, "expected a number, got " + show(*v));
        const double d = v->get<double>();
        // Written so that NaN (possible in JSON built in memory) fails too.
        if (!(d >= lo && d <= hi)) {
            fail(key, "expected a number in [" + show_number(lo) + ", " + show_number(hi) + "], got " + show(*v));
        }
        out = d;
        return true;
    }

    // A string that `valid` accepts; `expected` says in words what it accepts.
    bool read(std::string_view key, std::string& out, std::string_view expected, bool (*valid)(std::string_view)) {
        const json* v = find(key);
        if (!v) return false;
        if (!v->is_string() || !valid(v->get_ref<const std::string&>())) {
            fail(key, "expected " + std::string(expected) + ", got " + show(*v));
        }
        out = v->get<std::string>();
        return true;
    }

    // One of `choices` (string literals): returns it, or nothing when the key is absent.
    std::optional<std::string_view> read_choice(std::string_view key,
                                                std::initializer_list<std::string_view> choices) {
        const json* v = find(key);
        if (!v) return std::nullopt;
        if (v->is_string()) {
            const auto it = std::find(choices.begin(), choices.end(), v->get_ref<const std::string&>());
            if (it != choices.end()) return *it;
        }
        std::string expected;
        for (std::string_view c : choices) expected += (expected.empty() ? "" : ", ") + show(json(std::string(c)));
        fail(key, "expected one of " + expected + ", got " + show(*v));
    }

    // The raw value of `key` (recorded as known), for checks of their own.
    const json* find(std::string_view key) {
        if (std::find(known_.begin(), known_.end(), key) == known_.end()) known_.emplace_back(key);
        const auto it = object_.find(key);
        return it == object_.end() ? nullptr : &*it;
    }

    [[noreturn]] void fail(std::string_view key, const std::string& what) const {
        fail_at(source_, join_path(path_, key), what);
    }

    // A problem with this object itself rather than one of its keys.
    [[noreturn]] void fail(const std::string& what) const { fail_at(source_, path_, what); }

    // Call after every read of this object.
    void check_no_unknown_keys() const {
        for (auto it = object_.begin(); it != object_.end(); ++it) {
            if (std::find(known_.begin(), known_.end(), it.key()) != known_.end()) continue;
            std::string known;
            for (const auto& k : known_) known += (known.empty() ? "" : ", ") + k;
            fail(it.key(), "unknown key (known keys: " + known + ")");
        }
    }

private:
    std::int64_t integer(std::string_view key, const json& v, std::string_view kind, IntRange range) const {
        // is_number_integer() is false for 3.5 and for booleans: neither is an integer.
        if (!v.is_number_integer()) fail(key, "expected " + std::string(kind) + ", got " + show(v));
        // JSON integers above INT64_MAX parse as unsigned; they are out of every range.
        const bool fits = !v.is_number_unsigned() ||
                          v.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
        const std::int64_t n = fits ? v.get<std::int64_t>() : 0;
        if (!fits || n < range.lo || n > range.hi) {
            fail(key, "expected " + std::string(kind) + " " + describe(range) + ", got " + show(v));
        }
        return n;
    }

    const json& object_;
    std::string path_;
    std::string_view source_;
    std::vector<std::string> known_;  // in the order asked for, for the "known keys" list
};

// ---- the sections -----------------------------------------------------------

constexpr IntRange kAttempts{1, 100};
constexpr IntRange kDelay{0, 86'400'000};       // a day: anything longer is a typo
constexpr IntRange kTimeout{0, 86'400'000};     // 0 = no timeout
constexpr IntRange kPositiveTimeout{1, 86'400'000};
// Ten years: beyond any retention, and small enough that `now - ttl` cannot overflow.
constexpr IntRange kTtl{1, 315'360'000'000};

bool is_non_empty(std::string_view s) { return !s.empty(); }
bool is_anything(std::string_view) { return true; }
bool is_env_name_or_empty(std::string_view s) { return s.empty() || has_identifier_shape(s); }

constexpr std::string_view kIdentifierExpected =
    "a lower-case SQL identifier ([a-z_][a-z0-9_]*, 1 to 63 characters, not a reserved word)";
constexpr std::string_view kEnvNameExpected = "the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*)";

struct DelayKey {
    std::string_view key;
    bool set_here;  // written at this level, rather than inherited or a default
    milliseconds value;
};

// retryMaxDelay caps every delay, so it cannot be below an initial delay. Blame
// the key written at this level: the other may be inherited or a default the
// user never saw.
void check_cap(const FieldReader& r, DelayKey cap, DelayKey delay) {
    if (cap.value >= delay.value) return;
    if (cap.set_here) {
        r.fail(cap.key, "expected an integer number of milliseconds >= " + std::string(delay.key) + " (" +
                            std::to_string(delay.value.count()) + "), got " + std::to_string(cap.value.count()));
    }
    r.fail(delay.key, "expected an integer number of milliseconds <= " + std::string(cap.key) + " (" +
                          std::to_string(cap.value.count()) + "), got " + std::to_string(delay.value.count()));
}

// The keys shared by the top level and each "steps" entry. Absent keys keep
// the value in `p`: the struct defaults at the top level, the top-level policy
// in a step.
StepPolicy read_step_policy(FieldReader& r, StepPolicy p) {
    r.read("retryAttempts", p.retry.attempts, kAttempts);
    const bool delay_set = r.read("retryDelay", p.retry.initial_delay, kDelay);
    r.read("retryBackoffMultiplier", p.retry.multiplier, 1.0, 100.0);
    const bool cap_set = r.read("retryMaxDelay", p.retry.max_delay, kDelay);
    r.read("retryJitter", p.retry.jitter, 0.0, 1.0);
    r.read("stepTimeout", p.timeout, kTimeout);
    r.read("compensationRetryAttempts", p.compensation_retry.attempts, kAttempts);
    const bool compensation_delay_set = r.read("compensationRetryDelay", p.compensation_retry.initial_delay, kDelay);
    r.read("compensationTimeout", p.compensation_timeout, kTimeout);
    r.read("compensateUncertain", p.compensate_uncertain);

    // Compensations back off like the action: one multiplier, cap and jitter.
    p.compensation_retry.multiplier = p.retry.multiplier;
    p.compensation_retry.max_delay = p.retry.max_delay;
    p.compensation_retry.jitter = p.retry.jitter;

    const DelayKey cap{"retryMaxDelay", cap_set, p.retry.max_delay};
    check_cap(r, cap, {"retryDelay", delay_set, p.retry.initial_delay});
    check_cap(r, cap, {"compensationRetryDelay", compensation_delay_set, p.compensation_retry.initial_delay});
    return p;
}

SagaOptions read_saga(FieldReader& root) {
    SagaOptions saga;
    saga.defaults = read_step_policy(root, saga.defaults);
    // Saga-wide: how soon a step whose dependency is unavailable is tried again.
    const bool outage_set = root.read("outageRetryDelay", saga.outage_backoff.initial_delay, kPositiveTimeout);
    const bool outage_cap_set = root.read("outageRetryMaxDelay", saga.outage_backoff.max_delay, kPositiveTimeout);
    check_cap(root, {"outageRetryMaxDelay", outage_cap_set, saga.outage_backoff.max_delay},
              {"outageRetryDelay", outage_set, saga.outage_backoff.initial_delay});
    root.child("steps").for_each_member([&](const std::string& name, FieldReader& step) {
        if (name.empty()) step.fail("expected a non-empty step name");
        saga.steps.emplace(name, read_step_policy(step, saga.defaults));
        step.check_no_unknown_keys();
    });
    return saga;
}

// A password's source: the variable passwordEnv names, or the file passwordFile names, not both.
void read_password(FieldReader& r, std::string& env, std::string& file) {
    r.read("passwordEnv", env, kEnvNameExpected, is_env_name_or_empty);
    r.read("passwordFile", file, "a file name", is_anything);
    if (!env.empty() && !file.empty()) r.fail("passwordFile", "expected only one of passwordEnv and passwordFile, got both");
}


EventStoreConfig read_event_store(FieldReader r) {
    EventStoreConfig c;
    if (const auto type = r.read_choice("type", {"memory", "postgres"})) {
        c.type = *type == "postgres" ? EventStoreConfig::Type::postgres : EventStoreConfig::Type::memory;
    }
    PostgresStoreConfig& pg = c.postgres;
    // Table names are spliced into SQL text: no SQL through config.
    r.read("tableName", pg.table_name, kIdentifierExpected, is_sql_identifier);
    r.read("snapshotTableName", pg.snapshot_table_name, kIdentifierExpected, is_sql_identifier);
    r.read("connection", pg.connection, "a non-empty libpq connection string or URI", is_non_empty);
    r.read("poolSize", pg.pool_size, {1, 1024});
    r.read("connectTimeout", pg.connect_timeout, kTimeout);
    r.read("commandTimeout", pg.command_timeout, kTimeout);
    r.read("groupCommitMaxEvents", pg.group_commit_max_events, {1, 100'000});
    r.read("groupCommitDelay", pg.group_commit_delay, {0, 1'000'000});
    read_password(r, pg.password_env, pg.password_file);
    r.check_no_unknown_keys();

    if (c.type == EventStoreConfig::Type::postgres && pg.connection.empty()) {
        r.fail("connection", "expected a non-empty libpq connection string or URI when type is \"postgres\", got none");
    }
    if (pg.snapshot_table_name == pg.table_name) {
        r.fail("snapshotTableName", "expected a table other than tableName, got " + show(json(pg.table_name)));
    }
    return c;
}

RedisBrokerConfig read_redis(FieldReader r) {
    RedisBrokerConfig c;
    r.read("host", c.host, "a non-empty host name or address", is_non_empty);
    r.read("port", c.port, {1, 65535});
    r.read("database", c.database, {0, 15});
    r.read("username", c.username, "a string", is_anything);
    read_password(r, c.password_env, c.password_file);
    r.read("connectTimeout", c.connect_timeout, kTimeout);
    r.read("commandTimeout", c.command_timeout, kTimeout);
    // To Redis, BLOCK 0 means "forever", which would stall a consumer's shutdown.
    r.read("blockTimeout", c.block_timeout, kPositiveTimeout);
    r.read("maxLen", c.max_len, {1});
    r.read("ttl", c.ttl, kTtl);
    r.read("maxJsonDepth", c.max_json_depth, {1, 10000});
    r.check_no_unknown_keys();
    return c;
}

ConsumerSettings read_consumer(FieldReader r) {
    ConsumerSettings c;
    int count = static_cast<int>(c.concurrency);
    r.read("consumerCount", count, {1, 1024});
    c.concurrency = static_cast<std::size_t>(count);
    // Zero would redeliver every message at once, or never (both wrong).
    r.read("visibilityTimeout", c.visibility_timeout, kPositiveTimeout);
    r.read("maxDeliveries", c.max_deliveries, {1, 1000});
    r.read("shutdownGrace", c.shutdown_grace, kTimeout);
    r.read("backlogInterval", c.backlog_interval, kTimeout);  // 0: never sampled
    // While a dependency is unavailable: how soon a paused consumer tries again.
    const bool delay_set = r.read("outageRetryDelay", c.outage_backoff.initial_delay, kPositiveTimeout);
    const bool cap_set = r.read("outageRetryMaxDelay", c.outage_backoff.max_delay, kPositiveTimeout);
    check_cap(r, {"outageRetryMaxDelay", cap_set, c.outage_backoff.max_delay},
              {"outageRetryDelay", delay_set, c.outage_backoff.initial_delay});
    r.check_no_unknown_keys();
    return c;
}

RabbitMqBrokerConfig read_rabbitmq(FieldReader r) {
    RabbitMqBrokerConfig c;
    const bool host_set = r.read("host", c.host, "a non-empty host name or address", is_non_empty);
    const bool port_set = r.read("port", c.port, {1, 65535});
    // "nodes": ["rabbit-1:5672", "rabbit-2:5672", ...]: a cluster, tried in turn.
    if (const json* nodes = r.find("nodes")) {
        if (host_set || port_set)
            r.fail("nodes", "expected either nodes or host and port, got both (nodes replaces them)");
        if (!nodes->is_array() || nodes->empty())
            r.fail("nodes", "expected a non-empty list of \"host:port\" strings, got " + show(*nodes));
        for (const auto& entry : *nodes) {
            std::optional<RabbitMqNode> node;
            if (entry.is_string()) {
                if (auto e = parse_endpoint(entry.get_ref<const std::string&>(), 5672)) node = RabbitMqNode{e->host, e->port};
            }
            if (!node)
                r.fail("nodes", "expected \"host:port\", \"host\" (port 5672) or \"[IPv6 address]:port\" with a port "
                                "in 1..65535, got " + show(entry));
            for (const auto& seen : c.nodes)
                if (seen.host == node->host && seen.port == node->port)
                    r.fail("nodes", "expected each node once, got " + show(entry) + " twice");
            c.nodes.push_back(std::move(*node));
        }
    }
    r.read("vhost", c.vhost, "a non-empty virtual host", is_non_empty);
    r.read("username", c.username, "a non-empty user name", is_non_empty);
    read_password(r, c.password_env, c.password_file);
    r.read("connectTimeout", c.connect_timeout, kPositiveTimeout);
    r.read("publishTimeout", c.publish_timeout, kPositiveTimeout);
    int heartbeat = static_cast<int>(c.heartbeat.count());  // seconds, as AMQP negotiates it
    r.read("heartbeat", heartbeat, {0, 65535});
    c.heartbeat = std::chrono::seconds(heartbeat);
    std::int64_t window = static_cast<std::int64_t>(c.max_unconfirmed);
    r.read("maxUnconfirmed", window, {1, 1'000'000});
    c.max_unconfirmed = static_cast<std::size_t>(window);
    r.read("deliveryLimit", c.delivery_limit, {1, 1'000'000});
    r.read("unroutedQueue", c.unrouted_queue, "a queue name", is_anything);
    r.read("unroutedTtl", c.unrouted_ttl, kTtl);
    r.read("maxJsonDepth", c.max_json_depth, {1, 10000});
    r.read("tls", c.tls);
    r.read("caFile", c.ca_file, "a file name", is_anything);
    r.read("certFile", c.cert_file, "a file name", is_anything);
    r.read("keyFile", c.key_file, "a file name", is_anything);
    r.read("verifyHostname", c.verify_hostname);
    if (!c.cert_file.empty() && c.key_file.empty()) r.fail("keyFile", "expected a key file with certFile, got none");
    // "groups": {"OrderCreated": ["payment", "inventory"], ...}: declared at open.
    if (const json* groups = r.find("groups")) {
        if (!groups->is_object()) r.fail("groups", "expected an object of topic: [group, ...], got " + show(*groups));
        for (const auto& [topic, list] : groups->items()) {
            if (topic.empty() || topic.size() > 200) r.fail("groups", "expected topics of 1..200 bytes, got \"" + topic + "\"");
            if (!list.is_array()) r.fail("groups", "expected a list of group names for \"" + topic + "\", got " + show(list));
            std::vector<std::string> names;
            for (const auto& g : list) {
                if (!g.is_string() || g.get_ref<const std::string&>().empty() || g == "dlq")
                    r.fail("groups", "expected non-empty group names other than \"dlq\" for \"" + topic + "\", got " +
                                         show(g));
                names.push_back(g.get<std::string>());
            }
            c.groups.emplace_back(topic, std::move(names));
        }
    }
    r.check_no_unknown_keys();
    return c;
}

MessageBrokerConfig read_message_broker(FieldReader r) {
    MessageBrokerConfig c;
    if (const auto type = r.read_choice("type", {"memory", "redis-streams", "rabbitmq"})) {
        c.type = *type == "redis-streams" ? MessageBrokerConfig::Type::redis_streams
                 : *type == "rabbitmq"    ? MessageBrokerConfig::Type::rabbitmq
                                          : MessageBrokerConfig::Type::memory;
    }
    // "options" are the chosen backend's (the design's messageBroker.options).
    if (c.type == MessageBrokerConfig::Type::rabbitmq) {
        c.rabbitmq = read_rabbitmq(r.child("options"));
    } else {
        c.redis = read_redis(r.child("options"));
    }
    c.consumer = read_consumer(r.child("consumer"));
    {
        FieldReader s = r.child("signing");
        s.read("keysFile", c.signing.keys_file, "a file name", is_anything);
        s.read("sign", c.signing.sign);
        s.read("require", c.signing.require);
        s.check_no_unknown_keys();
    }
    r.check_no_unknown_keys();
    return c;
}

LoggingConfig read_logging(FieldReader r) {
    LoggingConfig c;
    // spdlog's own level names, so the value can go to spdlog::level::from_str.
    if (const auto level = r.read_choice("level", {"trace", "debug", "info", "warn", "error", "critical", "off"})) {
        c.level = std::string(*level);
    }
    if (const auto format = r.read_choice("format", {"text", "json"})) c.format = std::string(*format);
    r.check_no_unknown_keys();
    return c;
}

// ---- policy validation --------------------------------------------------------

[[noreturn]] void policy_error(std::string_view where, std::string_view field, const std::string& what) {
    std::string message(where);
    if (!message.empty()) message += '.';
    message += field;
    message += ": ";
    message += what;
    throw Error(errc::invalid_config, message);
}

std::string show_ms(milliseconds d) { return std::to_string(d.count()) + " ms"; }

std::string sub_path(std::string_view where, std::string_view field) {
    return where.empty() ? std::string(field) : std::string(where) + "." + std::string(field);
}

}  // namespace

// ---- public -----------------------------------------------------------------

bool is_sql_identifier(std::string_view s) noexcept {
    constexpr std::size_t kMaxLength = 63;  // NAMEDATALEN - 1: Postgres silently truncates longer names
    constexpr auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    // Unquoted, PostgreSQL folds a name to lower case: "Event_Store" would be
    // another deployment's event_store.
    if (std::any_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) return false;
    // Words that are a syntax error or a trap as an unquoted table name.
    static constexpr std::array<std::string_view, 26> kReserved{
        "select", "table",  "user",   "order", "group",   "where",      "from",  "insert", "update",
        "delete", "grant",  "all",    "and",   "or",      "not",        "null",  "default", "check",
        "primary", "references", "limit", "offset", "union", "create", "drop", "alter"};

    if (s.size() > kMaxLength || !has_identifier_shape(s)) return false;
    return std::none_of(kReserved.begin(), kReserved.end(), [&](std::string_view word) {
        return word.size() == s.size() &&
               std::equal(word.begin(), word.end(), s.begin(), [&](char w, char c) { return w == lower(c); });
    });
}

Config parse_config(const nlohmann::json& j, std::string_view source) {
    FieldReader root(j, "", source);
    Config c;
    c.saga = read_saga(root);
    c.event_store = read_event_store(root.child("eventStore"));
    c.message_broker = read_message_broker(root.child("messageBroker"));
    c.logging = read_logging(root.child("logging"));
    root.check_no_unknown_keys();
    // The readers above check stricter ranges than validate(); this keeps the two
    // from drifting apart unnoticed (the runner calls validate() too).
    validate(c.saga);
    return c;
}

Config load_config(const std::filesystem::path& file) {
    const std::string source = file.string();
    // C stdio rather than iostreams: it tells why an open or a read failed.
    struct Closer {
        void operator()(std::FILE* f) const noexcept { std::fclose(f); }
    };
    std::string text;
    {
        const std::unique_ptr<std::FILE, Closer> f(std::fopen(file.c_str(), "rb"));
        if (!f) fail_at(source, "", "cannot open: " + std::generic_category().message(errno));
        std::array<char, 4096> buffer;
        std::size_t n = 0;
        while ((n = std::fread(buffer.data(), 1, buffer.size(), f.get())) > 0) text.append(buffer.data(), n);
        // errno names the cause, e.g. "Is a directory".
        if (std::ferror(f.get())) fail_at(source, "", "cannot read: " + std::generic_category().message(errno));
    }
    json j;
    try {
        j = json::parse(text);
    } catch (const json::parse_error& e) {
        fail_at(source, "", std::string("not valid JSON: ") + e.what());
    }
    return parse_config(j, source);
}

void validate(const RetryPolicy& p, std::string_view where) {
    if (p.attempts < 1) policy_error(where, "attempts", "expected at least 1, got " + std::to_string(p.attempts));
    if (p.initial_delay.count() < 0) {
        policy_error(where, "initial_delay", "expected at least 0 ms, got " + show_ms(p.initial_delay));
    }
    if (!(std::isfinite(p.multiplier) && p.multiplier >= 1.0)) {
        policy_error(where, "multiplier", "expected a finite number >= 1, got " + show_number(p.multiplier));
    }
    if (!(p.jitter >= 0.0 && p.jitter <= 1.0)) {  // written so that NaN fails
        policy_error(where, "jitter", "expected a number in [0, 1], got " + show_number(p.jitter));
    }
    if (p.max_delay < p.initial_delay) {
        policy_error(where, "max_delay",
                     "expected at least initial_delay (" + show_ms(p.initial_delay) + "), got " + show_ms(p.max_delay));
    }
}

void validate(const StepPolicy& p, std::string_view where) {
    validate(p.retry, sub_path(where, "retry"));
    if (p.timeout.count() < 0) {
        policy_error(where, "timeout", "expected at least 0 ms (0 = no timeout), got " + show_ms(p.timeout));
    }
    validate(p.compensation_retry, sub_path(where, "compensation_retry"));
    if (p.compensation_timeout.count() < 0) {
        policy_error(where, "compensation_timeout",
                     "expected at least 0 ms (0 = no timeout), got " + show_ms(p.compensation_timeout));
    }
}

void validate(const SagaOptions& o) {
    validate(o.defaults, "SagaOptions.defaults");
    validate(o.outage_backoff, "SagaOptions.outage_backoff");
    if (o.outage_backoff.initial_delay.count() < 1) {
        policy_error("SagaOptions.outage_backoff", "initial_delay",
                     "expected at least 1 ms, got " + show_ms(o.outage_backoff.initial_delay));
    }
    for (const auto& [name, policy] : o.steps) {
        if (name.empty()) policy_error("SagaOptions", "steps", "expected non-empty step names, got \"\"");
        validate(policy, "SagaOptions.steps." + name);
    }
}

ConsumerOptions consumer_options(const MessageBrokerConfig& broker, std::string topic, std::string group,
                                 std::string consumer) {
    ConsumerOptions o;
    o.topic = std::move(topic);
    o.group = std::move(group);
    o.consumer = std::move(consumer);
    o.settings = broker.consumer;
    return o;
}

std::optional<Endpoint> parse_endpoint(std::string_view s, int default_port) {
    std::string_view host = s, port;
    if (!s.empty() && s.front() == '[') {
        const auto close = s.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        host = s.substr(1, close - 1);
        const auto rest = s.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return std::nullopt;
            port = rest.substr(1);
            if (port.empty()) return std::nullopt;
        }
    } else if (const auto colon = s.find(':'); colon != std::string_view::npos) {
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
        // A bare IPv6 address has several colons: it must be written in brackets.
        if (port.empty() || port.find(':') != std::string_view::npos) return std::nullopt;
    }
    const bool host_ok = !host.empty() && std::none_of(host.begin(), host.end(), [](char c) {
        return static_cast<unsigned char>(c) <= ' ' || c == '[' || c == ']' || c == '/';
    });
    if (!host_ok) return std::nullopt;
    Endpoint e{std::string(host), default_port};
    if (!port.empty()) {
        if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return std::nullopt;
        e.port = std::stoi(std::string(port));
    }
    if (e.port < 1 || e.port > 65535) return std::nullopt;
    return e;
}

std::optional<std::string> read_secret(const std::string& env_name, const std::string& file, std::string_view what) {
    auto refuse = [&](const std::string& why) { throw Error(errc::invalid_config, std::string(what) + ": " + why); };
    if (!env_name.empty() && !file.empty()) refuse("give the password in an environment variable or a file, not both");
    if (!env_name.empty()) {
        const char* v = std::getenv(env_name.c_str());
        if (!v) refuse("the environment variable " + env_name + " is not set");
        return std::string(v);
    }
    if (file.empty()) return std::nullopt;
    struct Closer {
        void operator()(std::FILE* f) const noexcept { std::fclose(f); }
    };
    const std::unique_ptr<std::FILE, Closer> f(std::fopen(file.c_str(), "rb"));
    if (!f) refuse("cannot open the password file " + file + ": " + std::generic_category().message(errno));
    std::string secret;
    std::array<char, 512> buffer;
    std::size_t n = 0;
    while ((n = std::fread(buffer.data(), 1, buffer.size(), f.get())) > 0) {
        secret.append(buffer.data(), n);
        if (secret.size() > 64 * 1024) refuse("the password file " + file + " is larger than 64 KiB");
    }
    if (std::ferror(f.get())) refuse("cannot read the password file " + file + ": " + std::generic_category().message(errno));
    if (!secret.empty() && secret.back() == '\n') secret.pop_back();
    if (!secret.empty() && secret.back() == '\r') secret.pop_back();
    if (secret.empty()) refuse("the password file " + file + " is empty");
    return secret;
}

void apply_logging(const LoggingConfig& logging) {
    // The level name was checked when the config was read.
    spdlog::set_level(spdlog::level::from_str(logging.level));
    if (logging.format == "json") spdlog::set_formatter(std::make_unique<JsonLinesFormatter>());
}

}  // namespace boong
