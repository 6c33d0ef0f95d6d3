// The test PostgreSQL server, for integration tests that talk to it.
#pragma once

#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include <cstdlib>
#include <string>

namespace boong::test {

// Its DSN: scripts/test.sh starts the server and exports BOONG_TEST_PG_DSN.
inline std::string test_dsn() {
    const char* dsn = std::getenv("BOONG_TEST_PG_DSN");
    if (!dsn || !*dsn) {
        FAIL("BOONG_TEST_PG_DSN is not set: run integration tests through scripts/test.sh, or `source "
             "scripts/lib/servers.sh; boong_start_postgres \"\" \"\"` first");
    }
    return dsn;
}

// Drops a store's tables, functions and sequence: what a test that made
// its own table leaves behind.
inline void drop_tables(const std::string& table) {
    pqxx::connection c(test_dsn());
    pqxx::nontransaction tx(c);
    // The saga table was a view before schema version 2.
    const auto kind = tx.exec("SELECT relkind FROM pg_class WHERE relname = '" + table + "_sagas'");
    if (!kind.empty()) {
        tx.exec(std::string(kind[0][0].c_str()) == "v" ? "DROP VIEW " + table + "_sagas"
                                                        : "DROP TABLE " + table + "_sagas");
    }
    tx.exec("DROP TABLE IF EXISTS " + table + ", " + table + "_snapshots, " + table + "_schema, " + table +
            "_outbox, " + table + "_inbox, " + table + "_archive, " + table + "_subject_keys");
    tx.exec("DROP FUNCTION IF EXISTS " + table + "_track_saga()");
    tx.exec("DROP FUNCTION IF EXISTS " + table + "_keep_history()");
    tx.exec("DROP FUNCTION IF EXISTS " + table + "_append(jsonb)");
    tx.exec("DROP FUNCTION IF EXISTS " + table + "_append(jsonb, boolean)");
    tx.exec("DROP SEQUENCE IF EXISTS " + table + "_position_seq");
}

// Runs `statement`, which changes stored events, with the store's history
// triggers off for its transaction (schema version 6 refuses any change):
// what a test that fakes time (an event's age, a recorded deadline) does, as
// the tables' owner may, on purpose (docs/security.md). `events` is the
// events table's name as SQL.
inline void rewrite_history(const std::string& events, const std::string& statement) {
    pqxx::connection c(test_dsn());
    pqxx::work tx(c);
    tx.exec("ALTER TABLE " + events + " DISABLE TRIGGER USER");
    tx.exec(statement);
    tx.exec("ALTER TABLE " + events + " ENABLE TRIGGER USER");
    tx.commit();
}

}  // namespace boong::test
