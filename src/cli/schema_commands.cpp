// boong schema status|migrate|grants: the PostgreSQL event store's schema
// version, its upgrade (the library's own migrations, as a service runs them
// at start), and the GRANTs of least-privilege roles (docs/security.md).
#include "commands.hpp"
#include "exit_status.hpp"
#include "output.hpp"

#include <boong/postgres/roles.hpp>

#include <iostream>

namespace boong::cli {

namespace {

json status_json(const SchemaStatus& s) {
    json migrations = json::array();
    for (const auto& m : s.applied) {
        migrations.push_back({{"version", m.version},
                              {"description", m.description},
                              {"library_version", m.library_version},
                              {"applied_at", m.applied_at}});
    }
    json pending = json::array();
    for (int v = s.version + 1; v <= s.library_version; ++v) pending.push_back(v);
    return {{"endpoint", s.endpoint},       {"schema", s.schema},
            {"events_table", s.events_table}, {"version", s.version},
            {"library_version", s.library_version}, {"up_to_date", s.version == s.library_version},
            {"pending", pending},            {"migrations", migrations}};
}

void print_status(const SchemaStatus& s) {
    const bool colour = stdout_wants_colour();
    std::cout << paint("Event store", Colour::bold, colour) << "  " << s.events_table << " at " << s.endpoint << '\n';
    std::string state;
    if (s.version == s.library_version) {
        state = paint("up to date", Colour::green, colour);
    } else if (s.version < s.library_version) {
        state = paint(std::to_string(s.library_version - s.version) + " migration(s) pending: run `boong schema migrate`",
                      Colour::yellow, colour);
    } else {
        state = paint("newer than this boong: upgrade boong", Colour::red, colour);
    }
    std::cout << paint("Schema", Colour::bold, colour) << "       version " << s.version << " (this boong: "
              << s.library_version << "), " << state << '\n';
    if (s.applied.empty()) return;
    std::cout << '\n';
    Table t({"VERSION", "APPLIED", "BY BOONG", "DESCRIPTION"});
    for (const auto& m : s.applied) t.add({std::to_string(m.version), m.applied_at, m.library_version, m.description});
    t.print(std::cout, colour);
}

void status(const GlobalOptions& global) {
    const SchemaStatus s = read_schema_status(effective_config(global));
    if (global.json) {
        print_json(std::cout, status_json(s));
        return;
    }
    print_status(s);
}

void migrate(const GlobalOptions& global) {
    const Config config = effective_config(global);
    const int before = read_schema_status(config).version;
    const SchemaStatus s = migrate_schema(config);
    if (global.json) {
        json j = status_json(s);
        j["migrated_from"] = before;
        print_json(std::cout, j);
        return;
    }
    if (before == s.version) {
        std::cout << "Already at schema version " << s.version << ": nothing to do.\n\n";
    } else {
        std::cout << "Migrated from schema version " << before << " to " << s.version << ".\n\n";
    }
    print_status(s);
}

struct GrantOptions {
    std::string application;
    std::string read_only;
    std::string schema;  // empty: the configured connection's current schema
};

void grants(const GlobalOptions& global, const GrantOptions& o) {
    const Config config = effective_config(global);
    const PostgresStoreConfig& store = postgres_of(config);
    const std::string schema = o.schema.empty() ? read_schema_status(config).schema : o.schema;
    std::vector<std::string> statements;
    try {
        statements = postgres_grants(store, schema,
                                     PostgresRoles{.application = o.application, .read_only = o.read_only});
    } catch (const Error& e) {
        throw CommandError(ExitStatus::usage, e.what());
    }
    if (global.json) {
        print_json(std::cout, {{"schema", schema}, {"statements", statements}});
        return;
    }
    std::cout << "-- Run as the role that owns the tables (the one that ran `boong schema migrate`).\n";
    for (const auto& statement : statements) std::cout << statement << ";\n";
}

}  // namespace

void add_schema_commands(CLI::App& app, const GlobalOptions& global, CommandAction& action) {
    auto* schema = app.add_subcommand("schema", "The PostgreSQL event store's schema");
    schema->require_subcommand(1);
    schema->add_subcommand("status", "The schema version, and the migrations applied")
        ->callback([&action, &global] { action = [&global] { status(global); }; });
    schema->add_subcommand("migrate", "Create or upgrade the schema (idempotent: what a service does when it opens the store)")
        ->callback([&action, &global] { action = [&global] { migrate(global); }; });
    auto go = std::make_shared<GrantOptions>();
    auto* grants_cmd = schema->add_subcommand(
        "grants", "Print the GRANTs of least-privilege roles: an application role that appends and reads but never "
                  "changes history, a read-only operator role (docs/security.md)");
    grants_cmd->add_option("--application", go->application, "The services' role: appends and reads");
    grants_cmd->add_option("--read-only", go->read_only, "The operators' role: reads everything, changes nothing");
    grants_cmd->add_option("--schema", go->schema,
                           "The schema the tables live in (default: ask the server, as a service's store does)");
    grants_cmd->callback([&action, &global, go] { action = [&global, go] { grants(global, *go); }; });
}

}  // namespace boong::cli
