// Least-privilege PostgreSQL roles for a store (target Boong::postgres):
// the GRANTs that let an application append and read but never change
// history, and an operator read everything and change nothing.
//
//   boong::PostgresRoles roles{.application = "orders_app", .read_only = "orders_ops"};
//   for (const auto& statement : boong::postgres_grants(config, "public", roles)) run(statement);
//
// The third role is the one that owns the tables: it runs the migrations
// (`boong schema migrate`) and archive runs (`boong events archive`). The
// `boong schema grants` command prints these statements for a
// configuration. See docs/security.md, "PostgreSQL roles".
#pragma once

#include <boong/config.hpp>

#include <string>
#include <vector>

namespace boong {

struct PostgresRoles {
    // Appends and reads events; keeps the snapshot, saga, outbox and inbox
    // rows. No UPDATE, DELETE or TRUNCATE of events, nothing on the archive
    // but SELECT, no DDL: it opens a store already migrated. Empty: none.
    std::string application;
    // Reads every table of the store (the CLI's read commands); writes none.
    // Empty: none.
    std::string read_only;
};

// The GRANT statements for `roles` on the tables of the store `config`
// describes, in `schema` (unquoted; the store's tables live in the first
// schema of its connection's search_path). Role and schema names are quoted
// here. Throws Error(errc::invalid_argument) when both roles are empty or
// name the same role.
std::vector<std::string> postgres_grants(const PostgresStoreConfig& config, const std::string& schema,
                                         const PostgresRoles& roles);

}  // namespace boong
