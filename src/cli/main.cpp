// boong: look at and repair what Boong services leave in PostgreSQL and the
// broker, from a shell. See docs/cli.md.
#include "commands.hpp"
#include "exit_status.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <iostream>

namespace {

// The library logs through spdlog; a command's own output is stdout, so its
// logs go to stderr, and only with -v (a failure is reported once, by main).
void route_library_logs(int verbosity) {
    auto logger = spdlog::stderr_logger_mt("boong-cli");
    spdlog::set_default_logger(logger);
    spdlog::set_level(verbosity >= 2 ? spdlog::level::debug
                      : verbosity == 1 ? spdlog::level::info
                                       : spdlog::level::off);
}

}  // namespace

int main(int argc, char** argv) {
    using namespace boong::cli;
    GlobalOptions global;
    CLI::App app("boong: sagas, events, dead letters and consumers of Boong services", "boong");
    app.footer(kExitStatusHelp);
    app.set_version_flag("--version", std::string("boong ") + BOONG_VERSION);
    app.require_subcommand(1);
    // Global options may come after the command too (boong sagas list --json).
    app.fallthrough();
    app.add_option("--config", global.config_file, "The service's JSON config file")->envname("BOONG_CONFIG");
    app.add_option("--pg", global.pg, "PostgreSQL connection string or URI of the event store")->envname("BOONG_PG");
    auto* redis = app.add_option("--redis", global.redis, "Redis Streams broker at HOST[:PORT]")->envname("BOONG_REDIS");
    app.add_option("--rabbitmq", global.rabbitmq, "RabbitMQ broker at HOST[:PORT]")
        ->envname("BOONG_RABBITMQ")
        ->excludes(redis);
    app.add_option("--rabbitmq-user", global.rabbitmq_user, "RabbitMQ user name")->envname("BOONG_RABBITMQ_USER");
    app.add_flag("--json", global.json, "One JSON document on stdout, for tools");
    app.add_flag("-v,--verbose", global.verbosity, "The library's logs on stderr (-vv: debug)");

    CommandAction action;
    add_saga_commands(app, global, action);
    add_event_commands(app, global, action);
    add_dlq_commands(app, global, action);
    add_status_commands(app, global, action);
    add_schema_commands(app, global, action);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int status = app.exit(e);  // prints help, the version, or the usage error
        return status == 0 ? 0 : static_cast<int>(ExitStatus::usage);
    }
    route_library_logs(global.verbosity);
    try {
        if (action) action();
    } catch (const CommandError& e) {
        std::cerr << "boong: " << e.what() << '\n';
        return static_cast<int>(e.status());
    } catch (...) {
        const CommandError e = command_error(std::current_exception());
        std::cerr << "boong: " << e.what() << '\n';
        return static_cast<int>(e.status());
    }
    return 0;
}
