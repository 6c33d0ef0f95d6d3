#include "connection.hpp"

#include <boost/asio/error.hpp>

#include <libpq-fe.h>
#include <nlohmann/json.hpp>
#include <pqxx/errorhandler>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <spdlog/spdlog.h>

#include <poll.h>

#include <algorithm>
#include <cstdlib>
#include <new>

namespace boong::pg {
namespace {

using Options = std::vector<std::pair<std::string, std::string>>;

const std::string* find_option(const Options& options, std::string_view key) {
    for (const auto& [k, v] : options) {
        if (k == key) return &v;
    }
    return nullptr;
}

void set_option(Options& options, std::string_view key, std::string value) {
    for (auto& [k, v] : options) {
        if (k == key) {
            v = std::move(value);
            return;
        }
    }
    options.emplace_back(std::string(key), std::move(value));
}

void set_default(Options& options, std::string_view key, std::string value) {
    if (!find_option(options, key)) options.emplace_back(std::string(key), std::move(value));
}

// A conninfo value in single quotes, with \ and ' escaped as libpq expects.
std::string quote_value(std::string_view v) {
    std::string out = "'";
    for (char c : v) {
        if (c == '\\' || c == '\'') out += '\\';
        out += c;
    }
    out += '\'';
    return out;
}

std::string env_or(const char* name, std::string fallback) {
    const char* v = std::getenv(name);
    return v && *v ? std::string(v) : fallback;
}

}  // namespace

std::string one_line(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    bool space = false;
    for (char c : text) {
        if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += c;
    }
    return out;
}

ConnectTarget make_connect_target(const PostgresStoreConfig& config) {
    char* error = nullptr;
    PQconninfoOption* parsed = PQconninfoParse(config.connection.c_str(), &error);
    if (!parsed) {
        std::string why = error ? one_line(error) : std::string("out of memory");
        if (error) PQfreemem(error);
        throw Error(errc::invalid_config, "event store connection string does not parse: " + why);
    }
    Options options;
    for (const PQconninfoOption* o = parsed; o->keyword; ++o) {
        if (o->val) options.emplace_back(o->keyword, o->val);
    }
    PQconninfoFree(parsed);

    if (config.connect_timeout.count() > 0) {
        // libpq counts whole seconds and treats anything below 2 as 2.
        const auto seconds = std::max<long long>(2, (config.connect_timeout.count() + 999) / 1000);
        set_option(options, "connect_timeout", std::to_string(seconds));
    }
    if (auto password = read_secret(config.password_env, config.password_file, "event store password")) {
        set_option(options, "password", std::move(*password));
    }
    set_default(options, "application_name", "boong");
    // Detect a peer that vanished (no RST) within about a minute, not the
    // system default of two hours; a connection string may say otherwise.
    set_default(options, "keepalives_idle", "30");
    set_default(options, "keepalives_interval", "10");
    set_default(options, "keepalives_count", "3");

    ConnectTarget t;
    for (const auto& [k, v] : options) {
        if (!t.conninfo.empty()) t.conninfo += ' ';
        t.conninfo += k + '=' + quote_value(v);
    }
    const std::string* host = find_option(options, "host");
    if (!host || host->empty()) host = find_option(options, "hostaddr");
    const std::string* port = find_option(options, "port");
    t.endpoint = (host && !host->empty() ? *host : env_or("PGHOST", "the default Unix socket")) + ":" +
                 (port && !port->empty() ? *port : env_or("PGPORT", "5432"));
    const std::string* db = find_option(options, "dbname");
    const std::string* user = find_option(options, "user");
    t.database = db ? *db : env_or("PGDATABASE", "");
    t.user = user ? *user : env_or("PGUSER", "");
    t.command_timeout = config.command_timeout;
    return t;
}

// Routes the server's notices and warnings to spdlog instead of libpqxx's
// default (stderr).
class Session::NoticeLogger final : public pqxx::errorhandler {
public:
    explicit NoticeLogger(pqxx::connection_base& c) : pqxx::errorhandler(c) {}
    bool operator()(const char message[]) noexcept override {
        // A FATAL outside a query is the server saying goodbye (shutdown,
        // pg_terminate_backend, idle timeout); the socket closes right after.
        const std::string_view text(message);
        if (text.starts_with("FATAL") || text.starts_with("PANIC")) doomed = true;
        try {
            spdlog::warn("postgres: {}", one_line(text));
        } catch (...) {
            // Logging must not throw into libpq.
        }
        return false;
    }
    bool doomed = false;
};

Session::Session(const ConnectTarget& target) {
    try {
        connection_ = std::make_unique<pqxx::connection>(target.conninfo);
    } catch (const pqxx::broken_connection& e) {
        std::string who;
        if (!target.database.empty()) who += "database " + target.database;
        if (!target.user.empty()) who += std::string(who.empty() ? "" : ", ") + "user " + target.user;
        throw Error(errc::store_unavailable, "cannot connect to PostgreSQL at " + target.endpoint +
                                                 (who.empty() ? "" : " (" + who + ")") + ": " + one_line(e.what()));
    }
    // We reconnect ourselves (with backoff, counted, logged); libpqxx 6's
    // silent reactivation would also drop the session settings below.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    connection_->inhibit_reactivation(true);
#pragma GCC diagnostic pop
    notices_ = std::make_unique<NoticeLogger>(*connection_);
    const auto timeout = std::to_string(target.command_timeout.count());
    try {
        pqxx::nontransaction tx(*connection_, "boong-session");
        // read committed matters: the append function takes its lock and then
        // needs a fresh snapshot (docs/postgres.md, "Gap-free read_all").
        // jit off: every statement here is small; compiling costs more than it saves.
        // enable_seqscan off: the store's statements look rows up by index (a
        // stream's head, an event id, a saga, a lease owner's sagas). Planned
        // while a table is still small, as on a fresh database, a sequential
        // scan costs less, and a cached plan keeps it as the table grows:
        // every lookup then reads the whole table until an ANALYZE replans
        // it (measured: saga_durable_throughput on a fresh server fell from
        // ~20,000 to ~5,000 steps/s, 104 M rows read by 2,534 scans in 8 s).
        // A statement no index serves still scans.
        tx.exec("SET statement_timeout = " + timeout +
                "; SET default_transaction_isolation = 'read committed'"
                "; SET client_min_messages = warning; SET jit = off; SET enable_seqscan = off");
    } catch (const std::exception& e) {
        throw Error(errc::store_unavailable,
                    "connected to PostgreSQL at " + target.endpoint + " but could not set up the session: " +
                        one_line(e.what()));
    }
}

Session::~Session() = default;

bool Session::usable() {
    // Idle, the server sends nothing unless it is going away (it writes a
    // FATAL message, then closes the socket) or has a notice for us. libpq
    // reads the message first and notices the end of the stream only on the
    // next read, so read while there is something to read.
    try {
        for (int reads = 0; reads < 8; ++reads) {
            if (!connection_->is_open()) return false;
            pollfd p{connection_->sock(), POLLIN, 0};
            if (::poll(&p, 1, 0) <= 0) break;  // nothing pending (or EINTR: the next query will tell)
            connection_->get_notifs();         // consumes the input; throws once the server has gone
        }
        // libpqxx 6's is_open() does not follow libpq's connection status;
        // asking for the client encoding does (it fails once the status is bad).
        (void)connection_->get_client_encoding();
        return !notices_->doomed;
    } catch (const std::exception&) {
        return false;
    }
}

void Session::prepare(const Statements& statements) {
    if (prepared_ == &statements) return;
    for (const auto& [name, sql] : statements) connection_->prepare(name, sql);
    prepared_ = &statements;
}

Failure translate(std::exception_ptr error, const ConnectTarget& target, std::string_view what, bool append) {
    const std::string at = std::string(what) + ": ";
    // What a lost connection means for the caller.
    const std::string unknown = append ? "the outcome is unknown (an append is safe to retry with the same event ids)"
                                       : "it is safe to run again";
    auto unavailable = [&](std::string message, bool lost) {
        return Failure{std::make_exception_ptr(Error(errc::store_unavailable, at + message)), lost, false};
    };
    // Contention, not an outage: the server answered and the session is
    // sound; running the transaction again may succeed.
    auto aborted = [&](std::string_view state, const std::string& message) {
        return Failure{std::make_exception_ptr(Error(errc::transaction_aborted,
                                                     at + "PostgreSQL at " + target.endpoint +
                                                         " aborted the transaction (SQLSTATE " + std::string(state) +
                                                         "); nothing was written: " + message)),
                       false, true};
    };
    try {
        std::rethrow_exception(error);
    } catch (const CallerError& e) {
        return Failure{e.error, false, false};
    } catch (const Error&) {
        return Failure{error, false, false};
    } catch (const pqxx::in_doubt_error& e) {
        return unavailable("lost the connection to PostgreSQL at " + target.endpoint + " while committing; " +
                               (append ? unknown : std::string("the outcome is unknown")) + ": " + one_line(e.what()),
                           true);
    } catch (const pqxx::broken_connection& e) {
        return unavailable("lost the connection to PostgreSQL at " + target.endpoint + "; " + unknown + ": " +
                               one_line(e.what()),
                           true);
    } catch (const pqxx::sql_error& e) {
        const std::string& state = e.sqlstate();
        const std::string message = one_line(e.what());
        if (state == "40001" || state == "40P01") return aborted(state, message);
        if (state == "57014") {
            return unavailable("PostgreSQL at " + target.endpoint + " cancelled the statement (command timeout " +
                                   std::to_string(target.command_timeout.count()) +
                                   " ms, or pg_cancel_backend); nothing was written: " + message,
                               false);
        }
        // Class 08: connection exception; 57P0x: the server is shutting down
        // or terminated us; 53: out of resources (too many connections...).
        if (state.starts_with("08") || state.starts_with("57P") || state == "25P03") {
            return unavailable("PostgreSQL at " + target.endpoint + " dropped the connection (SQLSTATE " + state +
                                   "); " + unknown + ": " + message,
                               true);
        }
        if (state.starts_with("53")) {
            return unavailable("PostgreSQL at " + target.endpoint + " is out of resources (SQLSTATE " + state +
                                   "): " + message,
                               false);
        }
        if (state.starts_with("22")) {
            return Failure{std::make_exception_ptr(Error(errc::invalid_argument,
                                                         at + "PostgreSQL refused the data (SQLSTATE " + state +
                                                             "): " + message)),
                           false, false};
        }
        if (state == "23505") {
            return Failure{std::make_exception_ptr(Error(errc::duplicate_event, at + message)), false, false};
        }
        return Failure{std::make_exception_ptr(Error(errc::protocol_error, at + "PostgreSQL at " + target.endpoint +
                                                                               " answered SQLSTATE " +
                                                                               (state.empty() ? "?" : state) + ": " +
                                                                               message)),
                       false, false};
    } catch (const pqxx::deadlock_detected& e) {
        // libpqxx 6 throws these two as transaction_rollback, not sql_error.
        return aborted("40P01", one_line(e.what()));
    } catch (const pqxx::serialization_failure& e) {
        return aborted("40001", one_line(e.what()));
    } catch (const pqxx::failure& e) {
        // Other libpqxx failures leave the connection in an unknown state.
        return Failure{std::make_exception_ptr(Error(errc::protocol_error, at + one_line(e.what()))), true, false};
    } catch (const nlohmann::json::exception& e) {
        return Failure{std::make_exception_ptr(
                           Error(errc::protocol_error, at + "PostgreSQL sent JSON that does not parse: " + e.what())),
                       false, false};
    } catch (const std::bad_alloc&) {
        return Failure{error, false, false};
    } catch (const std::exception& e) {
        return Failure{std::make_exception_ptr(Error(errc::protocol_error, at + e.what())), true, false};
    } catch (...) {
        return Failure{std::make_exception_ptr(Error(errc::protocol_error, at + "unknown exception")), true, false};
    }
}

}  // namespace boong::pg
