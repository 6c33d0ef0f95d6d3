// What the three order services share: their command line, the process
// (store, Redis broker, outbox relay, event bus, signal handling) and the
// services' own tables on PostgreSQL (the handlers are in handlers.hpp).
#pragma once

#include "handlers.hpp"
#include "metrics_endpoint.hpp"

#include <boong/backends.hpp>
#include <boong/config.hpp>
#include <boong/detail/outage_log.hpp>
#include <boong/event_bus.hpp>
#include <boong/outbox_relay.hpp>
#include <boong/postgres/outbox.hpp>
#include <boong/postgres/transaction.hpp>
#include <boong/prometheus/metrics.hpp>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <libpq-fe.h>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace shop {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// Command line, with environment fallbacks (secrets only from the environment
// or a file: a command line is visible to every user of the machine in `ps`):
//   --dsn DSN                   (BOONG_DSN)              PostgreSQL, required; on the command line without a password
//   --pg-password-file FILE     (BOONG_PG_PASSWORD_FILE) or the password in BOONG_PG_PASSWORD
//   --broker redis|rabbitmq     (BOONG_BROKER)           default redis
//   --redis HOST:PORT           (BOONG_REDIS)            default 127.0.0.1:6379
//   --redis-db N                (BOONG_REDIS_DB)         0..15, default 0
//   --redis-user USER           (BOONG_REDIS_USER)       Redis ACL user, optional
//   --redis-password-file FILE  (BOONG_REDIS_PASSWORD_FILE) or the password in BOONG_REDIS_PASSWORD
//   --rabbitmq HOST:PORT        (BOONG_RABBITMQ)         default 127.0.0.1:5672
//   --rabbitmq-user USER        (BOONG_RABBITMQ_USER)    default guest
//   --rabbitmq-password-file FILE (BOONG_RABBITMQ_PASSWORD_FILE) or the password in BOONG_RABBITMQ_PASSWORD
//   --table NAME                (BOONG_TABLE)            events table, default event_store (lower case)
//   --signing-keys FILE         (BOONG_SIGNING_KEYS_FILE) sign every envelope and refuse unsigned ones
//                                                        (boong/signing.hpp; a file only its owner reads)
//   --max-deliveries N          (BOONG_MAX_DELIVERIES)   a message's own failures before it is dead-lettered, default 10
//   --redelivery-ms MS          (BOONG_REDELIVERY_MS)    redelivery after a failure or a lost consumer, default 2000
//   --log-level LEVEL           (BOONG_LOG_LEVEL)        spdlog level, default info
//   --log-format text|json      (BOONG_LOG_FORMAT)       json: one object a line, saga id and step as fields
// The payment and inventory services also take:
//   --metrics-port PORT         (BOONG_METRICS_PORT)     GET /metrics on this port (docs/metrics.md); default: not served
// The order service also takes (and serves GET /metrics on its --http port):
//   --http PORT                 (BOONG_HTTP_PORT)        1..65535, default 8080
//   --mode events|saga          (BOONG_MODE)             default events
//   --max-backlog N             (BOONG_MAX_BACKLOG)      messages waiting before POST answers 429, default 3000
//   --max-body BYTES            (BOONG_MAX_BODY)         request body limit, default 65536
struct Options {
    std::string service;
    std::string dsn;
    std::string pg_password_env;  // the variable holding it, when set
    std::string pg_password_file;
    std::string redis_host = "127.0.0.1";
    int redis_port = 6379;
    int redis_db = 0;
    std::string redis_user;
    std::string redis_password_env;
    std::string redis_password_file;
    std::string broker = "redis";
    std::string rabbitmq_host = "127.0.0.1";
    int rabbitmq_port = 5672;
    std::string rabbitmq_user = "guest";
    std::string rabbitmq_password_env;
    std::string rabbitmq_password_file;
    std::string table = "event_store";
    std::string signing_keys_file;  // empty: envelopes neither signed nor checked
    int max_deliveries = 10;
    std::chrono::milliseconds redelivery{2000};
    std::string log_level = "info";
    std::string log_format = "text";
    int http_port = 8080;
    int metrics_port = 0;  // payment, inventory: GET /metrics on this port (0: not served)
    std::string mode = "events";
    std::int64_t max_backlog = 3000;
    std::int64_t max_body = 64 * 1024;
};

// `text` as a whole integer in [lo, hi], or a clear error naming `flag`.
inline std::int64_t parse_integer(const std::string& flag, const std::string& text, std::int64_t lo, std::int64_t hi) {
    std::int64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || v < lo || v > hi) {
        throw std::runtime_error(flag + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi) +
                                 ", not '" + text + "'");
    }
    return v;
}

// `text` as HOST:PORT (or [IPv6]:PORT), or a clear error naming `flag`.
inline std::pair<std::string, int> parse_host_port(const std::string& flag, const std::string& text) {
    auto endpoint = boong::parse_endpoint(text);
    if (!endpoint) throw std::runtime_error(flag + " must be HOST:PORT with a port in 1..65535, not '" + text + "'");
    return {std::move(endpoint->host), endpoint->port};
}

// Whether a libpq connection string (key=value or URI) carries a password.
inline bool dsn_has_password(const std::string& dsn) {
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &error);
    if (!options) {
        std::string why = error ? error : "out of memory";
        if (error) PQfreemem(error);
        throw std::runtime_error("--dsn does not parse: " + why);
    }
    bool has = false;
    for (const PQconninfoOption* o = options; o->keyword; ++o) {
        if (std::string(o->keyword) == "password" && o->val && *o->val) has = true;
    }
    PQconninfoFree(options);
    return has;
}

inline Options parse_options(std::string service, int argc, char** argv) {
    const bool order = service == "order";
    std::map<std::string, std::string> v;
    std::map<std::string, const char*> flags{{"--dsn", "BOONG_DSN"},
                                             {"--pg-password-file", "BOONG_PG_PASSWORD_FILE"},
                                             {"--redis", "BOONG_REDIS"},
                                             {"--redis-db", "BOONG_REDIS_DB"},
                                             {"--redis-user", "BOONG_REDIS_USER"},
                                             {"--redis-password-file", "BOONG_REDIS_PASSWORD_FILE"},
                                             {"--broker", "BOONG_BROKER"},
                                             {"--rabbitmq", "BOONG_RABBITMQ"},
                                             {"--rabbitmq-user", "BOONG_RABBITMQ_USER"},
                                             {"--rabbitmq-password-file", "BOONG_RABBITMQ_PASSWORD_FILE"},
                                             {"--table", "BOONG_TABLE"},
                                             {"--signing-keys", "BOONG_SIGNING_KEYS_FILE"},
                                             {"--max-deliveries", "BOONG_MAX_DELIVERIES"},
                                             {"--redelivery-ms", "BOONG_REDELIVERY_MS"},
                                             {"--log-level", "BOONG_LOG_LEVEL"},
                                             {"--log-format", "BOONG_LOG_FORMAT"}};
    if (!order) flags.insert({"--metrics-port", "BOONG_METRICS_PORT"});
    if (order) {
        flags.insert({{"--http", "BOONG_HTTP_PORT"},
                      {"--mode", "BOONG_MODE"},
                      {"--max-backlog", "BOONG_MAX_BACKLOG"},
                      {"--max-body", "BOONG_MAX_BODY"}});
    }
    for (const auto& [flag, env] : flags) {
        if (const char* e = std::getenv(env); e && *e) v[flag] = e;
    }
    bool dsn_on_command_line = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            std::cout << "usage: " << service
                      << "_service --dsn DSN [--pg-password-file FILE] [--redis HOST:PORT] [--redis-db N]"
                         " [--redis-user USER] [--redis-password-file FILE] [--broker redis|rabbitmq]"
                         " [--rabbitmq HOST:PORT] [--rabbitmq-user USER] [--rabbitmq-password-file FILE]"
                         " [--table NAME] [--signing-keys FILE] [--max-deliveries N]"
                         " [--redelivery-ms MS] [--log-level LEVEL] [--log-format text|json]"
                      << (order ? " [--http PORT] [--mode events|saga] [--max-backlog N] [--max-body BYTES]"
                                : " [--metrics-port PORT]")
                      << "\n(see examples/order_services/common.hpp; passwords from BOONG_PG_PASSWORD, "
                         "BOONG_REDIS_PASSWORD and BOONG_RABBITMQ_PASSWORD, or the files)\n";
            std::exit(0);
        }
        if (!flags.count(a)) throw std::runtime_error("unknown argument '" + a + "' (try --help)");
        if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
        v[a] = argv[++i];
        if (a == "--dsn") dsn_on_command_line = true;
    }
    Options o;
    o.service = std::move(service);
    if (!v.count("--dsn")) throw std::runtime_error("--dsn (or BOONG_DSN) is required");
    o.dsn = v["--dsn"];
    if (dsn_on_command_line && dsn_has_password(o.dsn)) {
        throw std::runtime_error("the --dsn on the command line carries a password, which `ps` shows to everyone: "
                                 "give it in BOONG_PG_PASSWORD or --pg-password-file (or the whole DSN in BOONG_DSN)");
    }
    if (const char* p = std::getenv("BOONG_PG_PASSWORD"); p && *p) o.pg_password_env = "BOONG_PG_PASSWORD";
    if (v.count("--pg-password-file")) o.pg_password_file = v["--pg-password-file"];
    if (v.count("--redis")) std::tie(o.redis_host, o.redis_port) = parse_host_port("--redis", v["--redis"]);
    if (v.count("--broker")) o.broker = v["--broker"];
    if (o.broker != "redis" && o.broker != "rabbitmq") throw std::runtime_error("--broker must be redis or rabbitmq");
    if (v.count("--rabbitmq")) std::tie(o.rabbitmq_host, o.rabbitmq_port) = parse_host_port("--rabbitmq", v["--rabbitmq"]);
    if (v.count("--rabbitmq-user")) o.rabbitmq_user = v["--rabbitmq-user"];
    if (const char* p = std::getenv("BOONG_RABBITMQ_PASSWORD"); p && *p) o.rabbitmq_password_env = "BOONG_RABBITMQ_PASSWORD";
    if (v.count("--rabbitmq-password-file")) o.rabbitmq_password_file = v["--rabbitmq-password-file"];
    if (v.count("--redis-db")) o.redis_db = static_cast<int>(parse_integer("--redis-db", v["--redis-db"], 0, 15));
    if (v.count("--redis-user")) o.redis_user = v["--redis-user"];
    if (const char* p = std::getenv("BOONG_REDIS_PASSWORD"); p && *p) o.redis_password_env = "BOONG_REDIS_PASSWORD";
    if (v.count("--redis-password-file")) o.redis_password_file = v["--redis-password-file"];
    if (v.count("--table")) o.table = v["--table"];
    if (v.count("--signing-keys")) o.signing_keys_file = v["--signing-keys"];
    if (v.count("--max-deliveries"))
        o.max_deliveries = static_cast<int>(parse_integer("--max-deliveries", v["--max-deliveries"], 1, 1000));
    if (v.count("--redelivery-ms"))
        o.redelivery = std::chrono::milliseconds(parse_integer("--redelivery-ms", v["--redelivery-ms"], 10, 3600000));
    if (v.count("--log-level")) o.log_level = v["--log-level"];
    if (spdlog::level::from_str(o.log_level) == spdlog::level::off && o.log_level != "off") {
        throw std::runtime_error("--log-level must be one of trace, debug, info, warn, error, critical, off; not '" +
                                 o.log_level + "'");
    }
    if (v.count("--log-format")) o.log_format = v["--log-format"];
    if (o.log_format != "text" && o.log_format != "json") {
        throw std::runtime_error("--log-format must be text or json; not '" + o.log_format + "'");
    }
    if (v.count("--metrics-port"))
        o.metrics_port = static_cast<int>(parse_integer("--metrics-port", v["--metrics-port"], 1, 65535));
    if (v.count("--http")) o.http_port = static_cast<int>(parse_integer("--http", v["--http"], 1, 65535));
    if (v.count("--mode")) o.mode = v["--mode"];
    if (o.mode != "events" && o.mode != "saga") throw std::runtime_error("--mode must be events or saga");
    if (v.count("--max-backlog")) o.max_backlog = parse_integer("--max-backlog", v["--max-backlog"], 1, 1000000000);
    if (v.count("--max-body")) o.max_body = parse_integer("--max-body", v["--max-body"], 1024, 16 * 1024 * 1024);
    // The services' own tables are named after the events table.
    if (!boong::is_sql_identifier(o.table) || !boong::is_sql_identifier(o.table + "_reservations")) {
        throw std::runtime_error("--table '" + o.table +
                                 "' is not a usable table name (lower-case letters, digits and _, at most 50 characters)");
    }
    return o;
}

// The payment service's table (the saga mode of the order service charges
// into it directly): one row per charged order.
inline std::string payments_table(const Options& o) { return o.table + "_payments"; }
// The inventory service's table: what is available per SKU.
inline std::string stock_table(const Options& o) { return o.table + "_stock"; }

inline void create_payments_table(pqxx::transaction_base& tx, const Options& o) {
    tx.exec("CREATE TABLE IF NOT EXISTS " + payments_table(o) +
            " (order_id text PRIMARY KEY, customer text NOT NULL, amount_cents bigint NOT NULL,"
            " status text NOT NULL CHECK (status IN ('charged', 'refunded')),"
            " updated_at timestamptz NOT NULL DEFAULT now())");
}

// Creates the stock table and seeds it (seed_stock()) the first time.
inline void create_stock_table(pqxx::transaction_base& tx, const Options& o) {
    tx.exec("CREATE TABLE IF NOT EXISTS " + stock_table(o) +
            " (sku text PRIMARY KEY, available bigint NOT NULL CHECK (available >= 0))");
    for (const auto& [sku, quantity] : seed_stock()) {
        tx.exec_params("INSERT INTO " + stock_table(o) + " (sku, available) VALUES ($1, $2) ON CONFLICT (sku) DO NOTHING",
                       sku, quantity);
    }
}

// The payments table as handlers.hpp's PaymentsTable.
class PostgresPayments {
public:
    explicit PostgresPayments(const Options& o) : table_(payments_table(o)) {}

    void charge(pqxx::transaction_base& tx, const std::string& order_id, const std::string& customer,
                std::int64_t amount_cents) {
        tx.exec_params("INSERT INTO " + table_ +
                           " (order_id, customer, amount_cents, status) VALUES ($1, $2, $3, 'charged')",
                       order_id, customer, amount_cents);
    }
    bool refund(pqxx::transaction_base& tx, const std::string& order_id) {
        return tx.exec_params("UPDATE " + table_ +
                                  " SET status = 'refunded', updated_at = now() WHERE order_id = $1 AND status = 'charged'",
                              order_id)
                   .affected_rows() == 1;
    }

private:
    std::string table_;
};

// The stock table as handlers.hpp's StockTable.
class PostgresStock {
public:
    explicit PostgresStock(const Options& o) : table_(stock_table(o)) {}

    std::optional<std::int64_t> available(pqxx::transaction_base& tx, const std::string& sku) {
        const auto row = tx.exec_params("SELECT available FROM " + table_ + " WHERE sku = $1", sku);
        if (row.empty()) return std::nullopt;
        return row[0][0].as<std::int64_t>();
    }
    bool take(pqxx::transaction_base& tx, const std::string& sku, std::int64_t n) {
        return tx.exec_params("UPDATE " + table_ + " SET available = available - $2 WHERE sku = $1 AND available >= $2",
                              sku, n)
                   .affected_rows() == 1;
    }
    void put_back(pqxx::transaction_base& tx, const std::string& sku, std::int64_t n) {
        tx.exec_params("UPDATE " + table_ + " SET available = available + $2 WHERE sku = $1", sku, n);
    }

private:
    std::string table_;
};

using Bus = boong::EventBus<boong::PostgresEventStore, boong::AnyBroker>;
using Context = Bus::context_type;
using Reaction = boong::Reaction<pqxx::transaction_base>;
using Relay = boong::OutboxRelay<boong::PostgresEventStore, boong::PostgresOutbox, boong::AnyBroker>;

// One service process: the store, the broker, the relay that publishes every
// stored event to Redis (topic = its type; relays of all three services share
// the cursor "bus", so one publishes at a time) and the service's event bus.
class Process {
public:
    explicit Process(Options options)
        : options_(std::move(options)),
          registry_(make_registry()),
          metrics_(std::make_shared<boong::PrometheusObserver>(metrics_registry_)) {
        if (options_.log_format == "json") {
            boong::apply_logging(boong::LoggingConfig{options_.log_level, options_.log_format});
        } else {
            spdlog::set_level(spdlog::level::from_str(options_.log_level));
            spdlog::set_pattern("[%H:%M:%S.%e] [" + options_.service + " %P] [%l] %v");
        }

        boong::PostgresStoreConfig pc;
        pc.connection = options_.dsn;
        pc.password_env = options_.pg_password_env;
        pc.password_file = options_.pg_password_file;
        pc.table_name = options_.table;
        pc.snapshot_table_name = options_.table + "_snapshots";
        pc.pool_size = 8;
        pc.observer = metrics_;
        store_ = std::make_unique<boong::PostgresEventStore>(ioc_.get_executor(), pc);
        store_->open();  // before the io_context runs: creates the schema on first use
        outbox_ = std::make_unique<boong::PostgresOutbox>(*store_);

        boong::MessageBrokerConfig bc;
        if (options_.broker == "rabbitmq") {
            bc.type = boong::MessageBrokerConfig::Type::rabbitmq;
            auto& rc = bc.rabbitmq;
            rc.host = options_.rabbitmq_host;
            rc.port = options_.rabbitmq_port;
            rc.username = options_.rabbitmq_user;
            rc.password_env = options_.rabbitmq_password_env;
            rc.password_file = options_.rabbitmq_password_file;
            // RabbitMQ routes when a message is published: every process
            // declares every group of the flow at start, so an event is kept
            // for each group whichever process starts first; what no service
            // takes (OrderConfirmed, ...) is kept an hour for operators.
            rc.groups = flow_groups(options_.mode == "saga");
            // One name for every deployment on the vhost: the topics'
            // exchanges are shared, and keep the alternate exchange they
            // were first declared with.
            rc.unrouted_queue = "shop.unrouted";
            rc.unrouted_ttl = std::chrono::hours(1);
        } else {
            bc.type = boong::MessageBrokerConfig::Type::redis_streams;
            auto& rc = bc.redis;
            rc.host = options_.redis_host;
            rc.port = options_.redis_port;
            rc.database = options_.redis_db;
            rc.username = options_.redis_user;
            rc.password_env = options_.redis_password_env;
            rc.password_file = options_.redis_password_file;
            rc.command_timeout = 10s;
        }
        bc.signing.keys_file = options_.signing_keys_file;
        broker_ = std::make_unique<boong::AnyBroker>(boong::make_broker(ioc_.get_executor(), bc));

        boong::OutboxRelayOptions ro;
        ro.relay = "bus";
        ro.owner = boong::make_owner(options_.service);  // a restarted service takes its cursor back at once
        ro.topic = boong::topic_by_type;
        ro.lease = 2s;  // a dead relay's standby takes over within ~2 s
        ro.observer = metrics_;
        relay_ = std::make_unique<Relay>(*store_, *outbox_, *broker_, ro);

        boong::EventBusOptions bo;
        bo.service = options_.service;
        // A handler that failed (a conflict, a stock race) or a message left by
        // a killed process comes again after this long. An outage of the store
        // is waited out and never counts towards max_deliveries.
        bo.consumers.visibility_timeout = options_.redelivery;
        bo.consumers.max_deliveries = options_.max_deliveries;
        bo.consumers.shutdown_grace = 3s;
        bo.consumers.observer = metrics_;
        bus_ = std::make_unique<Bus>(*store_, *broker_, registry_, bo);
    }

    asio::io_context& ioc() { return ioc_; }
    const Options& options() const { return options_; }
    boong::PostgresEventStore& store() { return *store_; }
    boong::PostgresOutbox& outbox() { return *outbox_; }
    boong::AnyBroker& broker() { return *broker_; }
    const boong::EventRegistry& registry() const { return registry_; }
    // What every Boong piece of this process reports to (docs/metrics.md).
    const std::shared_ptr<boong::PrometheusObserver>& metrics() const { return metrics_; }
    // The registry as Prometheus scrapes it (GET /metrics).
    std::string metrics_text() const { return prometheus::TextSerializer().Serialize(metrics_registry_.Collect()); }
    Bus& bus() { return *bus_; }

    // Runs `body` in a transaction on the store, before the service starts
    // (its own tables): blocks until it is done.
    void setup(std::function<void(pqxx::transaction_base&)> body) {
        std::exception_ptr error;
        asio::co_spawn(ioc_, boong::async_transact(*store_, std::move(body), asio::use_awaitable),
                       [&error](std::exception_ptr e) { error = e; });
        ioc_.run();
        ioc_.restart();
        if (error) std::rethrow_exception(error);
    }

    // Runs until SIGINT or SIGTERM: starts the relay (once the broker answers)
    // and the bus, then stops them gracefully, `stop_extra` first. Returns the
    // process's exit status: 0, or 2 when the broker refused us (a
    // configuration to fix, not an outage to wait out).
    int run(std::function<asio::awaitable<void>()> stop_extra = {}) {
        auto start = [this]() -> asio::awaitable<void> {
            boong::detail::OutageLog waiting;
            while (!stopping_) {
                std::string why;
                try {
                    co_await broker_->async_open(asio::use_awaitable);
                } catch (const boong::Error& e) {
                    // A server that does not answer is waited for; one that
                    // refuses (a declaration, a login) is a configuration to fix.
                    if (!boong::is_unavailable(e.code())) {
                        spdlog::critical("{}", e.what());  // it names the server
                        exit_code_ = 2;
                        ioc_.stop();
                        co_return;
                    }
                    why = e.what();
                }
                if (why.empty()) break;
                const auto now = std::chrono::steady_clock::now();
                spdlog::log(waiting.failure(now), "{} not reachable yet ({} s): {}", broker_->describe(),
                            waiting.seconds(now), why);
                asio::steady_timer t(ioc_, 500ms);
                co_await t.async_wait(asio::use_awaitable);
            }
            if (stopping_) co_return;
            relay_->start();
            bus_->start();
            started_ = true;
            spdlog::info("{} running (events table {}, broker {})", options_.service, options_.table,
                         broker_->describe());
        };
        asio::co_spawn(ioc_, start, asio::detached);
        std::optional<MetricsEndpoint> metrics_endpoint;
        if (options_.metrics_port > 0) {
            metrics_endpoint.emplace(ioc_, options_.metrics_port, [this] { return metrics_text(); });
            metrics_endpoint->start();
            spdlog::info("{}: metrics on http://127.0.0.1:{}/metrics", options_.service, options_.metrics_port);
        }

        asio::signal_set signals(ioc_, SIGTERM, SIGINT);
        signals.async_wait([&](const boost::system::error_code&, int) {
            if (metrics_endpoint) metrics_endpoint->stop();
            auto stop = [this, stop_extra]() -> asio::awaitable<void> {
                spdlog::info("{} stopping", options_.service);
                stopping_ = true;
                if (stop_extra) co_await stop_extra();
                if (started_) {
                    co_await bus_->stop();
                    co_await relay_->stop();
                }
            };
            asio::co_spawn(ioc_, stop, [this](std::exception_ptr) { ioc_.stop(); });
        });
        ioc_.run();
        return exit_code_;
    }

private:
    bool stopping_ = false;
    bool started_ = false;
    int exit_code_ = 0;
    Options options_;
    boong::EventRegistry registry_;
    // Declared before everything that reports to it, so it outlives them.
    prometheus::Registry metrics_registry_;
    std::shared_ptr<boong::PrometheusObserver> metrics_;
    asio::io_context ioc_;
    std::unique_ptr<boong::PostgresEventStore> store_;
    std::unique_ptr<boong::PostgresOutbox> outbox_;
    std::unique_ptr<boong::AnyBroker> broker_;
    std::unique_ptr<Relay> relay_;
    std::unique_ptr<Bus> bus_;
};

}  // namespace shop
