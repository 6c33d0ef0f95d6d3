// How `boong` ends: the exit statuses it documents (docs/cli.md, the footer
// of `boong --help`), and the error a command throws to end with one.
#pragma once

#include <stdexcept>
#include <string>

namespace boong::cli {

enum class ExitStatus : int {
    ok = 0,
    failed = 1,       // the operation was refused or failed (the server answered)
    usage = 2,        // bad arguments, a config that cannot be used
    unreachable = 3,  // PostgreSQL or the broker cannot be reached
    not_found = 4,    // the saga, stream or dead letter asked for does not exist
};

// What every `--help` ends with.
inline constexpr const char* kExitStatusHelp =
    "Exit status: 0 ok, 1 operation failed, 2 usage or configuration error,\n"
    "3 a server cannot be reached, 4 not found. Docs: docs/cli.md";

// Thrown by a command: main prints "boong: <what>" on stderr and exits with `status`.
class CommandError : public std::runtime_error {
public:
    CommandError(ExitStatus status, const std::string& message) : std::runtime_error(message), status_(status) {}
    ExitStatus status() const noexcept { return status_; }

private:
    ExitStatus status_;
};

}  // namespace boong::cli
