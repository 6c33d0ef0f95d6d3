// What the three order services share: their command line, the process
// (store, Redis broker, outbox relay, event bus, signal handling) and the
// helpers their handlers use to fold a stream inside a reaction.
#pragma once

#include "events.hpp"

#include <boong/broker/redis.hpp>
#include <boong/event_bus.hpp>
#include <boong/outbox_relay.hpp>
#include <boong/store/postgres_outbox.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace shop {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// Command line, with environment fallbacks:
//   --dsn DSN            (BOONG_DSN)          PostgreSQL, required
//   --redis HOST:PORT    (BOONG_REDIS)        default 127.0.0.1:6379
//   --redis-db N         (BOONG_REDIS_DB)     default 0
//   --table NAME         (BOONG_TABLE)        events table, default event_store
//   --http PORT          (BOONG_HTTP_PORT)    order service only, default 8080
//   --mode events|saga   (BOONG_MODE)         order service only, default events
//   --log-level LEVEL    (BOONG_LOG_LEVEL)    spdlog level, default info
struct Options {
    std::string service;
    std::string dsn;
    std::string redis_host = "127.0.0.1";
    int redis_port = 6379;
    int redis_db = 0;
    std::string table = "event_store";
    int http_port = 8080;
    std::string mode = "events";
    std::string log_level = "info";
};

inline Options parse_options(std::string service, int argc, char** argv) {
    std::map<std::string, std::string> v;
    const std::map<std::string, const char*> flags{{"--dsn", "BOONG_DSN"},          {"--redis", "BOONG_REDIS"},
                                                   {"--redis-db", "BOONG_REDIS_DB"}, {"--table", "BOONG_TABLE"},
                                                   {"--http", "BOONG_HTTP_PORT"},    {"--mode", "BOONG_MODE"},
                                                   {"--log-level", "BOONG_LOG_LEVEL"}};
    for (const auto& [flag, env] : flags) {
        if (const char* e = std::getenv(env); e && *e) v[flag] = e;
    }
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            std::cout << "usage: " << service
                      << " --dsn DSN [--redis HOST:PORT] [--redis-db N] [--table NAME] [--http PORT]"
                         " [--mode events|saga] [--log-level LEVEL]\n";
            std::exit(0);
        }
        if (!flags.count(a)) throw std::runtime_error("unknown argument '" + a + "' (try --help)");
        if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
        v[a] = argv[++i];
    }
    Options o;
    o.service = std::move(service);
    if (!v.count("--dsn")) throw std::runtime_error("--dsn (or BOONG_DSN) is required");
    o.dsn = v["--dsn"];
    if (v.count("--redis")) {
        const auto& r = v["--redis"];
        const auto colon = r.rfind(':');
        if (colon == std::string::npos) throw std::runtime_error("--redis must be HOST:PORT, not '" + r + "'");
        o.redis_host = r.substr(0, colon);
        o.redis_port = std::stoi(r.substr(colon + 1));
    }
    if (v.count("--redis-db")) o.redis_db = std::stoi(v["--redis-db"]);
    if (v.count("--table")) o.table = v["--table"];
    if (v.count("--http")) o.http_port = std::stoi(v["--http"]);
    if (v.count("--mode")) o.mode = v["--mode"];
    if (v.count("--log-level")) o.log_level = v["--log-level"];
    if (o.mode != "events" && o.mode != "saga") throw std::runtime_error("--mode must be events or saga");
    // The services' own tables are named after the events table.
    if (!boong::is_sql_identifier(o.table) || !boong::is_sql_identifier(o.table + "_payments")) {
        throw std::runtime_error("--table '" + o.table + "' is not a usable SQL identifier (at most 54 characters)");
    }
    return o;
}

// The payment service's table (the saga mode of the order service charges
// into it directly): one row per charged order.
inline std::string payments_table(const Options& o) { return o.table + "_payments"; }
// The inventory service's table: what is available per SKU.
inline std::string stock_table(const Options& o) { return o.table + "_stock"; }

inline void create_payments_table(const Options& o) {
    pqxx::connection c(o.dsn);
    pqxx::work tx(c);
    tx.exec("CREATE TABLE IF NOT EXISTS " + payments_table(o) +
            " (order_id text PRIMARY KEY, customer text NOT NULL, amount_cents bigint NOT NULL,"
            " status text NOT NULL CHECK (status IN ('charged', 'refunded')),"
            " updated_at timestamptz NOT NULL DEFAULT now())");
    tx.commit();
}

// Creates the stock table and seeds it (seed_stock()) the first time.
inline void create_stock_table(const Options& o) {
    pqxx::connection c(o.dsn);
    pqxx::work tx(c);
    tx.exec("CREATE TABLE IF NOT EXISTS " + stock_table(o) +
            " (sku text PRIMARY KEY, available bigint NOT NULL CHECK (available >= 0))");
    for (const auto& [sku, quantity] : seed_stock()) {
        tx.exec_params("INSERT INTO " + stock_table(o) + " (sku, available) VALUES ($1, $2) ON CONFLICT (sku) DO NOTHING",
                       sku, quantity);
    }
    tx.commit();
}

using Bus = boong::EventBus<boong::RedisBroker>;
using Relay = boong::OutboxRelay<boong::PostgresEventStore, boong::PostgresOutbox, boong::RedisBroker>;

// One service process: the store, the broker, the relay that publishes every
// stored event to Redis (topic = its type; relays of all three services share
// the cursor "bus", so one publishes at a time) and the service's event bus.
class Process {
public:
    explicit Process(Options options) : options_(std::move(options)), registry_(make_registry()) {
        spdlog::set_level(spdlog::level::from_str(options_.log_level));
        spdlog::set_pattern("[%H:%M:%S.%e] [" + options_.service + " %P] [%l] %v");

        boong::PostgresStoreConfig pc;
        pc.connection = options_.dsn;
        pc.table_name = options_.table;
        pc.snapshot_table_name = options_.table + "_snapshots";
        pc.pool_size = 8;
        store_ = std::make_unique<boong::PostgresEventStore>(ioc_.get_executor(), pc);
        store_->open();  // before the io_context runs: creates the schema on first use
        outbox_ = std::make_unique<boong::PostgresOutbox>(*store_);

        boong::RedisBrokerConfig rc;
        rc.host = options_.redis_host;
        rc.port = options_.redis_port;
        rc.database = options_.redis_db;
        rc.command_timeout = 10s;
        broker_ = std::make_unique<boong::RedisBroker>(ioc_.get_executor(), rc);

        boong::OutboxRelayOptions ro;
        ro.relay = "bus";
        ro.owner = boong::make_owner(options_.service);  // a restarted service takes its cursor back at once
        ro.topic = boong::topic_by_type;
        ro.lease = 2s;  // a dead relay's standby takes over within ~2 s
        relay_ = std::make_unique<Relay>(*store_, *outbox_, *broker_, ro);

        boong::EventBusOptions bo;
        bo.service = options_.service;
        bo.consumers.concurrency = 16;
        // A handler that failed (a conflict, a stock race) or a message left by
        // a killed process comes again after this long.
        bo.consumers.visibility_timeout = 2s;
        bo.consumers.max_deliveries = 50;
        bo.consumers.shutdown_grace = 3s;
        bus_ = std::make_unique<Bus>(*store_, *broker_, registry_, bo);
    }

    asio::io_context& ioc() { return ioc_; }
    const Options& options() const { return options_; }
    boong::PostgresEventStore& store() { return *store_; }
    const boong::EventRegistry& registry() const { return registry_; }
    Bus& bus() { return *bus_; }
    const std::string& events_table() const { return store_->tables().events; }

    // Runs until SIGINT or SIGTERM: starts the relay (once Redis answers) and
    // the bus, then stops them gracefully, `stop_extra` first.
    void run(std::function<asio::awaitable<void>()> stop_extra = {}) {
        auto start = [this]() -> asio::awaitable<void> {
            for (;;) {
                bool ok = true;
                try {
                    co_await broker_->async_open(asio::use_awaitable);
                } catch (const std::exception& e) {
                    ok = false;
                    spdlog::warn("redis not reachable yet: {}", e.what());
                }
                if (ok) break;
                asio::steady_timer t(ioc_, 500ms);
                co_await t.async_wait(asio::use_awaitable);
            }
            relay_->start();
            bus_->start();
            spdlog::info("{} running (events table {}, redis {}:{} db {})", options_.service, options_.table,
                         options_.redis_host, options_.redis_port, options_.redis_db);
        };
        asio::co_spawn(ioc_, start, asio::detached);

        asio::signal_set signals(ioc_, SIGTERM, SIGINT);
        signals.async_wait([&](const boost::system::error_code&, int) {
            auto stop = [this, stop_extra]() -> asio::awaitable<void> {
                spdlog::info("{} stopping", options_.service);
                if (stop_extra) co_await stop_extra();
                co_await bus_->stop();
                co_await relay_->stop();
            };
            asio::co_spawn(ioc_, stop, [this](std::exception_ptr) { ioc_.stop(); });
        });
        ioc_.run();
    }

private:
    Options options_;
    boong::EventRegistry registry_;
    asio::io_context ioc_;
    std::unique_ptr<boong::PostgresEventStore> store_;
    std::unique_ptr<boong::PostgresOutbox> outbox_;
    std::unique_ptr<boong::RedisBroker> broker_;
    std::unique_ptr<Relay> relay_;
    std::unique_ptr<Bus> bus_;
};

// A stream as read inside a reaction's transaction (decide may only read).
struct StreamView {
    std::int64_t version = 0;  // 0: no stream
    std::vector<boong::EventData> events;

    bool has(std::string_view type) const {
        for (const auto& e : events)
            if (e.type == type) return true;
        return false;
    }
    const boong::EventData* find(std::string_view type) const {
        for (const auto& e : events)
            if (e.type == type) return &e;
        return nullptr;
    }
    boong::ExpectedVersion expected() const {
        return version == 0 ? boong::ExpectedVersion::no_stream() : boong::ExpectedVersion::exactly(version);
    }
};

inline StreamView read_stream_in(pqxx::transaction_base& tx, const std::string& events_table,
                                 const std::string& stream) {
    StreamView v;
    const auto rows = tx.exec_params("SELECT version, event_id::text, type, schema_version, payload::text FROM " +
                                         events_table + " WHERE stream_id = $1 ORDER BY version",
                                     stream);
    for (const auto& row : rows) {
        boong::EventData e;
        v.version = row[0].as<std::int64_t>();
        e.event_id = row[1].as<std::string>();
        e.type = row[2].as<std::string>();
        e.schema_version = row[3].as<int>();
        e.payload = boong::json::parse(row[4].as<std::string>());
        v.events.push_back(std::move(e));
    }
    return v;
}

// Reacts with a fresh decision (make() returns the decide function) and, when
// the stream moved under it (ConcurrencyConflict: another handler of the same
// flow appended first), decides again on what is there now, a few times;
// then throws, and the bus delivers the message again.
template <class MakeDecide>
asio::awaitable<void> react_retrying(boong::HandlerContext& ctx, MakeDecide make) {
    for (int attempt = 1;; ++attempt) {
        bool conflict = false;
        try {
            auto decide = make();
            co_await ctx.react(std::move(decide));
        } catch (const boong::Error& e) {
            // The stream moved: a version check failed, or another transaction
            // appended to it at the same moment (append_in reports both as
            // concurrency_conflict).
            const bool raced = e.code() == boong::make_error_code(boong::errc::concurrency_conflict);
            if (!raced || attempt >= 4) throw;
            conflict = true;
            spdlog::debug("{}: {} (deciding again)", ctx.event().type, e.what());
        }
        if (!conflict) co_return;
    }
}

inline std::string money(std::int64_t cents) {
    const std::string frac = std::to_string(cents % 100);
    return std::to_string(cents / 100) + "." + (frac.size() == 1 ? "0" + frac : frac);
}

}  // namespace shop
