#include "connection.hpp"

#include "exit_status.hpp"
#include "postgres/connection.hpp"
#include "postgres/schema.hpp"

#include <boong/backends.hpp>

#include <boost/asio/use_awaitable.hpp>

#include <pqxx/pqxx>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include <pwd.h>
#include <unistd.h>

namespace boong::cli {

namespace asio = boost::asio;

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// The reason in a driver's message, as few words as say it.
std::string short_reason(const std::string& message) {
    const std::string m = lower(message);
    static constexpr std::pair<const char*, const char*> kKnown[] = {
        {"connection refused", "connection refused"},
        {"timeout expired", "timed out"},
        {"timed out", "timed out"},
        {"could not translate host name", "unknown host"},
        {"name or service not known", "unknown host"},
        {"temporary failure in name resolution", "unknown host"},
        {"no route to host", "no route to host"},
        {"network is unreachable", "network is unreachable"},
        {"password authentication failed", "password authentication failed"},
        {"connection reset", "connection reset"},
    };
    for (const auto& [needle, reason] : kKnown) {
        if (m.find(needle) != std::string::npos) return reason;
    }
    // Whatever follows the last "): " or ": " (the driver's own words).
    const auto at = message.rfind(": ");
    return at == std::string::npos ? message : message.substr(at + 2);
}

std::string redis_endpoint(const RedisBrokerConfig& c) { return c.host + ":" + std::to_string(c.port); }

std::string rabbitmq_endpoint(const RabbitMqBrokerConfig& c) {
    if (c.nodes.empty()) return c.host + ":" + std::to_string(c.port);
    std::string s;
    for (const auto& n : c.nodes) s += (s.empty() ? "" : ",") + n.host + ":" + std::to_string(n.port);
    return s;
}

// One connection of our own (schema status and migrations work below the store).
std::unique_ptr<pg::Session> connect(const pg::ConnectTarget& target) {
    try {
        return std::make_unique<pg::Session>(target);
    } catch (const Error& e) {
        throw CommandError(ExitStatus::unreachable,
                           "cannot reach PostgreSQL at " + target.endpoint + ": " + short_reason(e.what()));
    }
}

SchemaStatus status_on(pg::Session& session, const PostgresStoreConfig& config, const std::string& endpoint) {
    SchemaStatus s;
    s.endpoint = endpoint;
    s.library_version = pg::kSchemaVersion;
    const pg::Names names = pg::resolve_names(session.connection(), config);
    s.schema = names.schema;
    s.events_table = names.events;
    pqxx::nontransaction tx(session.connection(), "boong-schema-status");
    const bool exists = tx.exec1("SELECT to_regclass(" + tx.quote(names.versions) + ") IS NOT NULL")[0].as<bool>();
    if (!exists) return s;
    const auto rows = tx.exec("SELECT version, description, library_version, "
                              "to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM " +
                              names.versions + " ORDER BY version");
    for (const auto& row : rows) {
        s.applied.push_back({row[0].as<int>(), row[1].c_str(), row[2].c_str(), row[3].c_str()});
        s.version = std::max(s.version, row[0].as<int>());
    }
    return s;
}

template <class Body>
SchemaStatus with_session(const Config& config, Body body) {
    const auto& pg_config = postgres_of(config);
    const pg::ConnectTarget target = pg::make_connect_target(pg_config);
    auto session = connect(target);
    try {
        return body(*session, pg_config, target.endpoint);
    } catch (...) {
        throw command_error(pg::translate(std::current_exception(), target, "reading the schema").error);
    }
}

}  // namespace

const PostgresStoreConfig& postgres_of(const Config& config) {
    if (config.event_store.type != EventStoreConfig::Type::postgres) {
        throw CommandError(ExitStatus::usage,
                           "no PostgreSQL event store configured: give --pg DSN (or BOONG_PG), or a --config "
                           "whose eventStore.type is \"postgres\"");
    }
    return config.event_store.postgres;
}

Config effective_config(const GlobalOptions& o) {
    Config c = o.config_file.empty() ? Config{} : load_config(o.config_file);
    if (!o.pg.empty()) {
        c.event_store.type = EventStoreConfig::Type::postgres;
        c.event_store.postgres.connection = o.pg;
    }
    if (!o.redis.empty()) {
        const auto ep = parse_endpoint(o.redis, 6379);
        if (!ep) throw CommandError(ExitStatus::usage, "--redis: expected HOST[:PORT], got '" + o.redis + "'");
        c.message_broker.type = MessageBrokerConfig::Type::redis_streams;
        c.message_broker.redis.host = ep->host;
        c.message_broker.redis.port = ep->port;
    }
    if (!o.rabbitmq.empty()) {
        const auto ep = parse_endpoint(o.rabbitmq, 5672);
        if (!ep) throw CommandError(ExitStatus::usage, "--rabbitmq: expected HOST[:PORT], got '" + o.rabbitmq + "'");
        c.message_broker.type = MessageBrokerConfig::Type::rabbitmq;
        c.message_broker.rabbitmq.nodes.clear();
        c.message_broker.rabbitmq.host = ep->host;
        c.message_broker.rabbitmq.port = ep->port;
    }
    if (!o.rabbitmq_user.empty()) c.message_broker.rabbitmq.username = o.rabbitmq_user;
    // Passwords: the config's own passwordEnv/passwordFile, else these variables.
    auto password_from = [](std::string& env, const std::string& file, const char* variable) {
        if (env.empty() && file.empty() && std::getenv(variable) != nullptr) env = variable;
    };
    password_from(c.message_broker.redis.password_env, c.message_broker.redis.password_file, "BOONG_REDIS_PASSWORD");
    password_from(c.message_broker.rabbitmq.password_env, c.message_broker.rabbitmq.password_file,
                  "BOONG_RABBITMQ_PASSWORD");
    // One command at a time: a service's pool would only open idle connections.
    c.event_store.postgres.pool_size = std::min(c.event_store.postgres.pool_size, 2);
    return c;
}

SchemaStatus read_schema_status(const Config& config) {
    return with_session(config, [](pg::Session& session, const PostgresStoreConfig& c, const std::string& endpoint) {
        return status_on(session, c, endpoint);
    });
}

SchemaStatus migrate_schema(const Config& config) {
    return with_session(config, [](pg::Session& session, const PostgresStoreConfig& c, const std::string& endpoint) {
        pg::migrate(session.connection(), pg::resolve_names(session.connection(), c));
        return status_on(session, c, endpoint);
    });
}

StoreConnection::StoreConnection(asio::io_context& ioc, const Config& config) : ioc_(ioc) {
    const SchemaStatus status = read_schema_status(config);
    if (status.version == 0) {
        throw CommandError(ExitStatus::failed, "no Boong event store " + status.events_table + " at " +
                                                   status.endpoint + " (no schema yet): check --pg/eventStore, or "
                                                   "create it with `boong schema migrate`");
    }
    if (status.version < status.library_version) {
        throw CommandError(ExitStatus::failed,
                           "the event store " + status.events_table + " at " + status.endpoint +
                               " is at schema version " + std::to_string(status.version) + ", this boong reads " +
                               std::to_string(status.library_version) + ": run `boong schema migrate` first");
    }
    if (status.version > status.library_version) {
        throw CommandError(ExitStatus::failed, "the event store " + status.events_table + " at " + status.endpoint +
                                                   " is at schema version " + std::to_string(status.version) +
                                                   ", newer than this boong knows (" +
                                                   std::to_string(status.library_version) + "): upgrade boong");
    }
    try {
        store_ = std::make_unique<PostgresEventStore>(ioc.get_executor(), config.event_store.postgres);
        run(store_->async_open(asio::use_awaitable));
    } catch (...) {
        throw command_error(std::current_exception());
    }
}

AnyBroker open_broker(asio::io_context& ioc, const Config& config) {
    std::string server;
    switch (config.message_broker.type) {
        case MessageBrokerConfig::Type::memory:
            throw CommandError(ExitStatus::usage,
                               "the configured broker is \"memory\", which lives inside one process: give --redis "
                               "HOST[:PORT] or --rabbitmq HOST[:PORT], or a --config whose messageBroker.type is "
                               "\"redis-streams\" or \"rabbitmq\"");
        case MessageBrokerConfig::Type::redis_streams:
            server = "Redis at " + redis_endpoint(config.message_broker.redis);
            break;
        case MessageBrokerConfig::Type::rabbitmq:
            server = "RabbitMQ at " + rabbitmq_endpoint(config.message_broker.rabbitmq);
            break;
    }
    try {
        AnyBroker broker = make_broker(ioc.get_executor(), config.message_broker);
        run_to_completion(ioc, broker.async_open(asio::use_awaitable));
        return broker;
    } catch (const Error& e) {
        if (is_unavailable(e.code())) {
            throw CommandError(ExitStatus::unreachable, "cannot reach " + server + ": " + short_reason(e.what()));
        }
        throw command_error(std::current_exception());
    }
}

CommandError command_error(std::exception_ptr error) {
    try {
        std::rethrow_exception(error);
    } catch (const CommandError& e) {
        return e;
    } catch (const Error& e) {
        const auto code = e.code();
        if (is_unavailable(code)) return CommandError(ExitStatus::unreachable, e.what());
        if (code == errc::not_found) return CommandError(ExitStatus::not_found, e.what());
        if (code == errc::invalid_argument || code == errc::invalid_config) {
            return CommandError(ExitStatus::usage, e.what());
        }
        return CommandError(ExitStatus::failed, e.what());
    } catch (const std::exception& e) {
        return CommandError(ExitStatus::failed, e.what());
    } catch (...) {
        return CommandError(ExitStatus::failed, "unknown error");
    }
}

std::string operator_name(const std::string& as) {
    if (!as.empty()) return as;
    std::string user;
    if (const char* u = std::getenv("USER"); u != nullptr && *u != '\0') {
        user = u;
    } else if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr) {
        user = pw->pw_name;
    } else {
        user = "uid" + std::to_string(::geteuid());
    }
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    return user + "@" + (host[0] != '\0' ? host : "localhost");
}

}  // namespace boong::cli
