// Boong's configuration: what a service puts in its config file, and the
// loader that turns that file into typed, validated structs.
#pragma once

#include <boong/broker.hpp>
#include <boong/policy.hpp>

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boong {

// The PostgreSQL event store. Table names are spliced into SQL, so they must
// pass is_sql_identifier: no SQL through config.
struct PostgresStoreConfig {
    std::string connection;  // libpq conninfo or URI
    std::string table_name = "event_store";
    std::string snapshot_table_name = "event_store_snapshots";
    int pool_size = 8;
    milliseconds connect_timeout{5000};   // 0 = no timeout
    milliseconds command_timeout{10000};  // 0 = no timeout
    int group_commit_max_events = 256;    // events batched into one transaction, at most
    // How long a batch waits for company while another is in flight; less
    // when arrivals pause, none once it holds 32 events (docs/postgres.md).
    std::chrono::microseconds group_commit_delay{500};
    std::string password_env;   // name of an env var holding the password, optional
    std::string password_file;  // or a file holding it (one trailing newline ignored), optional
    // Told of every group commit (events, duration) and of every wait for a
    // pooled connection (metrics); null: none. Not read from JSON: set in code.
    std::shared_ptr<Observer> observer{};
};

struct EventStoreConfig {
    enum class Type { memory, postgres } type = Type::memory;
    // Read for both types (tableName is accepted for memory too, and unused),
    // so that switching a file between types needs no other edit.
    PostgresStoreConfig postgres;
};

// The Redis Streams broker ("messageBroker.options" in the file).
struct RedisBrokerConfig {
    std::string host = "127.0.0.1";
    int port = 6379;
    int database = 0;
    std::string username;
    std::string password_env;   // name of an env var holding the password, optional
    std::string password_file;  // or a file holding it (one trailing newline ignored), optional
    milliseconds connect_timeout{5000};  // 0 = no timeout
    milliseconds command_timeout{5000};  // 0 = no timeout
    milliseconds block_timeout{2000};    // XREADGROUP BLOCK; >= 1 (0 would block forever)
    std::int64_t max_len = 1000000;      // XADD MAXLEN ~
    std::optional<milliseconds> ttl;     // MINID age limit; none = keep by length only
    // How deeply an event's JSON may nest, written or read (1..10000): a
    // deeper entry is dead-lettered as it is, never decoded.
    int max_json_depth = default_max_json_depth;
};

// A node of a RabbitMQ cluster.
struct RabbitMqNode {
    std::string host;
    int port = 5672;
};

// The RabbitMQ broker (Boong::rabbitmq). Topology: an exchange per topic
// (fanout, durable), a quorum queue "<topic>.<group>" per consumer group
// bound to it, dead letters in "<topic>.dlq". See docs/rabbitmq.md.
struct RabbitMqBrokerConfig {
    std::string host = "127.0.0.1";
    int port = 5672;
    // The nodes of a cluster, in place of host and port when not empty:
    // each connection tries them in turn, from the first, and after losing
    // its node goes on with the next one (docs/rabbitmq.md#a-cluster).
    std::vector<RabbitMqNode> nodes;
    std::string vhost = "/";
    std::string username = "guest";
    std::string password_env;   // name of an env var holding the password, optional
    std::string password_file;  // or a file holding it (one trailing newline ignored), optional
    milliseconds connect_timeout{5000};  // > 0
    // A publish completes once RabbitMQ confirmed it; through a connection
    // loss it is sent again until this has passed, then fails (> 0).
    milliseconds publish_timeout{10000};
    std::chrono::seconds heartbeat{30};  // 0: none
    std::size_t max_unconfirmed = 1024;  // publishes sent and not yet confirmed, at most (>= 1)
    // Consumer groups to declare (with their queues) at open, per topic, so
    // that what is published before any consumer started is kept for each
    // of them. A consumer declares its own group's queue too.
    std::vector<std::pair<std::string, std::vector<std::string>>> groups;
    // The queues' x-delivery-limit: a message delivered this many times
    // without an ack (its consumers kept dying) is dead-lettered by RabbitMQ
    // itself (into "<topic>.dlq"). Consumers dead-letter failing messages at
    // their own max_deliveries first, so keep it >= the largest of those.
    int delivery_limit = 20;
    // Where a message goes that no group's queue takes (a topic nobody
    // consumes yet): with a name, every topic's exchange gets this alternate
    // exchange and the message is kept in the quorum queue of that name for
    // unrouted_ttl; empty (the default), such a publish is refused
    // (invalid_argument), never dropped. Exchanges keep the arguments they
    // were first declared with: set it before the first deployment.
    std::string unrouted_queue;
    milliseconds unrouted_ttl{7LL * 24 * 3600 * 1000};
    // How deeply an event's JSON may nest, written or read (1..10000).
    int max_json_depth = default_max_json_depth;
    // TLS (amqps): with tls, the server's certificate is checked against
    // ca_file and its name against host unless verify_hostname is false.
    bool tls = false;
    std::string ca_file;
    std::string cert_file;  // a client certificate, optional (with key_file)
    std::string key_file;
    bool verify_hostname = true;
};

// Signed envelopes ("signing", boong/signed_broker.hpp): on when keysFile
// names a key ring file (boong/signing.hpp: JSON, readable by its owner only).
struct SigningConfig {
    std::string keys_file;  // empty: messages are neither signed nor checked
    bool sign = true;       // sign what is published (the ring must name sign_with)
    bool require = true;    // consumers dead-letter what is not authentic
};

struct MessageBrokerConfig {
    enum class Type { memory, redis_streams, rabbitmq } type = Type::memory;
    // "options", read as the chosen type's: RabbitMQ's for rabbitmq, Redis's
    // otherwise (for memory too, so a file can switch type without editing them).
    RedisBrokerConfig redis;
    RabbitMqBrokerConfig rabbitmq;
    // Defaults for consumers ("consumer": consumerCount is the concurrency).
    ConsumerSettings consumer;
    SigningConfig signing;
};

struct LoggingConfig {
    std::string level = "info";  // spdlog level name: trace, debug, info, warn, error, critical, off
    // "text" (spdlog's pattern) or "json": one JSON object a line, with the
    // saga id, step and correlation id as fields (JsonLinesFormatter).
    std::string format = "text";
};

struct Config {
    SagaOptions saga;
    EventStoreConfig event_store;
    MessageBrokerConfig message_broker;
    LoggingConfig logging;
};

// Reads and parses a JSON config file. Throws boong::Error(errc::invalid_config)
// naming the file and the key path on any problem (unreadable file, invalid
// JSON, unknown key, wrong type, value out of range); never returns a config
// that is only partly valid.
Config load_config(const std::filesystem::path& file);

// Same as load_config, for JSON already in memory. `source` is the name used
// at the start of error messages (usually the file name).
Config parse_config(const nlohmann::json& j, std::string_view source = "<config>");

// True for `[a-z_][a-z0-9_]*` of 1..63 characters (Postgres NAMEDATALEN-1)
// that is not one of a few reserved SQL words (select, table, user, ...).
// Upper case is refused: PostgreSQL folds unquoted names, so "Event_Store"
// would silently be the table event_store.
bool is_sql_identifier(std::string_view s) noexcept;

// The options of a consumer of `topic` in `group`, with the configured defaults
// as its settings (consumerCount is settings.concurrency).
ConsumerOptions consumer_options(const MessageBrokerConfig& broker, std::string topic, std::string group,
                                 std::string consumer);

// A server's address: "host:port", "host", "[IPv6 address]:port" or
// "[IPv6 address]", the port 1..65535. Without a port, `default_port` (0: a
// port is required). nullopt for anything else, including a bare IPv6
// address (it must be in brackets) and a host with spaces or slashes.
struct Endpoint {
    std::string host;
    int port = 0;
};
std::optional<Endpoint> parse_endpoint(std::string_view text, int default_port = 0);

// The secret a config names, so that it is never in a config file or on a
// command line: the value of the environment variable `env_name`, or the
// content of `file` (one trailing newline dropped); nullopt when both are
// empty. Error(errc::invalid_config) naming `what` and the variable or the
// file (never the secret) when it is unset or unreadable, or both are given.
std::optional<std::string> read_secret(const std::string& env_name, const std::string& file, std::string_view what);

// Sets spdlog's default logger to the configured level and format.
void apply_logging(const LoggingConfig& logging);

}  // namespace boong
