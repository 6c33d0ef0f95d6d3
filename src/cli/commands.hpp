// The command groups of `boong`, one file each; main registers them.
#pragma once

#include "connection.hpp"

#include <CLI/CLI.hpp>

#include <functional>

#include <boong/saga_index.hpp>

namespace boong::cli {

// What the parsed command line asked for: set by the command's callback,
// run by main once parsing is over (and logging is set up).
using CommandAction = std::function<void()>;

void add_saga_commands(CLI::App& app, const GlobalOptions& global, CommandAction& action);    // sagas list|stats|stuck|show
void add_event_commands(CLI::App& app, const GlobalOptions& global, CommandAction& action);   // events show|tail
void add_dlq_commands(CLI::App& app, const GlobalOptions& global, CommandAction& action);     // dlq list|show|redrive|drop
void add_status_commands(CLI::App& app, const GlobalOptions& global, CommandAction& action);  // outbox status, consumers
void add_schema_commands(CLI::App& app, const GlobalOptions& global, CommandAction& action);  // schema status|migrate

// A saga as the index has it, for --json: every key always present (null when unset).
json saga_record_json(const SagaRecord& r);

}  // namespace boong::cli
