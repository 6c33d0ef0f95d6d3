// Where `boong` connects: the service's JSON config, overridden by
// environment variables and flags, and the servers opened from it. Every
// command that talks to a server goes through here, so an unreachable one is
// always the same single line (exit status 3).
#pragma once

#include "exit_status.hpp"

#include <boong/any_broker.hpp>
#include <boong/config.hpp>
#include <boong/postgres/store.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace boong::cli {

// The options every command takes (flags, or the environment variable named
// beside each; a flag wins over its variable, both over the config file).
struct GlobalOptions {
    std::string config_file;   // --config, BOONG_CONFIG
    std::string pg;            // --pg DSN, BOONG_PG: eventStore.type postgres with this connection
    std::string redis;         // --redis HOST[:PORT], BOONG_REDIS: messageBroker.type redis-streams
    std::string rabbitmq;      // --rabbitmq HOST[:PORT], BOONG_RABBITMQ: messageBroker.type rabbitmq
    std::string rabbitmq_user; // --rabbitmq-user, BOONG_RABBITMQ_USER
    bool json = false;         // --json
    int verbosity = 0;         // -v: the library's logs on stderr (info, then debug)
};

// The config the options name: the file (when given), then the overrides.
// Passwords never come from a flag: the config's passwordEnv/passwordFile,
// or else BOONG_REDIS_PASSWORD / BOONG_RABBITMQ_PASSWORD when set (the
// variable is named, not read, here), or PGPASSWORD as libpq reads it.
Config effective_config(const GlobalOptions& options);

// Runs `op` on `ioc` until it completes and returns its result: the
// library's async operations, driven one at a time from a blocking tool.
template <class T>
T run_to_completion(boost::asio::io_context& ioc, boost::asio::awaitable<T> op) {
    std::exception_ptr error;
    bool done = false;
    std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> result{};
    if constexpr (std::is_void_v<T>) {
        boost::asio::co_spawn(ioc, std::move(op), [&](std::exception_ptr e) {
            error = e;
            done = true;
        });
    } else {
        boost::asio::co_spawn(ioc, std::move(op), [&](std::exception_ptr e, T value) {
            error = e;
            if (!e) result.emplace(std::move(value));
            done = true;
        });
    }
    // The store completes from its worker threads through posts: run until
    // the operation's own completion, not until the context runs dry.
    ioc.restart();
    while (!done) {
        if (ioc.run_one_for(std::chrono::milliseconds(50)) == 0 && ioc.stopped()) ioc.restart();
    }
    if (error) std::rethrow_exception(error);
    if constexpr (!std::is_void_v<T>) return std::move(*result);
}

// The schema a PostgreSQL event store is at, read without changing it.
struct AppliedMigration {
    int version = 0;
    std::string description;
    std::string library_version;
    std::string applied_at;  // RFC 3339
};
struct SchemaStatus {
    std::string endpoint;  // host:port
    std::string schema;    // where the tables are
    std::string events_table;
    int version = 0;          // 0: no schema yet
    int library_version = 0;  // what this boong writes
    std::vector<AppliedMigration> applied;
};

// Reads the schema status of the configured store (one connection, no
// writes). CommandError(unreachable) when the server cannot be reached,
// CommandError(usage) when no PostgreSQL store is configured.
// The configured PostgreSQL store; CommandError(usage) when none is.
const PostgresStoreConfig& postgres_of(const Config& config);
SchemaStatus read_schema_status(const Config& config);
// Creates or upgrades the schema (the library's migrations); the status after.
SchemaStatus migrate_schema(const Config& config);

// The PostgreSQL event store, open, for one command. It refuses to open a
// store whose schema is not this boong's version: opening would upgrade it,
// and a look at a store must never change it (`boong schema migrate` does).
class StoreConnection {
public:
    StoreConnection(boost::asio::io_context& ioc, const Config& config);
    PostgresEventStore& store() noexcept { return *store_; }
    boost::asio::io_context& context() noexcept { return ioc_; }
    // Runs one operation of the store (or of anything on its executor).
    template <class T>
    T run(boost::asio::awaitable<T> op) {
        return run_to_completion(ioc_, std::move(op));
    }

private:
    boost::asio::io_context& ioc_;
    std::unique_ptr<PostgresEventStore> store_;
};

// The configured broker, connected. CommandError(usage) for a memory broker
// (nothing to look at from outside a process), CommandError(unreachable)
// when it cannot be reached.
AnyBroker open_broker(boost::asio::io_context& ioc, const Config& config);

// Turns what a server's failure threw into the CommandError main reports:
// unavailability into one line naming the server (exit 3), not_found into 4,
// invalid_argument/invalid_config into 2, anything else into 1.
CommandError command_error(std::exception_ptr error);

// Who runs the command, for audit records: `as` when given, else user@host.
std::string operator_name(const std::string& as);

}  // namespace boong::cli
