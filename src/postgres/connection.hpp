// One PostgreSQL connection as a pool worker uses it: how to reach the server
// (from the config), the session settings every connection gets, a liveness
// check, and the translation of driver exceptions into boong::Error.
#pragma once

#include <boong/config.hpp>
#include <boong/error.hpp>

#include <pqxx/connection>

#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boong::pg {

// Where and how to connect, derived once from the config.
struct ConnectTarget {
    std::string conninfo;  // key='value' pairs handed to libpq
    std::string endpoint;  // "host:port", for every message about the connection
    std::string database;  // as configured ("" = libpq's default), for messages
    std::string user;
    std::chrono::milliseconds command_timeout{0};  // 0 = none
};

// Parses config.connection (a conninfo string or URI) and adds what the
// config says: connect_timeout, the password from password_env, and defaults
// for application_name and TCP keepalives that the string does not set.
// Throws Error(errc::invalid_config) when the string does not parse or
// password_env names an unset variable.
ConnectTarget make_connect_target(const PostgresStoreConfig& config);

// libpq's messages span lines ("...\n\tIs the server running..."); ours are one line.
std::string one_line(std::string_view text);

// Named prepared statements, registered on each connection before first use.
using Statements = std::vector<std::pair<std::string, std::string>>;

// A live connection with Boong's session settings.
class Session {
public:
    // Connects (bounded by connect_timeout). Throws Error(errc::store_unavailable)
    // naming the endpoint, database and user, with libpq's reason.
    explicit Session(const ConnectTarget& target);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    pqxx::connection& connection() noexcept { return *connection_; }

    // False when the server has closed the connection while it sat idle (a
    // restart, pg_terminate_backend, an idle timeout): checked before each
    // job, so a dead idle connection is replaced instead of failing a job.
    bool usable();

    // Registers `statements` on this connection once (libpqxx prepares them
    // on the server on first use).
    void prepare(const Statements& statements);

private:
    class NoticeLogger;
    std::unique_ptr<pqxx::connection> connection_;
    std::unique_ptr<NoticeLogger> notices_;  // declared after connection_: destroyed before it
    const Statements* prepared_ = nullptr;
};

// Carries an exception thrown by the caller's own code (an async_transact
// body) out of a job untouched: translate() hands it on as it is, and the
// session, whose transaction merely rolled back, stays in the pool.
struct CallerError {
    std::exception_ptr error;
};

// What a failed operation turns into.
struct Failure {
    std::exception_ptr error;      // a boong::Error (or the original exception if it already is one)
    bool connection_lost = false;  // the session cannot be used again
    bool retryable = false;        // serialization failure or deadlock: running again is safe
};

// Translates `error` (thrown while doing `what`, e.g. "read_all from 7") into
// a boong::Error: connection problems are errc::store_unavailable naming the
// endpoint, bad data errc::invalid_argument, anything unexpected
// errc::protocol_error with the SQLSTATE. A CallerError goes through as the
// exception it carries. `append`: whether the operation wrote events (only
// then does an unknown outcome come with "safe to retry with the same ids").
Failure translate(std::exception_ptr error, const ConnectTarget& target, std::string_view what, bool append = false);

}  // namespace boong::pg
