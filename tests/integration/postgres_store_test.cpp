// The PostgreSQL event store against a real PostgreSQL 15 (scripts/test.sh
// starts one and exports BOONG_TEST_PG_DSN): the conformance suite, then what
// only a durable, concurrent, networked store has to get right.
#include <boong/store/postgres.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <libpq-fe.h>
#include <pqxx/pqxx>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

std::string test_dsn() {
    const char* dsn = std::getenv("BOONG_TEST_PG_DSN");
    if (!dsn || !*dsn) {
        FAIL("BOONG_TEST_PG_DSN is not set: run integration tests through scripts/test.sh, or `source "
             "scripts/lib/servers.sh; boong_start_postgres \"\" \"\"` first");
    }
    return dsn;
}

// Distinguishes this run's streams and tables from earlier runs against the
// same database.
const std::string& run_id() {
    static const std::string id = [] {
        boong::IdGenerator ids;
        std::string u = ids.next();
        return u.substr(24, 12);  // the random tail of a UUIDv7
    }();
    return id;
}

boong::PostgresStoreConfig test_config(std::string table = "it_events") {
    boong::PostgresStoreConfig c;
    c.connection = test_dsn();
    c.snapshot_table_name = table + "_snapshots";
    c.table_name = std::move(table);
    c.pool_size = 4;
    c.connect_timeout = 5s;
    c.command_timeout = 20s;
    return c;
}

// A table name unique to this run (tests that create and drop their own).
std::string fresh_table(std::string_view base) { return std::string(base) + "_" + run_id(); }

// A blocking connection for the test's own checks and mischief.
pqxx::connection admin() { return pqxx::connection(test_dsn()); }

void drop_tables(const std::string& table) {
    auto c = admin();
    pqxx::nontransaction tx(c);
    tx.exec("DROP VIEW IF EXISTS " + table + "_sagas");
    tx.exec("DROP TABLE IF EXISTS " + table + ", " + table + "_snapshots, " + table + "_schema");
    tx.exec("DROP FUNCTION IF EXISTS " + table + "_append(jsonb)");
}

struct PostgresStoreFixture {
    asio::io_context context;
    boong::PostgresEventStore pg{context.get_executor(), test_config()};
    int counter = 0;

    PostgresStoreFixture() { pg.open(); }
    asio::io_context& ioc() { return context; }
    boong::PostgresEventStore& store() { return pg; }
    std::string unique(std::string_view base) {
        return std::string(base) + "-" + run_id() + "-" + std::to_string(++counter) + "-" +
               std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    }
};

template <class F>
std::string message_of(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return {};
}

}  // namespace

#define BOONG_STORE_FIXTURES PostgresStoreFixture
#include "conformance/event_store_conformance.hpp"

using boong::test::code_of;
using boong::test::make_event;
using boong::test::run;

TEST_CASE("postgres: a server that is not there fails the open quickly, naming host and port", "[postgres]") {
    asio::io_context ioc;
    auto cfg = test_config();
    cfg.connection = "postgresql://boong:boong@127.0.0.1:1/boong_test";
    const auto start = std::chrono::steady_clock::now();
    boong::PostgresEventStore store(ioc.get_executor(), cfg);
    std::string message;
    boong::error_code code;
    try {
        run(ioc, [&] { return store.async_open(asio::use_awaitable); });
    } catch (const boong::Error& e) {
        message = e.what();
        code = e.code();
    }
    CHECK(code == boong::errc::store_unavailable);
    CHECK_THAT(message, Catch::Contains("127.0.0.1:1"));
    CHECK(std::chrono::steady_clock::now() - start < 5s);
    // Operations on a store that failed to open fail clearly, and at once.
    CHECK(code_of([&] { run(ioc, [&] { return store.async_read_all(1, 10, asio::use_awaitable); }); }) ==
          boong::errc::store_unavailable);
}

TEST_CASE("postgres: a server that accepts but never answers fails within connect_timeout", "[postgres]") {
    // The kernel completes the TCP handshake for a listening socket nobody
    // accepts on; libpq then waits for an answer to its startup packet.
    asio::io_context listener_context;
    asio::ip::tcp::acceptor silent(listener_context, {asio::ip::make_address("127.0.0.1"), 0});
    const auto port = silent.local_endpoint().port();
    asio::io_context ioc;
    auto cfg = test_config();
    cfg.connection = "host=127.0.0.1 port=" + std::to_string(port) + " dbname=boong_test user=boong password=boong";
    cfg.connect_timeout = 2s;
    cfg.pool_size = 1;
    const auto start = std::chrono::steady_clock::now();
    boong::PostgresEventStore store(ioc.get_executor(), cfg);
    const auto message = message_of([&] { store.open(); });
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK_THAT(message, Catch::Contains("127.0.0.1:" + std::to_string(port)));
    CHECK(took >= 1500ms);
    CHECK(took < 8s);
}

TEST_CASE("postgres: a wrong password is a clear start-up error", "[postgres]") {
    asio::io_context ioc;
    auto cfg = test_config();
    std::string dsn = test_dsn();
    const auto at = dsn.find(":boong@");
    REQUIRE(at != std::string::npos);
    dsn.replace(at, 7, ":wrong@");
    cfg.connection = dsn;
    boong::PostgresEventStore store(ioc.get_executor(), cfg);
    std::string message;
    CHECK(code_of([&] {
              try {
                  store.open();
              } catch (const std::exception& e) {
                  message = e.what();
                  throw;
              }
          }) == boong::errc::store_unavailable);
    CHECK_THAT(message, Catch::Contains("127.0.0.1:") && Catch::Contains("password authentication failed"));
}

TEST_CASE("postgres: the password can come from the variable password_env names", "[postgres]") {
    // Take the test DSN apart and put it back together without its password.
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(test_dsn().c_str(), &error);
    REQUIRE(options != nullptr);
    std::string conninfo, password;
    for (auto* o = options; o->keyword; ++o) {
        if (!o->val) continue;
        if (std::string_view(o->keyword) == "password") {
            password = o->val;
        } else {
            conninfo += std::string(o->keyword) + "=" + o->val + " ";
        }
    }
    PQconninfoFree(options);
    REQUIRE_FALSE(password.empty());

    asio::io_context ioc;
    auto cfg = test_config();
    cfg.connection = conninfo;
    cfg.password_env = "BOONG_IT_PG_PASSWORD";
    ::unsetenv("BOONG_IT_PG_PASSWORD");
    const auto unset = message_of([&] { boong::PostgresEventStore s(ioc.get_executor(), cfg); });
    CHECK_THAT(unset, Catch::Contains("BOONG_IT_PG_PASSWORD"));
    ::setenv("BOONG_IT_PG_PASSWORD", password.c_str(), 1);
    boong::PostgresEventStore store(ioc.get_executor(), cfg);
    store.open();
    ::unsetenv("BOONG_IT_PG_PASSWORD");
    auto page = run(ioc, [&] { return store.async_read_all(1, 1, asio::use_awaitable); });
    CHECK(page.size() <= 1);
}

TEST_CASE("postgres: table names must be plain identifiers: no SQL through config", "[postgres]") {
    asio::io_context ioc;
    for (const std::string& bad : std::vector<std::string>{"events; DROP TABLE users", "select", "1events", "",
                                                            "events\"", "a b", std::string(64, 'x'), "evénements"}) {
        auto cfg = test_config();
        cfg.table_name = bad;
        boong::error_code code;
        std::string message;
        try {
            boong::PostgresEventStore s(ioc.get_executor(), cfg);
        } catch (const boong::Error& e) {
            code = e.code();
            message = e.what();
        }
        CHECK(code == boong::errc::invalid_config);
        CHECK_THAT(message, Catch::Contains("not a plain SQL identifier"));
    }
    auto cfg = test_config();
    cfg.snapshot_table_name = "x--";
    CHECK(code_of([&] { boong::PostgresEventStore s(ioc.get_executor(), cfg); }) == boong::errc::invalid_config);
    cfg = test_config();
    cfg.pool_size = 0;
    CHECK(code_of([&] { boong::PostgresEventStore s(ioc.get_executor(), cfg); }) == boong::errc::invalid_config);
    cfg = test_config();
    cfg.connection = "host='unterminated";
    CHECK(code_of([&] { boong::PostgresEventStore s(ioc.get_executor(), cfg); }) == boong::errc::invalid_config);
}

TEST_CASE("postgres: operations before open fail clearly", "[postgres]") {
    asio::io_context ioc;
    boong::PostgresEventStore store(ioc.get_executor(), test_config());
    boong::IdGenerator ids;
    std::string message;
    try {
        run(ioc, [&] {
            return store.async_append("s", boong::ExpectedVersion::any(), {make_event(ids, "E")},
                                      asio::use_awaitable);
        });
    } catch (const boong::Error& e) {
        CHECK(e.code() == boong::errc::store_unavailable);
        message = e.what();
    }
    CHECK_THAT(message, Catch::Contains("not open"));
}

TEST_CASE("postgres: the schema is created once, idempotently, by stores that start together", "[postgres]") {
    const auto table = fresh_table("it_schema");
    drop_tables(table);
    // Four stores opening at the same moment, as four processes would.
    std::vector<std::thread> starters;
    std::atomic<int> opened{0};
    std::mutex errors_mutex;
    std::vector<std::string> errors;
    for (int i = 0; i < 4; ++i) {
        starters.emplace_back([&] {
            try {
                asio::io_context ioc;
                boong::PostgresEventStore store(ioc.get_executor(), test_config(table));
                store.open();
                ++opened;
            } catch (const std::exception& e) {
                std::lock_guard lock(errors_mutex);
                errors.push_back(e.what());
            }
        });
    }
    for (auto& t : starters) t.join();
    CHECK(errors.empty());
    CHECK(opened == 4);
    {
        // Opened again later: nothing to do, nothing fails.
        asio::io_context ioc;
        boong::PostgresEventStore again(ioc.get_executor(), test_config(table));
        again.open();
    }
    auto c = admin();
    pqxx::nontransaction tx(c);
    const auto versions = tx.exec("SELECT version, library_version FROM " + table + "_schema ORDER BY version");
    REQUIRE(versions.size() == 1);
    CHECK(versions[0][0].as<int>() == 1);
    // What the issue asks the table to hold, and the indexes that serve reads.
    const auto columns = tx.exec_params(
        "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) "
        "FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
        table);
    CHECK(columns[0][0].as<std::string>() ==
          "position bigint, stream_id text, version bigint, event_id uuid, type text, schema_version integer, "
          "payload jsonb, metadata jsonb, stored_at timestamp with time zone");
    const auto indexes = tx.exec_params(
        "SELECT string_agg(pg_get_indexdef(indexrelid), '; ' ORDER BY indexrelid) FROM pg_index "
        "WHERE indrelid = to_regclass($1)",
        table);
    const auto defs = indexes[0][0].as<std::string>();
    CHECK_THAT(defs, Catch::Contains("UNIQUE INDEX " + table + "_pkey ON public." + table + " USING btree (\"position\")"));
    CHECK_THAT(defs, Catch::Contains("UNIQUE INDEX " + table + "_stream_id_version_key ON public." + table +
                                     " USING btree (stream_id, version)"));
    CHECK_THAT(defs, Catch::Contains("UNIQUE INDEX " + table + "_event_id_key ON public." + table +
                                     " USING btree (event_id)"));
    CHECK_THAT(defs, Catch::Contains(table + "_saga_phase_idx"));
    drop_tables(table);
}

TEST_CASE("postgres: a database upgraded by a newer library is refused, not misused", "[postgres]") {
    const auto table = fresh_table("it_newer");
    drop_tables(table);
    asio::io_context ioc;
    {
        boong::PostgresEventStore store(ioc.get_executor(), test_config(table));
        store.open();
    }
    {
        auto c = admin();
        pqxx::nontransaction tx(c);
        tx.exec("INSERT INTO " + table + "_schema (version, description, library_version) VALUES (99, 'future', '9.9')");
    }
    boong::PostgresEventStore store(ioc.get_executor(), test_config(table));
    std::string message;
    try {
        store.open();
    } catch (const boong::Error& e) {
        CHECK(e.code() == boong::errc::invalid_config);
        message = e.what();
    }
    CHECK_THAT(message, Catch::Contains("schema version 99") && Catch::Contains("newer"));
    drop_tables(table);
}

TEST_CASE("postgres: a table of the same name made for something else is refused", "[postgres]") {
    const auto table = fresh_table("it_foreign");
    drop_tables(table);
    {
        auto c = admin();
        pqxx::nontransaction tx(c);
        tx.exec("CREATE TABLE " + table + " (id integer PRIMARY KEY, body text)");
    }
    asio::io_context ioc;
    boong::PostgresEventStore store(ioc.get_executor(), test_config(table));
    std::string message;
    try {
        store.open();
    } catch (const boong::Error& e) {
        CHECK(e.code() == boong::errc::invalid_config);
        message = e.what();
    }
    CHECK_THAT(message, Catch::Contains("not a Boong table"));
    drop_tables(table);
}
