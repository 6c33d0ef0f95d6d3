// Config loading: defaults, a full file, and one error message per kind of mistake.
#include <boong/backends.hpp>
#include <boong/config.hpp>
#include <boong/error.hpp>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>

using namespace std::chrono_literals;
using Catch::Contains;

namespace {

boong::Config parse(std::string_view text) { return boong::parse_config(nlohmann::json::parse(text), "config.json"); }

class HasCode : public Catch::MatcherBase<boong::Error> {
public:
    explicit HasCode(boong::errc code) : code_(code) {}
    bool match(const boong::Error& e) const override { return e.code() == code_; }
    std::string describe() const override { return "has code " + boong::make_error_code(code_).message(); }

private:
    boong::errc code_;
};

// A directory of its own under the system temp dir, removed at the end.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::random_device random;
        path = std::filesystem::temp_directory_path() / ("boong_config_test_" + std::to_string(random()));
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::filesystem::path write(const std::string& name, std::string_view text) const {
        const auto file = path / name;
        std::ofstream out(file, std::ios::binary);
        out << text;
        return file;
    }
};

}  // namespace

// The message (file name, key path, expectation) and the code, in one go.
#define REQUIRE_CONFIG_ERROR(expr, matcher)                                                \
    do {                                                                                   \
        REQUIRE_THROWS_WITH(expr, matcher);                                                \
        REQUIRE_THROWS_MATCHES(expr, boong::Error, HasCode(boong::errc::invalid_config)); \
    } while (false)

TEST_CASE("config: an empty object gives the defaults", "[config]") {
    const boong::Config c = parse("{}");

    // The design's defaults.
    CHECK(c.saga.defaults.retry.attempts == 3);
    CHECK(c.saga.defaults.retry.initial_delay == 1000ms);
    CHECK(c.saga.defaults.compensation_timeout == 5000ms);
    CHECK(c.saga.defaults == boong::StepPolicy{});
    CHECK(c.saga.steps.empty());

    CHECK(c.event_store.type == boong::EventStoreConfig::Type::memory);
    CHECK(c.event_store.postgres.table_name == "event_store");
    CHECK(c.event_store.postgres.snapshot_table_name == "event_store_snapshots");
    CHECK(c.event_store.postgres.connection.empty());
    CHECK(c.event_store.postgres.pool_size == 8);
    CHECK(c.event_store.postgres.group_commit_delay == 500us);

    CHECK(c.message_broker.type == boong::MessageBrokerConfig::Type::memory);
    CHECK(c.message_broker.redis.host == "127.0.0.1");
    CHECK(c.message_broker.redis.port == 6379);
    CHECK(c.message_broker.redis.max_len == 1000000);
    CHECK_FALSE(c.message_broker.redis.ttl.has_value());
    CHECK(c.message_broker.consumer.max_deliveries == 5);
    CHECK(c.message_broker.consumer.visibility_timeout == 30000ms);
    CHECK(c.message_broker.consumer.backlog_interval == 15000ms);

    CHECK(c.logging.level == "info");
    CHECK(c.logging.format == "text");
}

TEST_CASE("config: empty sections give the defaults too", "[config]") {
    const boong::Config c =
        parse(R"({"steps": {}, "eventStore": {}, "messageBroker": {"options": {}, "consumer": {}}, "logging": {}})");
    CHECK(c.saga.defaults == boong::StepPolicy{});
    CHECK(c.event_store.postgres.table_name == "event_store");
    CHECK(c.message_broker.redis.port == 6379);
    CHECK(c.logging.level == "info");
}

TEST_CASE("config: a full file fills every struct", "[config]") {
    const boong::Config c = parse(R"({
        "retryAttempts": 5, "retryDelay": 200, "retryBackoffMultiplier": 1.5, "retryMaxDelay": 10000, "retryJitter": 0,
        "stepTimeout": 15000,
        "compensationRetryAttempts": 10, "compensationRetryDelay": 500, "compensationTimeout": 7000,
        "steps": {
            "reserve_items": { "retryAttempts": 2, "stepTimeout": 0 },
            "charge card": { "retryJitter": 0.5, "compensationRetryDelay": 2000 }
        },
        "eventStore": {
            "type": "postgres", "tableName": "order_events", "snapshotTableName": "order_snapshots",
            "connection": "postgresql://boong@db:5432/orders", "poolSize": 16, "connectTimeout": 3000,
            "commandTimeout": 0, "groupCommitMaxEvents": 1000, "groupCommitDelay": 250, "passwordEnv": "PGPASSWORD"
        },
        "messageBroker": {
            "type": "redis-streams",
            "options": { "host": "redis.internal", "port": 6380, "database": 2, "username": "boong",
                         "passwordEnv": "REDIS_PASSWORD", "connectTimeout": 1000, "commandTimeout": 2000,
                         "blockTimeout": 500, "maxLen": 50000, "ttl": 86400000 },
            "consumer": { "consumerCount": 4, "visibilityTimeout": 60000, "maxDeliveries": 3, "shutdownGrace": 10000,
                          "backlogInterval": 5000 }
        },
        "logging": { "level": "debug", "format": "json" }
    })");

    const boong::StepPolicy& d = c.saga.defaults;
    CHECK(d.retry == boong::RetryPolicy{5, 200ms, 1.5, 10000ms, 0.0});
    CHECK(d.timeout == 15000ms);
    // Compensations share the action's multiplier, cap and jitter.
    CHECK(d.compensation_retry == boong::RetryPolicy{10, 500ms, 1.5, 10000ms, 0.0});
    CHECK(d.compensation_timeout == 7000ms);

    REQUIRE(c.saga.steps.size() == 2);
    // An override changes its own keys and inherits the rest from the top level.
    boong::StepPolicy reserve = d;
    reserve.retry.attempts = 2;
    reserve.timeout = 0ms;
    CHECK(c.saga.policy_for("reserve_items") == reserve);

    boong::StepPolicy charge = d;
    charge.retry.jitter = 0.5;
    charge.compensation_retry.jitter = 0.5;
    charge.compensation_retry.initial_delay = 2000ms;
    CHECK(c.saga.policy_for("charge card") == charge);
    CHECK(c.saga.policy_for("ship") == d);

    const boong::PostgresStoreConfig& pg = c.event_store.postgres;
    CHECK(c.event_store.type == boong::EventStoreConfig::Type::postgres);
    CHECK(pg.table_name == "order_events");
    CHECK(pg.snapshot_table_name == "order_snapshots");
    CHECK(pg.connection == "postgresql://boong@db:5432/orders");
    CHECK(pg.pool_size == 16);
    CHECK(pg.connect_timeout == 3000ms);
    CHECK(pg.command_timeout == 0ms);
    CHECK(pg.group_commit_max_events == 1000);
    CHECK(pg.group_commit_delay == 250us);
    CHECK(pg.password_env == "PGPASSWORD");

    const boong::RedisBrokerConfig& redis = c.message_broker.redis;
    CHECK(c.message_broker.type == boong::MessageBrokerConfig::Type::redis_streams);
    CHECK(redis.host == "redis.internal");
    CHECK(redis.port == 6380);
    CHECK(redis.database == 2);
    CHECK(redis.username == "boong");
    CHECK(redis.password_env == "REDIS_PASSWORD");
    CHECK(redis.connect_timeout == 1000ms);
    CHECK(redis.command_timeout == 2000ms);
    CHECK(redis.block_timeout == 500ms);
    CHECK(redis.max_len == 50000);
    CHECK(redis.ttl == std::optional<std::chrono::milliseconds>(86400000ms));

    const boong::ConsumerSettings& consumer = c.message_broker.consumer;
    CHECK(consumer.concurrency == 4);
    CHECK(consumer.visibility_timeout == 60000ms);
    CHECK(consumer.max_deliveries == 3);
    CHECK(consumer.shutdown_grace == 10000ms);
    CHECK(consumer.backlog_interval == 5000ms);

    CHECK(c.logging.level == "debug");
    CHECK(c.logging.format == "json");
}

TEST_CASE("config: a RabbitMQ broker's options", "[config]") {
    const boong::Config c = parse(R"({
        "messageBroker": {
            "type": "rabbitmq",
            "options": { "host": "mq.internal", "port": 5671, "vhost": "shop", "username": "orders",
                         "passwordFile": "/run/secrets/mq", "connectTimeout": 2000, "publishTimeout": 15000,
                         "heartbeat": 10, "maxUnconfirmed": 256, "deliveryLimit": 12, "maxJsonDepth": 64,
                         "tls": true, "caFile": "/etc/ssl/mq-ca.pem", "certFile": "c.pem", "keyFile": "k.pem",
                         "verifyHostname": false,
                         "groups": { "OrderCreated": ["payment", "inventory"], "PaymentFailed": ["inventory"] } }
        }
    })");
    CHECK(c.message_broker.type == boong::MessageBrokerConfig::Type::rabbitmq);
    const auto& r = c.message_broker.rabbitmq;
    CHECK(r.host == "mq.internal");
    CHECK(r.port == 5671);
    CHECK(r.vhost == "shop");
    CHECK(r.username == "orders");
    CHECK(r.password_file == "/run/secrets/mq");
    CHECK(r.connect_timeout == 2000ms);
    CHECK(r.publish_timeout == 15000ms);
    CHECK(r.heartbeat == std::chrono::seconds(10));
    CHECK(r.max_unconfirmed == 256);
    CHECK(r.delivery_limit == 12);
    CHECK(r.max_json_depth == 64);
    CHECK(r.tls);
    CHECK(r.ca_file == "/etc/ssl/mq-ca.pem");
    CHECK(r.cert_file == "c.pem");
    CHECK(r.key_file == "k.pem");
    CHECK_FALSE(r.verify_hostname);
    using Groups = std::vector<std::pair<std::string, std::vector<std::string>>>;
    CHECK(r.groups == Groups{{"OrderCreated", {"payment", "inventory"}}, {"PaymentFailed", {"inventory"}}});
}

TEST_CASE("config: edge values that are accepted", "[config]") {
    SECTION("an integer where a number is expected") {
        CHECK(parse(R"({"retryBackoffMultiplier": 3, "retryJitter": 1})").saga.defaults.retry.multiplier == 3.0);
    }
    SECTION("range ends") {
        const auto c = parse(R"({"retryAttempts": 100, "retryDelay": 0, "retryMaxDelay": 86400000,
                                  "eventStore": {"poolSize": 1024},
                                  "messageBroker": {"options": {"port": 65535, "database": 15}}})");
        CHECK(c.saga.defaults.retry.attempts == 100);
        CHECK(c.event_store.postgres.pool_size == 1024);
        CHECK(c.message_broker.redis.database == 15);
    }
    SECTION("a backlog interval of 0: never sampled") {
        CHECK(parse(R"({"messageBroker": {"consumer": {"backlogInterval": 0}}})").message_broker.consumer.backlog_interval ==
              std::chrono::milliseconds::zero());
    }
    SECTION("null ttl means no age limit") {
        CHECK_FALSE(parse(R"({"messageBroker": {"options": {"ttl": null}}})").message_broker.redis.ttl.has_value());
    }
    SECTION("tableName with the memory store is stored") {
        CHECK(parse(R"({"eventStore": {"type": "memory", "tableName": "events"}})").event_store.postgres.table_name ==
              "events");
    }
}

TEST_CASE("config: each mistake names the file, the key path and what was wrong", "[config]") {
    SECTION("unknown top-level key") {
        REQUIRE_CONFIG_ERROR(parse(R"({"retryAttemps": 3})"),
                             Contains("config.json: retryAttemps: unknown key (known keys: retryAttempts, "));
    }
    SECTION("unknown nested key") {
        REQUIRE_CONFIG_ERROR(
            parse(R"({"messageBroker": {"options": {"colour": "red"}}})"),
            Contains("config.json: messageBroker.options.colour: unknown key (known keys: host, port, "));
    }
    SECTION("unknown key in a step") {
        REQUIRE_CONFIG_ERROR(parse(R"({"steps": {"reserve_items": {"timeout": 5}}})"),
                             Contains("config.json: steps.reserve_items.timeout: unknown key"));
    }
    SECTION("wrong type") {
        REQUIRE_CONFIG_ERROR(parse(R"({"retryAttempts": "three"})"),
                             Contains(R"(config.json: retryAttempts: expected an integer, got "three")"));
        REQUIRE_CONFIG_ERROR(parse(R"({"eventStore": "postgres"})"),
                             Contains(R"(config.json: eventStore: expected an object, got "postgres")"));
        REQUIRE_CONFIG_ERROR(parse(R"({"messageBroker": {"options": {"host": 42}}})"),
                             Contains("config.json: messageBroker.options.host: expected a non-empty host"));
        REQUIRE_CONFIG_ERROR(parse("[1, 2]"), Contains("config.json: expected an object, got [1,2]"));
    }
    SECTION("a boolean is not an integer") {
        REQUIRE_CONFIG_ERROR(parse(R"({"eventStore": {"poolSize": true}})"),
                             Contains("config.json: eventStore.poolSize: expected an integer, got true"));
    }
    SECTION("out of range") {
        REQUIRE_CONFIG_ERROR(parse(R"({"eventStore": {"poolSize": 0}})"),
                             Contains("config.json: eventStore.poolSize: expected an integer in [1, 1024], got 0"));
        REQUIRE_CONFIG_ERROR(
            parse(R"({"steps": {"reserve_items": {"retryDelay": -5}}})"),
            Contains("config.json: steps.reserve_items.retryDelay: expected an integer number of milliseconds "
                     "in [0, 86400000], got -5"));
        REQUIRE_CONFIG_ERROR(parse(R"({"retryJitter": 1.5})"),
                             Contains("config.json: retryJitter: expected a number in [0, 1], got 1.5"));
        REQUIRE_CONFIG_ERROR(parse(R"({"messageBroker": {"options": {"maxLen": 0}}})"),
                             Contains("config.json: messageBroker.options.maxLen: expected an integer >= 1, got 0"));
        REQUIRE_CONFIG_ERROR(parse(R"({"messageBroker": {"options": {"port": 18446744073709551615}}})"),
                             Contains("config.json: messageBroker.options.port: expected an integer in [1, 65535]"));
        REQUIRE_CONFIG_ERROR(parse(R"({"messageBroker": {"consumer": {"maxDeliveries": 1001}}})"),
                             Contains("config.json: messageBroker.consumer.maxDeliveries: expected an integer in"));
        REQUIRE_CONFIG_ERROR(parse(R"({"eventStore": {"groupCommitDelay": 1000001}})"),
                             Contains("config.json: eventStore.groupCommitDelay: expected an integer number of "
                                      "microseconds in [0, 1000000], got 1000001"));
    }
    SECTION("a float where an integer is expected") {
        REQUIRE_CONFIG_ERROR(parse(R"({"retryAttempts": 3.5})"),
                             Contains("config.json: retryAttempts: expected an integer, got 3.5"));
        REQUIRE_CONFIG_ERROR(parse(R"({"compensationTimeout": 5000.0})"),
                             Contains("config.json: compensationTimeout: expected an integer number of milliseconds, "
                                      "got 5000.0"));
    }
    SECTION("max delay below an initial delay") {
        REQUIRE_CONFIG_ERROR(parse(R"({"retryDelay": 5000, "retryMaxDelay": 1000})"),
                             Contains("config.json: retryMaxDelay: expected an integer number of milliseconds >= "
                                      "retryDelay (5000), got 1000"));
        // The step's own key is blamed, not the inherited cap.
        REQUIRE_CONFIG_ERROR(parse(R"({"steps": {"slow": {"retryDelay": 60000}}})"),
                             Contains("config.json: steps.slow.retryDelay: expected an integer number of milliseconds "
                                      "<= retryMaxDelay (30000), got 60000"));
        REQUIRE_CONFIG_ERROR(parse(R"({"compensationRetryDelay": 40000})"),
                             Contains("config.json: compensationRetryDelay: expected an integer number of "
                                      "milliseconds <= retryMaxDelay (30000), got 40000"));
    }
    SECTION("steps must be an object of objects with non-empty names") {
        REQUIRE_CONFIG_ERROR(parse(R"({"steps": ["reserve_items"]})"),
                             Contains("config.json: steps: expected an object, got"));
        REQUIRE_CONFIG_ERROR(parse(R"({"steps": {"reserve_items": 3}})"),
                             Contains("config.json: steps.reserve_items: expected an object, got 3"));
        REQUIRE_CONFIG_ERROR(parse(R"({"steps": {"": {}}})"),
                             Contains(R"(config.json: steps[""]: expected a non-empty step name)"));
    }
    SECTION("rabbitmq options are checked") {
        REQUIRE_CONFIG_ERROR(parse(R"({"messageBroker": {"type": "rabbitmq", "options": {"database": 1}}})"),
                             Contains("config.json: messageBroker.options.database: unknown key"));
        REQUIRE_CONFIG_ERROR(parse(R"({"messageBroker": {"type": "rabbitmq", "options": {"publishTimeout": 0}}})"),
                             Contains("config.json: messageBroker.options.publishTimeout"));
        REQUIRE_CONFIG_ERROR(
            parse(R"({"messageBroker": {"type": "rabbitmq", "options": {"groups": {"OrderCreated": ["dlq"]}}}})"),
            Contains("config.json: messageBroker.options.groups: expected non-empty group names other than"));
        REQUIRE_CONFIG_ERROR(
            parse(R"({"messageBroker": {"type": "rabbitmq", "options": {"groups": {"OrderCreated": "payment"}}}})"),
            Contains("expected a list of group names for \"OrderCreated\""));
        REQUIRE_CONFIG_ERROR(
            parse(R"({"messageBroker": {"type": "rabbitmq", "options": {"certFile": "c.pem"}}})"),
            Contains("config.json: messageBroker.options.keyFile: expected a key file with certFile"));
        auto nodes = [&](const std::string& options) {
            return parse(R"({"messageBroker": {"type": "rabbitmq", "options": )" + options + "}}");
        };
        REQUIRE_CONFIG_ERROR(nodes(R"({"nodes": ["a:1"], "host": "b"})"),
                             Contains("messageBroker.options.nodes: expected either nodes or host and port, got both"));
        REQUIRE_CONFIG_ERROR(nodes(R"({"nodes": []})"),
                             Contains("messageBroker.options.nodes: expected a non-empty list"));
        REQUIRE_CONFIG_ERROR(nodes(R"({"nodes": "a:1"})"),
                             Contains("messageBroker.options.nodes: expected a non-empty list"));
        for (const char* bad : {R"(["a:0"])", R"(["a:65536"])", R"(["::1"])", R"(["a b:1"])", R"([5672])",
                                R"([":1"])"}) {
            CAPTURE(bad);
            REQUIRE_CONFIG_ERROR(nodes(std::string(R"({"nodes": )") + bad + "}"),
                                 Contains("messageBroker.options.nodes: expected \"host:port\""));
        }
        REQUIRE_CONFIG_ERROR(nodes(R"({"nodes": ["a:1", "b", "a:1"]})"),
                             Contains(R"(expected each node once, got "a:1" twice)"));
    }
    SECTION("rabbitmq nodes: a cluster, in the order given") {
        const auto c = parse(R"({"messageBroker": {"type": "rabbitmq", "options": )"
                             R"({"nodes": ["rabbit-1:5673", "rabbit-2", "[::1]:5674", "[fe80::1]"]}}})");
        const auto& n = c.message_broker.rabbitmq.nodes;
        REQUIRE(n.size() == 4);
        CHECK((n[0].host == "rabbit-1" && n[0].port == 5673));
        CHECK((n[1].host == "rabbit-2" && n[1].port == 5672));
        CHECK((n[2].host == "::1" && n[2].port == 5674));
        CHECK((n[3].host == "fe80::1" && n[3].port == 5672));
    }
    SECTION("unknown types") {
        REQUIRE_CONFIG_ERROR(parse(R"({"eventStore": {"type": "mysql"}})"),
                             Contains(R"(config.json: eventStore.type: expected one of "memory", "postgres", )"
                                      R"(got "mysql")"));
        REQUIRE_CONFIG_ERROR(parse(R"({"messageBroker": {"type": "kafka"}})"),
                             Contains(R"(config.json: messageBroker.type: expected one of "memory", )"
                                      R"("redis-streams", "rabbitmq", got "kafka")"));
    }
    SECTION("postgres without a connection") {
        REQUIRE_CONFIG_ERROR(parse(R"({"eventStore": {"type": "postgres"}})"),
                             Contains("config.json: eventStore.connection: expected a non-empty libpq connection "
                                      "string or URI when type is \"postgres\""));
        REQUIRE_CONFIG_ERROR(parse(R"({"eventStore": {"type": "postgres", "connection": ""}})"),
                             Contains("config.json: eventStore.connection: expected a non-empty"));
    }
    SECTION("a table name that is not an identifier") {
        REQUIRE_CONFIG_ERROR(parse(R"({"eventStore": {"tableName": "events; DROP TABLE x"}})"),
                             Contains("config.json: eventStore.tableName: expected a lower-case SQL identifier") &&
                                 Contains(R"(got "events; DROP TABLE x")"));
        REQUIRE_CONFIG_ERROR(parse(R"({"eventStore": {"snapshotTableName": "1snapshots"}})"),
                             Contains("config.json: eventStore.snapshotTableName: expected a lower-case SQL identifier"));
    }
    SECTION("a table name PostgreSQL would fold to lower case") {
        REQUIRE_CONFIG_ERROR(parse(R"({"eventStore": {"tableName": "Event_Store"}})"),
                             Contains("eventStore.tableName: expected a lower-case SQL identifier") &&
                                 Contains(R"(got "Event_Store")"));
    }
    SECTION("both passwordEnv and passwordFile") {
        REQUIRE_CONFIG_ERROR(parse(R"({"eventStore": {"passwordEnv": "PGPASSWORD", "passwordFile": "/run/pw"}})"),
                             Contains("eventStore.passwordFile: expected only one of passwordEnv and passwordFile"));
        REQUIRE_CONFIG_ERROR(
            parse(R"({"messageBroker": {"options": {"passwordEnv": "X", "passwordFile": "/run/pw"}}})"),
            Contains("messageBroker.options.passwordFile: expected only one of passwordEnv and passwordFile"));
    }
    SECTION("an outage retry cap below its delay") {
        REQUIRE_CONFIG_ERROR(parse(R"({"outageRetryDelay": 2000, "outageRetryMaxDelay": 1000})"),
                             Contains("config.json: outageRetryMaxDelay: expected an integer number of milliseconds "
                                      ">= outageRetryDelay (2000), got 1000"));
        REQUIRE_CONFIG_ERROR(
            parse(R"({"messageBroker": {"consumer": {"outageRetryDelay": 9000}}})"),
            Contains("messageBroker.consumer.outageRetryDelay: expected an integer number of milliseconds <= "
                     "outageRetryMaxDelay (5000), got 9000"));
    }
    SECTION("a JSON depth limit out of range") {
        REQUIRE_CONFIG_ERROR(parse(R"({"messageBroker": {"options": {"maxJsonDepth": 0}}})"),
                             Contains("messageBroker.options.maxJsonDepth: expected an integer in [1, 10000], got 0"));
    }
    SECTION("a reserved word as a table name") {
        REQUIRE_CONFIG_ERROR(parse(R"({"eventStore": {"tableName": "User"}})"),
                             Contains("config.json: eventStore.tableName: expected a lower-case SQL identifier") &&
                                 Contains(R"(got "User")"));
    }
    SECTION("the same table for events and snapshots") {
        REQUIRE_CONFIG_ERROR(parse(R"({"eventStore": {"tableName": "t", "snapshotTableName": "t"}})"),
                             Contains("config.json: eventStore.snapshotTableName: expected a table other than "
                                      "tableName"));
    }
    SECTION("a bad passwordEnv") {
        REQUIRE_CONFIG_ERROR(parse(R"({"eventStore": {"passwordEnv": "$PGPASSWORD"}})"),
                             Contains("config.json: eventStore.passwordEnv: expected the name of an environment "
                                      "variable"));
    }
    SECTION("a zero visibility timeout") {
        REQUIRE_CONFIG_ERROR(parse(R"({"messageBroker": {"consumer": {"visibilityTimeout": 0}}})"),
                             Contains("config.json: messageBroker.consumer.visibilityTimeout: expected an integer "
                                      "number of milliseconds in [1, 86400000], got 0"));
    }
    SECTION("a negative backlog interval") {
        REQUIRE_CONFIG_ERROR(parse(R"({"messageBroker": {"consumer": {"backlogInterval": -1}}})"),
                             Contains("config.json: messageBroker.consumer.backlogInterval: expected an integer "
                                      "number of milliseconds in [0, 86400000], got -1"));
    }
    SECTION("a bad logging level") {
        REQUIRE_CONFIG_ERROR(parse(R"({"logging": {"level": "verbose"}})"),
                             Contains(R"(config.json: logging.level: expected one of "trace", "debug", "info", )"
                                      R"("warn", "error", "critical", "off", got "verbose")"));
    }
    SECTION("a bad logging format") {
        REQUIRE_CONFIG_ERROR(parse(R"({"logging": {"format": "xml"}})"),
                             Contains(R"(config.json: logging.format: expected one of "text", "json", got "xml")"));
    }
    SECTION("the source name defaults to <config>") {
        REQUIRE_CONFIG_ERROR(boong::parse_config(nlohmann::json{{"logging", 1}}),
                             Contains("<config>: logging: expected an object, got 1"));
    }
}

TEST_CASE("config: load_config reads a file", "[config]") {
    const TempDir dir;

    SECTION("a valid file") {
        const auto file = dir.write("config.json", R"({"retryAttempts": 7, "eventStore": {"type": "postgres",
                                                      "connection": "host=db dbname=orders"}})");
        const boong::Config c = boong::load_config(file);
        CHECK(c.saga.defaults.retry.attempts == 7);
        CHECK(c.event_store.type == boong::EventStoreConfig::Type::postgres);
        CHECK(c.event_store.postgres.connection == "host=db dbname=orders");
    }
    SECTION("errors name the file") {
        const auto file = dir.write("config.json", R"({"eventStore": {"poolSize": 0}})");
        REQUIRE_CONFIG_ERROR(boong::load_config(file),
                             Contains(file.string() + ": eventStore.poolSize: expected an integer in [1, 1024], got 0"));
    }
    SECTION("invalid JSON text") {
        const auto file = dir.write("config.json", R"({"retryAttempts": 3,})");
        REQUIRE_CONFIG_ERROR(boong::load_config(file), Contains(file.string() + ": not valid JSON: "));
    }
    SECTION("an empty file is not JSON") {
        const auto file = dir.write("config.json", "");
        REQUIRE_CONFIG_ERROR(boong::load_config(file), Contains(file.string() + ": not valid JSON: "));
    }
    SECTION("a missing file") {
        const auto file = dir.path / "missing.json";
        REQUIRE_CONFIG_ERROR(boong::load_config(file),
                             Contains(file.string() + ": cannot open: ") && Contains("No such file or directory"));
    }
    SECTION("a directory") {
        REQUIRE_CONFIG_ERROR(boong::load_config(dir.path), Contains(dir.path.string() + ": cannot "));
    }
}

TEST_CASE("config: is_sql_identifier", "[config]") {
    CHECK(boong::is_sql_identifier("event_store"));
    CHECK(boong::is_sql_identifier("_x1"));
    CHECK(boong::is_sql_identifier("events2024"));
    CHECK_FALSE(boong::is_sql_identifier("Events2024"));   // PostgreSQL would fold it to events2024
    CHECK_FALSE(boong::is_sql_identifier("Event_Store"));
    CHECK(boong::is_sql_identifier(std::string(63, 'a')));
    CHECK(boong::is_sql_identifier("users"));  // only the word itself is reserved

    CHECK_FALSE(boong::is_sql_identifier(""));
    CHECK_FALSE(boong::is_sql_identifier(std::string(64, 'a')));
    CHECK_FALSE(boong::is_sql_identifier("1events"));
    CHECK_FALSE(boong::is_sql_identifier("event-store"));
    CHECK_FALSE(boong::is_sql_identifier("public.events"));
    CHECK_FALSE(boong::is_sql_identifier("\"events\""));
    CHECK_FALSE(boong::is_sql_identifier("events; DROP TABLE x"));
    CHECK_FALSE(boong::is_sql_identifier("\xC3\xA9vents"));  // ASCII only
    CHECK_FALSE(boong::is_sql_identifier("select"));
    CHECK_FALSE(boong::is_sql_identifier("TABLE"));
    CHECK_FALSE(boong::is_sql_identifier("uSeR"));
    CHECK_FALSE(boong::is_sql_identifier("references"));
    CHECK_FALSE(boong::is_sql_identifier("alter"));
}

TEST_CASE("config: validate() of policies built in code", "[config]") {
    boong::SagaOptions options;
    CHECK_NOTHROW(boong::validate(options));

    SECTION("attempts") {
        options.defaults.retry.attempts = 0;
        REQUIRE_CONFIG_ERROR(boong::validate(options),
                             Contains("SagaOptions.defaults.retry.attempts: expected at least 1, got 0"));
    }
    SECTION("a step's compensation cap") {
        boong::StepPolicy p;
        p.compensation_retry.max_delay = 10ms;
        options.steps.emplace("pay", p);
        REQUIRE_CONFIG_ERROR(boong::validate(options),
                             Contains("SagaOptions.steps.pay.compensation_retry.max_delay: expected at least "
                                      "initial_delay (1000 ms), got 10 ms"));
    }
    SECTION("negative timeout") {
        boong::StepPolicy p;
        p.timeout = -1ms;
        REQUIRE_CONFIG_ERROR(boong::validate(p, "step"), Contains("step.timeout: expected at least 0 ms"));
    }
    SECTION("jitter and multiplier") {
        boong::RetryPolicy r;
        r.jitter = 1.5;
        REQUIRE_CONFIG_ERROR(boong::validate(r, "r"), Contains("r.jitter: expected a number in [0, 1], got 1.5"));
        r.jitter = 0;
        r.multiplier = 0.5;
        REQUIRE_CONFIG_ERROR(boong::validate(r, "r"), Contains("r.multiplier: expected a finite number >= 1"));
    }
}

TEST_CASE("config applies to consumers, logging and compensateUncertain", "[config]") {
    const auto c = boong::parse_config(nlohmann::json::parse(R"({
        "steps": {"pay": {"compensateUncertain": true}},
        "messageBroker": {"type": "memory", "consumer": {"consumerCount": 4, "visibilityTimeout": 250,
                                                         "maxDeliveries": 2, "shutdownGrace": 100}},
        "logging": {"level": "warn"}
    })"), "test.json");
    CHECK(c.saga.policy_for("pay").compensate_uncertain);
    CHECK_FALSE(c.saga.defaults.compensate_uncertain);
    const auto o = boong::consumer_options(c.message_broker, "orders", "billing", "billing-1");
    CHECK(o.topic == "orders");
    CHECK(o.group == "billing");
    CHECK(o.consumer == "billing-1");
    CHECK(o.settings.concurrency == 4);
    CHECK(o.settings.visibility_timeout == std::chrono::milliseconds(250));
    CHECK(o.settings.max_deliveries == 2);
    CHECK(o.settings.shutdown_grace == std::chrono::milliseconds(100));
    boong::apply_logging(c.logging);
    CHECK(spdlog::get_level() == spdlog::level::warn);
    spdlog::set_level(spdlog::level::err);
    REQUIRE_THROWS_WITH(boong::parse_config(nlohmann::json::parse(R"({"compensateUncertain": "yes"})"), "t.json"),
                        Catch::Contains("t.json: compensateUncertain: expected true or false"));
}

TEST_CASE("config: outage backoff, JSON depth and password files are read", "[config]") {
    const auto c = boong::parse_config(boong::json::parse(R"({
        "outageRetryDelay": 50, "outageRetryMaxDelay": 2000,
        "eventStore": {"passwordFile": "/run/secrets/pg"},
        "messageBroker": {"options": {"maxJsonDepth": 32, "passwordFile": "/run/secrets/redis"},
                          "consumer": {"outageRetryDelay": 20, "outageRetryMaxDelay": 400}}
    })"), "config.json");
    CHECK(c.saga.outage_backoff.initial_delay == std::chrono::milliseconds(50));
    CHECK(c.saga.outage_backoff.max_delay == std::chrono::milliseconds(2000));
    CHECK(c.event_store.postgres.password_file == "/run/secrets/pg");
    CHECK(c.message_broker.redis.max_json_depth == 32);
    CHECK(c.message_broker.redis.password_file == "/run/secrets/redis");
    CHECK(c.message_broker.consumer.outage_backoff.initial_delay == std::chrono::milliseconds(20));
    CHECK(c.message_broker.consumer.outage_backoff.max_delay == std::chrono::milliseconds(400));
    // Defaults.
    const auto d = boong::parse_config(boong::json::object(), "config.json");
    CHECK(d.saga.outage_backoff.initial_delay == std::chrono::milliseconds(100));
    CHECK(d.saga.outage_backoff.max_delay == std::chrono::milliseconds(5000));
    CHECK(d.message_broker.redis.max_json_depth == boong::default_max_json_depth);
}

TEST_CASE("config: messageBroker.signing is read, and make_broker refuses a key file others may read",
          "[config][signing]") {
    const auto c = boong::parse_config(boong::json::parse(R"({
        "messageBroker": {"type": "memory", "signing": {"keysFile": "/etc/shop/keys.json", "require": false}}
    })"), "config.json");
    CHECK(c.message_broker.signing.keys_file == "/etc/shop/keys.json");
    CHECK(c.message_broker.signing.sign);
    CHECK_FALSE(c.message_broker.signing.require);
    CHECK(boong::parse_config(boong::json::object(), "config.json").message_broker.signing.keys_file.empty());
    REQUIRE_CONFIG_ERROR(parse(R"({"messageBroker": {"signing": {"keyFile": "k.json"}}})"),
                         Contains("config.json: messageBroker.signing.keyFile: unknown key (known keys: keysFile"));
    REQUIRE_CONFIG_ERROR(parse(R"({"messageBroker": {"signing": {"require": "yes"}}})"),
                         Contains("config.json: messageBroker.signing.require: expected"));

    // make_broker reads the ring before it connects: a file others may read
    // is refused; an owner-only one gives a broker that signs.
    const auto dir = std::filesystem::temp_directory_path() / ("boong-config-keys-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto path = dir / "keys.json";
    {
        std::ofstream out(path);
        out << R"({"sign_with": "k1", "keys": [{"id": "k1", "secret_hex": ")" << std::string(64, 'c') << R"("}]})";
    }
    boost::asio::io_context ioc;
    boong::MessageBrokerConfig bc;
    bc.signing.keys_file = path.string();
    std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::group_read,
                                 std::filesystem::perm_options::replace);
    REQUIRE_CONFIG_ERROR(boong::make_broker(ioc.get_executor(), bc), Contains("may be read by its group or others"));
    std::filesystem::permissions(path, std::filesystem::perms::owner_read, std::filesystem::perm_options::replace);
    auto broker = boong::make_broker(ioc.get_executor(), bc);
    CHECK_THAT(broker.describe(), Contains("memory (signed envelopes required)"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("config: read_secret takes a variable or a file, and never shows the secret in its errors", "[config]") {
    using boong::read_secret;
    CHECK_FALSE(read_secret("", "", "test password").has_value());
    ::setenv("BOONG_TEST_SECRET", "s3cret", 1);
    CHECK(read_secret("BOONG_TEST_SECRET", "", "test password") == std::optional<std::string>("s3cret"));
    ::unsetenv("BOONG_TEST_SECRET");
    CHECK_THROWS_WITH(read_secret("BOONG_TEST_SECRET", "", "test password"),
                      "test password: the environment variable BOONG_TEST_SECRET is not set");
    const auto dir = std::filesystem::temp_directory_path() / ("boong-secret-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto file = dir / "pw";
    {
        std::FILE* f = std::fopen(file.c_str(), "wb");
        REQUIRE(f);
        std::fputs("from-file\n", f);
        std::fclose(f);
    }
    CHECK(read_secret("", file.string(), "test password") == std::optional<std::string>("from-file"));
    CHECK_THROWS_WITH(read_secret("X", file.string(), "test password"), Catch::Contains("not both"));
    CHECK_THROWS_WITH(read_secret("", (dir / "missing").string(), "test password"),
                      Catch::Contains("cannot open the password file") && !Catch::Contains("from-file"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("parse_endpoint reads host:port, [IPv6]:port and, given a default, a bare host", "[config]") {
    const auto a = boong::parse_endpoint("redis-1:6380");
    REQUIRE(a);
    CHECK((a->host == "redis-1" && a->port == 6380));
    const auto b = boong::parse_endpoint("[::1]:5672");
    REQUIRE(b);
    CHECK((b->host == "::1" && b->port == 5672));
    const auto c = boong::parse_endpoint("rabbit", 5672);
    REQUIRE(c);
    CHECK((c->host == "rabbit" && c->port == 5672));
    // Without a default, the port is required; a bad one is refused, never guessed.
    for (const char* bad : {"rabbit", "rabbit:", ":1", "a:0", "a:65536", "a:12x", "::1", "[::1", "[::1]x", "a b:1", ""}) {
        CAPTURE(bad);
        CHECK_FALSE(boong::parse_endpoint(bad));
    }
}
