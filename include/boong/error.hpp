// Boong error codes and the exception types coroutine users catch.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <cstdint>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>

namespace boong {

using error_code = boost::system::error_code;

// Every failure Boong reports carries one of these codes, so callers can branch
// on the kind of failure without parsing messages.
enum class errc : int {
    concurrency_conflict = 1,  // append: the stream's version is not the expected one
    duplicate_event,           // append: an event id already stored elsewhere
    invalid_argument,          // bad input (stream id, version, payload, event shape)
    invalid_config,            // a config file or option that cannot be used
    not_found,                 // a saga, stream or snapshot that does not exist
    rejected,                  // a business rejection: not retried
    store_unavailable,         // the event store cannot be reached
    broker_unavailable,        // the message broker cannot be reached
    protocol_error,            // a server answered something we cannot use
    saga_not_resumable,        // the saga is terminal or unknown to this runner
    unknown_event,             // an event whose name or version this service cannot decode
    dependency_unavailable,    // something a handler or step needs (a service, an API) cannot be reached
    definition_mismatch,       // the saga started on another definition (version or steps) than this runner's
    transaction_aborted,       // the store aborted the transaction each time (deadlock, serialization failure)
};

}  // namespace boong

template <>
struct boost::system::is_error_code_enum<boong::errc> : std::true_type {};

namespace boong {

const boost::system::error_category& boong_category() noexcept;

// What an exception says (its what()), for logs: "unknown exception" for one
// that is not a std::exception, "no error" for a null pointer.
std::string describe(const std::exception_ptr& error);

inline error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), boong_category()}; }

// True for the codes that say "a dependency cannot be reached right now", not
// "this message or step is wrong": store_unavailable, broker_unavailable and
// dependency_unavailable. Consumers and sagas wait such failures out instead
// of counting them against a message's deliveries or a step's attempts
// (docs/guarantees.md, "Outages").
bool is_unavailable(const error_code& code) noexcept;
// The same for an exception: a boost::system::system_error (boong::Error
// among them) carrying such a code. False for null and anything else.
bool is_unavailable(const std::exception_ptr& error) noexcept;

// The exception every Boong failure is thrown as: a system_error (so `e.code()`
// compares against boong::errc) whose what() carries the full diagnostic text.
class Error : public boost::system::system_error {
public:
    Error(errc code, std::string message) : system_error(make_error_code(code)), message_(std::move(message)) {}
    Error(error_code code, std::string message) : system_error(code), message_(std::move(message)) {}

    // Just the diagnostic: the code is available through code().
    const char* what() const noexcept override { return message_.c_str(); }

private:
    std::string message_;
};

// Thrown by append when the stream is not at the expected version. Carries both
// versions so the caller can reload and retry.
class ConcurrencyConflict : public Error {
public:
    // Versions are 1-based; 0 means "no stream".
    ConcurrencyConflict(std::string stream, std::int64_t expected, std::int64_t actual);

    const std::string& stream() const noexcept { return stream_; }
    std::int64_t expected() const noexcept { return expected_; }
    std::int64_t actual() const noexcept { return actual_; }

private:
    std::string stream_;
    std::int64_t expected_;
    std::int64_t actual_;
};

// Thrown by a saga step (or a message handler) to say "no, and retrying will not
// change that" — insufficient funds, unknown customer. Not retried: a saga step
// that throws it is compensated at once; a message goes to the dead letters at once.
class Rejection : public Error {
public:
    explicit Rejection(const std::string& reason) : Error(errc::rejected, reason) {}
};

// Thrown by a saga step or a message handler to say "something I need (a
// payment gateway, another service) cannot be reached right now": not the
// fault of the message or the step. Like the store's and the broker's own
// unavailability, it does not count towards max_deliveries or a step's
// attempts; the consumer pauses and the step waits, with backoff, until the
// dependency answers again.
class Unavailable : public Error {
public:
    explicit Unavailable(const std::string& what) : Error(errc::dependency_unavailable, what) {}
};

}  // namespace boong
