// The PostgreSQL event store against a real PostgreSQL 15 (scripts/test.sh
// starts one and exports BOONG_TEST_PG_DSN): the conformance suite, then what
// only a durable, concurrent, networked store has to get right.
#include <boong/backends.hpp>
#include <boong/postgres/outbox.hpp>
#include <boong/postgres/sagas.hpp>
#include <boong/postgres/store.hpp>
#include <boong/postgres/subject_keys.hpp>

#include "postgres/schema.hpp"  // the migrations (src/)
#include "support/async.hpp"
#include "support/postgres.hpp"
#include <boong/postgres/transaction.hpp>

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
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

using boong::test::test_dsn;

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

using boong::test::drop_tables;

struct PostgresStoreFixture {
    asio::io_context context;
    boong::PostgresEventStore pg{context.get_executor(), test_config()};
    boong::PostgresOutbox outbox{pg};
    boong::PostgresSubjectKeys subject_keys{pg, std::make_shared<const boong::MasterKey>(
                                                    boong::MasterKey::from_hex(std::string(64, '7')))};
    int counter = 0;

    PostgresStoreFixture() { pg.open(); }
    asio::io_context& ioc() { return context; }
    boong::PostgresEventStore& store() { return pg; }
    boong::PostgresOutbox& cursor() { return outbox; }
    boong::PostgresSubjectKeys& keys() { return subject_keys; }
    std::string unique(std::string_view base) {
        return std::string(base) + "-" + run_id() + "-" + std::to_string(++counter) + "-" +
               std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    }
};

// The same store made from configuration, behind AnyEventStore: the erasure
// passes the suite too.
struct AnyPostgresStoreFixture {
    asio::io_context context;
    boong::AnyEventStore any = make_any(context);
    int counter = 0;

    static boong::AnyEventStore make_any(asio::io_context& ioc) {
        boong::EventStoreConfig config;
        config.type = boong::EventStoreConfig::Type::postgres;
        config.postgres = test_config();
        auto store = boong::make_store(ioc.get_executor(), config);
        boong::test::run(ioc, [&] { return store.async_open(asio::use_awaitable); });
        return store;
    }
    asio::io_context& ioc() { return context; }
    boong::AnyEventStore& store() { return any; }
    std::string unique(std::string_view base) {
        return std::string(base) + "-any-" + run_id() + "-" + std::to_string(++counter) + "-" +
               std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    }
};

// A store on a table of its own: an index answers for the whole table.
struct PostgresSagaFixture {
    asio::io_context context;
    std::string table = fresh_table("it_index") + "_" + std::to_string(++created);
    static inline int created = 0;
    boong::PostgresEventStore pg{context.get_executor(), test_config(table)};
    boong::PostgresSagaIndex sagas{pg};

    PostgresSagaFixture() { pg.open(); }
    ~PostgresSagaFixture() {
        try {
            drop_tables(table);
        } catch (const std::exception&) {
            // left for the server's cleanup with the test run
        }
    }
    asio::io_context& ioc() { return context; }
    boong::PostgresEventStore& store() { return pg; }
    boong::PostgresSagaIndex& index() { return sagas; }
};

}  // namespace

// LeakSanitizer: libpqxx 6.4 leaks the PGresult of a statement whose
// connection dies under it (connection_base::exec_prepared asks for the
// client encoding before the result is owned, and that throws once the
// connection is gone; fixed in libpqxx 7). The reconnection test provokes
// exactly that: about 2 KiB per connection lost mid-statement.
extern "C" const char* __lsan_default_suppressions() { return "leak:pqxx::connection_base::exec_prepared\n"; }

#define BOONG_STORE_FIXTURES PostgresStoreFixture, AnyPostgresStoreFixture
#include "conformance/event_store_conformance.hpp"
#undef BOONG_STORE_FIXTURES
#define BOONG_STORE_FIXTURES PostgresStoreFixture
#include "conformance/transactional_store_conformance.hpp"
#define BOONG_CURSOR_FIXTURES PostgresStoreFixture
#include "conformance/outbox_cursor_conformance.hpp"
#define BOONG_SAGA_INDEX_FIXTURES PostgresSagaFixture
#include "conformance/saga_index_conformance.hpp"
#define BOONG_SUBJECT_KEYS_FIXTURES PostgresStoreFixture
#include "conformance/subject_keys_conformance.hpp"

// What the key table holds: wrapped keys, useless without the master key.
TEST_CASE("postgres subject keys: wrapped at rest; another master key opens nothing", "[postgres][encryption]") {
    PostgresStoreFixture fx;
    const std::string subject = fx.unique("c");
    const auto key = boong::test::run(fx.ioc(), [&] { return fx.keys().async_current(subject, asio::use_awaitable); });
    pqxx::connection c(test_dsn());
    pqxx::nontransaction tx(c);
    const auto row = tx.exec_params1("SELECT wrapped FROM " + fx.store().tables().subject_keys +
                                         " WHERE subject = $1 AND version = 1",
                                     subject);
    const std::string wrapped = row[0].as<std::string>();
    CHECK(wrapped.find(key.secret) == std::string::npos);
    boong::PostgresSubjectKeys other(fx.store(), std::make_shared<const boong::MasterKey>(
                                                     boong::MasterKey::from_hex(std::string(64, '8'))));
    const auto error = boong::test::message_of([&] {
        boong::test::run(fx.ioc(), [&] { return other.async_find(subject, 1, asio::use_awaitable); });
    });
    CHECK_THAT(error, Catch::Contains("does not unwrap") && Catch::Contains(subject));
}

using boong::test::code_of;
using boong::test::message_of;
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

namespace {

// Runs `ioc` until `done()` holds; fails after `limit`.
template <class Predicate>
void pump(asio::io_context& ioc, Predicate done, std::chrono::steady_clock::duration limit = 30s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) FAIL("timed out waiting for the operation");
        if (ioc.stopped()) ioc.restart();
        ioc.run_one_for(20ms);
    }
}

// Asserts that nothing is left on `ioc`: no operation forgot its handler.
void require_idle(asio::io_context& ioc) {
    ioc.restart();
    ioc.run_for(300ms);
    REQUIRE(ioc.stopped());
}

// Waits until a backend of `application_name` waits on a lock (an append
// blocked behind the test's LOCK TABLE).
void wait_until_blocked(const std::string& application_name) {
    auto c = admin();
    for (int i = 0; i < 500; ++i) {
        pqxx::nontransaction tx(c);
        const auto r = tx.exec_params(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
            application_name);
        if (r[0][0].as<int>() > 0) return;
        std::this_thread::sleep_for(10ms);
    }
    FAIL("no backend of " + application_name + " got blocked");
}

std::string with_application_name(const std::string& dsn, const std::string& name) {
    return dsn + (dsn.find('?') == std::string::npos ? "?" : "&") + "application_name=" + name;
}

}  // namespace

// Plans made while a table is small (a fresh database) favour a sequential
// scan, and cached plans keep it as the table grows: the store's sessions
// plan with enable_seqscan off, so its lookups use their indexes from the start.
TEST_CASE("postgres: the store's sessions look rows up by index even in a table that is still empty", "[postgres]") {
    const auto table = fresh_table("it_plans");
    drop_tables(table);
    asio::io_context ioc;
    boong::PostgresEventStore store(ioc.get_executor(), test_config(table));
    store.open();
    {
        auto c = admin();
        pqxx::nontransaction tx(c);
        tx.exec("ANALYZE " + table);  // statistics that say: empty
    }
    // A stream's head, as the append function probes it.
    const std::string probe = "EXPLAIN SELECT coalesce(max(version), 0) FROM " + table + " WHERE stream_id = 'x'";
    auto plan_of = [&](pqxx::transaction_base& tx) {
        std::string plan;
        for (const auto& row : tx.exec(probe)) plan += std::string(row[0].c_str()) + "\n";
        return plan;
    };
    std::string in_session;
    auto body = [&](pqxx::transaction_base& tx) {
        in_session = plan_of(tx);
        return 0;
    };
    run(ioc, [&] { return boong::async_transact(store, std::move(body), asio::use_awaitable); });
    INFO(in_session);
    CHECK_THAT(in_session, Catch::Contains("Index"));
    CHECK_THAT(in_session, !Catch::Contains("Seq Scan"));
    // What a session with the server's defaults plans for it (the test can fail).
    auto c = admin();
    pqxx::work tx(c);
    const auto by_default = plan_of(tx);
    INFO(by_default);
    CHECK_THAT(by_default, Catch::Contains("Seq Scan"));
    tx.abort();
    require_idle(ioc);
    drop_tables(table);
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
    // The schema, versioned saga definitions, saga migrations, operator cancel, the archive, immutable
    // history, field encryption's keys, each once.
    REQUIRE(versions.size() == static_cast<std::size_t>(boong::pg::kSchemaVersion));
    for (int i = 0; i < boong::pg::kSchemaVersion; ++i) CHECK(versions[i][0].as<int>() == i + 1);
    // What the issue asks the table to hold, and the indexes that serve reads.
    const auto columns = tx.exec_params(
        "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) "
        "FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
        table);
    CHECK(columns[0][0].as<std::string>() ==
          "position bigint, stream_id text, version bigint, event_id uuid, type text, schema_version integer, "
          "payload jsonb, metadata jsonb, stored_at timestamp with time zone, transaction_id xid8");
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
    // Only the indexes reads need: saga phases live in the saga table.
    CHECK_THAT(defs, !Catch::Contains("_saga_phase_idx"));
    drop_tables(table);
}

// A released migration is never edited (a database that ran it would differ
// from one that runs the edited text): its statements are held to a digest.
// A change to the schema is a new migration; only then does this list grow.
TEST_CASE("postgres: the migrations' text is frozen", "[postgres][schema]") {
    const std::vector<std::uint64_t> frozen{14906505760644758845ULL, 15193468933668707360ULL, 380132742304159903ULL,
                                            14033921945935843317ULL, 12911231473152986713ULL,
                                            11824884832060525363ULL, 12304500151872633129ULL};
    REQUIRE(frozen.size() == static_cast<std::size_t>(boong::pg::kSchemaVersion));
    const auto names = boong::pg::names_in("public", boong::PostgresStoreConfig{});
    for (int version = 1; version <= boong::pg::kSchemaVersion; ++version) {
        std::uint64_t digest = 0xcbf29ce484222325ULL;  // FNV-1a, 64 bits
        for (const auto& statement : boong::pg::migration_statements(version, names)) {
            for (const unsigned char c : statement + ";\n") digest = (digest ^ c) * 0x100000001b3ULL;
        }
        INFO("migration " << version << " digest " << digest);
        CHECK(digest == frozen[static_cast<std::size_t>(version - 1)]);
    }
}

// The saga table's trigger is written out in each migration, not generated
// from the phase rules (that would change a released migration's text): a
// new rule needs a migration that recreates the trigger, or this fails.
TEST_CASE("postgres: the latest saga trigger fires on exactly the events of the phase rules", "[postgres][schema]") {
    const auto names = boong::pg::names_in("public", boong::PostgresStoreConfig{});
    std::string trigger, function;
    for (int version = 1; version <= boong::pg::kSchemaVersion; ++version) {
        for (const auto& statement : boong::pg::migration_statements(version, names)) {
            if (statement.starts_with("CREATE TRIGGER " + names.saga_trigger + " ")) trigger = statement;
            if (statement.starts_with("CREATE OR REPLACE FUNCTION " + names.saga_function + "(")) function = statement;
        }
    }
    const std::string in = "NEW.type IN (";
    const auto from = trigger.find(in);
    REQUIRE(from != std::string::npos);
    const auto to = trigger.find(')', from);
    REQUIRE(to != std::string::npos);
    std::set<std::string> listed;
    const std::string list = trigger.substr(from + in.size(), to - from - in.size());
    for (std::size_t at = 0; at < list.size();) {
        const auto comma = std::min(list.find(',', at), list.size());
        auto item = list.substr(at, comma - at);
        item.erase(0, item.find_first_not_of(' '));
        item.erase(item.find_last_not_of(' ') + 1);
        listed.insert(item);
        at = comma + 1;
    }
    std::set<std::string> rules;
    for (const auto& rule : boong::phase_rules) {
        const std::string quoted = "'" + std::string(rule.event) + "'";
        rules.insert(quoted);
        INFO(rule.event);
        CHECK_THAT(function, Catch::Contains(quoted));  // and the function has a branch for it
    }
    CHECK(listed == rules);
}

namespace {

// What the store creates for `config` (quoted, qualified names), dropped:
// drop_tables() only knows names short enough to need no hash.
void drop_named(const boong::pg::Names& n) {
    auto c = admin();
    pqxx::nontransaction tx(c);
    tx.exec("DROP TABLE IF EXISTS " + n.sagas + ", " + n.events + ", " + n.snapshots + ", " + n.versions + ", " +
            n.outbox + ", " + n.inbox);
    tx.exec("DROP FUNCTION IF EXISTS " + n.saga_function + "()");
    tx.exec("DROP FUNCTION IF EXISTS " + n.saga_migration_function + "()");
    tx.exec("DROP FUNCTION IF EXISTS " + n.saga_cancel_function + "()");
    tx.exec("DROP FUNCTION IF EXISTS " + n.append_function + "(jsonb, boolean)");
    tx.exec("DROP FUNCTION IF EXISTS " + n.append_known_function);
    tx.exec("DROP SEQUENCE IF EXISTS " + n.position_sequence);
}

}  // namespace

TEST_CASE("postgres: a saga table made by migration 1 is upgraded and keeps its sagas", "[postgres][schema]") {
    // Long enough that the saga table's name is shortened with a hash, and
    // the server cut the name of migration 1's CHECK on phase.
    std::string table = fresh_table("it_upgrade");
    table += "_" + std::string(62 - table.size(), 'x');
    auto config = test_config(table);
    config.snapshot_table_name = fresh_table("it_upgrade_snap");
    auto c = admin();
    const auto names = boong::pg::resolve_names(c, config);
    drop_named(names);
    {
        // As a library that knew only migration 1 left it.
        pqxx::work tx(c);
        tx.exec("CREATE TABLE " + names.versions +
                " (version integer PRIMARY KEY, description text NOT NULL, library_version text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())");
        for (const auto& statement : boong::pg::migration_statements(1, names)) tx.exec(statement);
        tx.exec("INSERT INTO " + names.versions + " (version, description, library_version) VALUES (1, 'one', '0.1')");
        tx.exec("INSERT INTO " + names.events +
                " (position, stream_id, version, event_id, type, schema_version, payload, metadata) VALUES"
                " (1, 'saga-old', 1, gen_random_uuid(), 'SagaStarted', 1, '{\"saga_type\": \"order\"}',"
                "  '{\"owner\": \"a/1\", \"lease_ms\": 60000}'),"
                " (2, 'saga-done', 1, gen_random_uuid(), 'SagaStarted', 1, '{\"saga_type\": \"order\"}', '{}'),"
                " (3, 'saga-done', 2, gen_random_uuid(), 'SagaCompleted', 1, '{}', '{}')");
        tx.exec("SELECT setval(" + names.position_sequence_literal + "::regclass, 3)");
        tx.commit();
    }
    asio::io_context ioc;
    boong::PostgresEventStore store(ioc.get_executor(), config);
    store.open();  // migrations 2 to the latest
    boong::PostgresSagaIndex index(store);
    {
        pqxx::nontransaction tx(c);
        const auto versions = tx.exec("SELECT version FROM " + names.versions + " ORDER BY version");
        REQUIRE(versions.size() == static_cast<std::size_t>(boong::pg::kSchemaVersion));
        for (int i = 1; i < boong::pg::kSchemaVersion; ++i) CHECK(versions[i][0].as<int>() == i + 1);
        // One CHECK on phase, the one migration 2 named.
        const auto checks = tx.exec("SELECT conname FROM pg_constraint WHERE contype = 'c' AND conrelid = '" +
                                    names.sagas + "'::regclass");
        REQUIRE(checks.size() == 1);
        const std::string quoted = "\"" + checks[0][0].as<std::string>() + "\"";
        CHECK(quoted == names.saga_phase_check);
    }
    auto old = run(ioc, [&] { return index.async_find("old", asio::use_awaitable); });
    REQUIRE(old);
    CHECK(old->phase == boong::SagaPhase::running);
    CHECK(old->definition_version == 1);
    CHECK(old->fingerprint.empty());
    CHECK(old->owner == "a/1");
    auto done = run(ioc, [&] { return index.async_find("done", asio::use_awaitable); });
    REQUIRE(done);
    CHECK(done->phase == boong::SagaPhase::completed);
    CHECK(done->version == 2);
    // The new trigger: an old saga can be blocked, and unblocked by a
    // claimant serving version 1.
    boong::IdGenerator ids;
    run(ioc, [&] {
        return store.async_append("saga-old", boong::ExpectedVersion::exactly(1),
                                  std::vector<boong::EventData>{make_event(ids, "SagaBlocked", {{"reason", "r"}})},
                                  asio::use_awaitable);
    });
    old = run(ioc, [&] { return index.async_find("old", asio::use_awaitable); });
    CHECK(old->phase == boong::SagaPhase::blocked);
    CHECK(old->blocked_reason == "r");
    CHECK(old->owner.empty());
    // Migration 3's trigger: SagaMigrated moves the blocked saga to the
    // definition it names; a version that is not a positive number changes nothing.
    for (const auto& to : {boong::json{{"version", "x"}}, boong::json{{"version", 0}},
                           boong::json{{"version", 2}, {"fingerprint", "00000000000000aa"}}}) {
        run(ioc, [&] {
            return store.async_append("saga-old", boong::ExpectedVersion::any(),
                                      std::vector<boong::EventData>{make_event(ids, "SagaMigrated", {{"to", to}})},
                                      asio::use_awaitable);
        });
        old = run(ioc, [&] { return index.async_find("old", asio::use_awaitable); });
        CHECK(old->definition_version == (to.at("version") == 2 ? 2 : 1));
    }
    CHECK(old->fingerprint == "00000000000000aa");
    CHECK(old->phase == boong::SagaPhase::blocked);
    // Claimed by one that serves version 2, no longer by one that serves 1.
    auto taken = run(ioc, [&] {
        return index.async_claim(boong::SagaClaim{"order", {{1, "0123456789abcdef", ""}}}, "b/1", 30s, 10,
                                 asio::use_awaitable);
    });
    CHECK(taken.empty());
    taken = run(ioc, [&] {
        return index.async_claim(boong::SagaClaim{"order", {{2, "00000000000000aa", ""}}}, "b/1", 30s, 10,
                                 asio::use_awaitable);
    });
    CHECK(taken == std::vector<std::string>{"old"});
    require_idle(ioc);
    drop_named(names);
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

namespace {

// Pages through `read` from `next` and checks what a catching-up reader needs:
// positions strictly increase and no event is seen twice. Returns the new
// `next`.
template <class Read>
std::int64_t read_on(Read&& read, std::int64_t next, std::int64_t& last_position, std::set<std::string>& seen,
                     std::size_t& out_of_order, std::size_t& duplicates) {
    for (;;) {
        auto page = read(next);
        if (page.empty()) return next;
        for (const auto& [position, id] : page) {
            if (position <= last_position) ++out_of_order;
            last_position = position;
            if (!seen.insert(id).second) ++duplicates;
        }
        next = page.back().first + 1;
    }
}

}  // namespace

TEST_CASE("postgres: a reader paging read_all during concurrent appends sees every event exactly once",
          "[postgres][gap-free]") {
    // Writers are separate stores (separate pools, as separate processes would
    // be), appending from their own threads; the reader pages read_all
    // continuously and never looks back. If an event could commit below a
    // position the reader has passed, it would be missing at the end.
    const auto table = fresh_table("it_gapfree");
    drop_tables(table);
    constexpr int kWriters = 4;
    constexpr int kAppendsPerWriter = 600;
    std::mutex written_mutex;
    std::set<std::string> written;
    std::atomic<int> writers_done{0};
    std::atomic<bool> writer_failed{false};

    {
        asio::io_context ioc;
        boong::PostgresEventStore creator(ioc.get_executor(), test_config(table));
        creator.open();
    }

    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
        writers.emplace_back([&, w] {
            try {
                asio::io_context ioc;
                auto cfg = test_config(table);
                cfg.pool_size = 3;
                cfg.group_commit_delay = std::chrono::microseconds(w * 200);  // different batch shapes per writer
                boong::PostgresEventStore store(ioc.get_executor(), cfg);
                store.open();
                boong::IdGenerator ids;
                // Several appends in flight per writer, to several streams.
                run(ioc, [&]() -> asio::awaitable<void> {
                    auto ex = co_await asio::this_coro::executor;
                    std::atomic<int> left{4};
                    for (int lane = 0; lane < 4; ++lane) {
                        asio::co_spawn(
                            ex,
                            [&, lane]() -> asio::awaitable<void> {
                                for (int i = lane; i < kAppendsPerWriter; i += 4) {
                                    std::vector<boong::EventData> events;
                                    for (int k = 0; k <= i % 3; ++k) events.push_back(make_event(ids, "Tick", {{"i", i}}));
                                    {
                                        std::lock_guard lock(written_mutex);
                                        for (const auto& e : events) written.insert(e.event_id);
                                    }
                                    const auto stream =
                                        "gap-" + std::to_string(w) + "-" + std::to_string(i % 7) + "-" + run_id();
                                    co_await store.async_append(stream, boong::ExpectedVersion::any(), events,
                                                                asio::use_awaitable);
                                }
                                --left;
                            },
                            asio::detached);
                    }
                    while (left > 0) co_await boong::test::sleep_for(5ms);
                }, 120s);
            } catch (const std::exception& e) {
                writer_failed = true;
                UNSCOPED_INFO("writer " << w << " failed: " << e.what());
            }
            ++writers_done;
        });
    }

    asio::io_context reader_context;
    auto reader_config = test_config(table);
    reader_config.pool_size = 1;
    boong::PostgresEventStore reader(reader_context.get_executor(), reader_config);
    reader.open();
    auto read_page = [&](std::int64_t from) {
        auto page = run(reader_context, [&] { return reader.async_read_all(from, 50, asio::use_awaitable); });
        std::vector<std::pair<std::int64_t, std::string>> out;
        for (auto& e : page) out.emplace_back(e.position, e.event.event_id);
        return out;
    };
    std::set<std::string> seen;
    std::int64_t next = 1, last = 0;
    std::size_t out_of_order = 0, duplicates = 0, passes = 0;
    while (writers_done < kWriters) {
        next = read_on(read_page, next, last, seen, out_of_order, duplicates);
        ++passes;
    }
    const auto seen_while_writing = seen.size();
    for (auto& t : writers) t.join();
    // The tail. read_all shows an event once every older write transaction
    // in the cluster has ended, and other tests' transactions run on the same
    // server: read on (never back) until every event is seen or 20 s pass. An
    // event committed below a position already passed would never be seen.
    const auto give_up = std::chrono::steady_clock::now() + 20s;
    for (;;) {
        next = read_on(read_page, next, last, seen, out_of_order, duplicates);
        if (seen.size() >= written.size() || std::chrono::steady_clock::now() > give_up) break;
        std::this_thread::sleep_for(20ms);
    }

    REQUIRE_FALSE(writer_failed);
    // The reader really read while the writers wrote.
    CHECK(passes > 5);
    CHECK(seen_while_writing > 0);
    UNSCOPED_INFO("reader passes while writing: " << passes << ", events seen then: " << seen_while_writing);
    CHECK(out_of_order == 0);
    CHECK(duplicates == 0);
    CHECK(seen.size() == written.size());
    std::size_t missing = 0;
    for (const auto& id : written) missing += seen.count(id) ? 0 : 1;
    CHECK(missing == 0);
    // Positions come from a sequence: holes only where an append failed, and none did here.
    CHECK(last == static_cast<std::int64_t>(written.size()));
    drop_tables(table);
}

TEST_CASE("postgres: the reader check catches what a plain sequence gets wrong (negative control)",
          "[postgres][gap-free]") {
    // Why the append lock exists: with a sequence alone, a transaction that
    // took a position first can commit last. The reader has passed it by then.
    const auto table = fresh_table("it_naive");
    auto c1 = admin();
    auto c2 = admin();
    auto reader = admin();
    {
        pqxx::nontransaction tx(c1);
        tx.exec("DROP TABLE IF EXISTS " + table);
        tx.exec("CREATE TABLE " + table + " (position bigserial PRIMARY KEY, id text NOT NULL)");
    }
    pqxx::work slow(c1);
    slow.exec("INSERT INTO " + table + " (id) VALUES ('first')");  // takes position 1, does not commit yet
    {
        pqxx::work fast(c2);
        fast.exec("INSERT INTO " + table + " (id) VALUES ('second')");  // position 2
        fast.commit();
    }
    auto read_page = [&](std::int64_t from) {
        pqxx::nontransaction tx(reader);
        std::vector<std::pair<std::int64_t, std::string>> out;
        for (const auto& row : tx.exec_params("SELECT position, id FROM " + table +
                                                  " WHERE position >= $1 ORDER BY position LIMIT 50",
                                              from)) {
            out.emplace_back(row[0].as<std::int64_t>(), row[1].as<std::string>());
        }
        return out;
    };
    std::set<std::string> seen;
    std::int64_t last = 0;
    std::size_t out_of_order = 0, duplicates = 0;
    auto next = read_on(read_page, 1, last, seen, out_of_order, duplicates);  // sees 'second' at 2
    slow.commit();                                                            // 'first' appears at 1
    read_on(read_page, next, last, seen, out_of_order, duplicates);
    CHECK(seen.count("second") == 1);
    CHECK(seen.count("first") == 0);  // skipped for good: this is the bug the store must not have
    pqxx::nontransaction tx(c2);
    tx.exec("DROP TABLE " + table);
}

TEST_CASE("postgres: read_all holds back a later commit until an earlier append has committed",
          "[postgres][gap-free]") {
    // The interleaving of the negative control, through the store: append a
    // takes its position first, then stalls inside its transaction (its
    // insert waits on an uncommitted row holding its event id); append b,
    // from another store, takes the next position and commits. b is stored
    // (read_stream sees it), yet read_all must not show it before a: a
    // reader that had passed b would never see a.
    const auto table = fresh_table("it_order");
    drop_tables(table);
    const auto app = "boong_order_" + run_id();
    auto cfg = test_config(table);
    cfg.connection = with_application_name(test_dsn(), app);
    cfg.group_commit_delay = std::chrono::microseconds(0);
    asio::io_context ioc;
    boong::PostgresEventStore first(ioc.get_executor(), cfg);
    boong::PostgresEventStore second(ioc.get_executor(), cfg);
    first.open();
    second.open();
    boong::IdGenerator ids;
    run(ioc, [&] {
        return first.async_append("before", boong::ExpectedVersion::any(), {make_event(ids, "Before")},
                                  asio::use_awaitable);
    });
    auto read_all = [&] {
        std::optional<std::vector<boong::RecordedEvent>> page;
        first.async_read_all(1, 100, [&](std::exception_ptr e, std::vector<boong::RecordedEvent> events) {
            CHECK_FALSE(e);
            page = std::move(events);
        });
        pump(ioc, [&] { return page.has_value(); });
        std::vector<std::string> streams;
        for (const auto& e : *page) streams.push_back(e.stream_id);
        return streams;
    };

    const auto stalled = make_event(ids, "A");
    auto blocker = admin();
    std::optional<pqxx::work> hold(std::in_place, blocker);
    hold->exec_params("INSERT INTO " + table +
                          " (position, stream_id, version, event_id, type, schema_version, payload, metadata)"
                          " VALUES (1000000000, 'blocker', 1, $1::uuid, 'Blocker', 1, '{}', '{}')",
                      stalled.event_id);
    std::optional<boong::AppendResult> a, b;
    first.async_append("a", boong::ExpectedVersion::any(), {stalled}, [&](std::exception_ptr e, boong::AppendResult r) {
        CHECK_FALSE(e);
        a = r;
    });
    wait_until_blocked(app);
    second.async_append("b", boong::ExpectedVersion::any(), {make_event(ids, "B")},
                        [&](std::exception_ptr e, boong::AppendResult r) {
                            CHECK_FALSE(e);
                            b = r;
                        });
    pump(ioc, [&] { return b.has_value(); });
    CHECK_FALSE(a.has_value());
    CHECK(b->first_position == 3);  // a holds position 2
    std::optional<std::vector<boong::RecordedEvent>> b_stream;
    second.async_read_stream("b", 1, 10, [&](std::exception_ptr e, std::vector<boong::RecordedEvent> events) {
        CHECK_FALSE(e);
        b_stream = std::move(events);
    });
    pump(ioc, [&] { return b_stream.has_value(); });
    CHECK(b_stream->size() == 1);  // b is committed...
    // ...but not shown ahead of a. ("before" itself may be held back a
    // moment by another process's open transaction: tests run in parallel.)
    auto held = read_all();
    const auto held_deadline = std::chrono::steady_clock::now() + 30s;
    while (held.empty() && std::chrono::steady_clock::now() < held_deadline) {
        std::this_thread::sleep_for(20ms);
        held = read_all();
    }
    CHECK(held == std::vector<std::string>{"before"});
    hold->abort();
    hold.reset();
    pump(ioc, [&] { return a.has_value(); });
    CHECK(a->first_position == 2);
    // read_all shows what committed below the oldest running transaction of
    // the whole server: another process's open transaction (tests run in
    // parallel) may hold b back a moment longer, never show it ahead of a.
    const std::vector<std::string> all{"before", "a", "b"};
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    auto shown = read_all();
    while (shown.size() < all.size() && std::chrono::steady_clock::now() < deadline) {
        CHECK(shown == std::vector<std::string>(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(shown.size())));
        std::this_thread::sleep_for(20ms);
        shown = read_all();
    }
    CHECK(shown == all);
    require_idle(ioc);
    drop_tables(table);
}

TEST_CASE("postgres: group commit writes concurrent appends together; a refusal fails only its own",
          "[postgres][group-commit]") {
    asio::io_context ioc;
    auto cfg = test_config();
    // Long enough that every append below is queued before the second batch goes.
    cfg.group_commit_delay = std::chrono::milliseconds(300);
    boong::PostgresEventStore store(ioc.get_executor(), cfg);
    store.open();
    boong::IdGenerator ids;
    const auto tag = run_id() + "-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    const auto existing = "gc-existing-" + tag;
    const auto stored = make_event(ids, "Stored");
    run(ioc, [&] { return store.async_append(existing, boong::ExpectedVersion::no_stream(), {stored}, asio::use_awaitable); });

    const auto before = store.stats();
    constexpr int kGood = 20;
    std::vector<std::optional<boong::AppendResult>> good(kGood);
    std::exception_ptr conflict, duplicate;
    int completed = 0;
    for (int i = 0; i < kGood; ++i) {
        store.async_append("gc-" + std::to_string(i) + "-" + tag, boong::ExpectedVersion::no_stream(),
                           {make_event(ids, "Good"), make_event(ids, "Good")},
                           [&, i](std::exception_ptr e, boong::AppendResult r) {
                               CHECK_FALSE(e);
                               if (!e) good[static_cast<std::size_t>(i)] = r;
                               ++completed;
                           });
        if (i == kGood / 2) {
            // In the middle of the batch: a stale expected version, and an id stored elsewhere.
            store.async_append(existing, boong::ExpectedVersion::exactly(5), {make_event(ids, "Stale")},
                               [&](std::exception_ptr e, boong::AppendResult) {
                                   conflict = e;
                                   ++completed;
                               });
            store.async_append("gc-dup-" + tag, boong::ExpectedVersion::any(), {make_event(ids, "New"), stored},
                               [&](std::exception_ptr e, boong::AppendResult) {
                                   duplicate = e;
                                   ++completed;
                               });
        }
    }
    pump(ioc, [&] { return completed == kGood + 2; });
    const auto after = store.stats();
    // The first append goes at once (no batch was in flight); the 21 after
    // it (42 events), refusals among them, share transactions: a batch goes
    // once it holds 32 events (or when the delay is up), so two at most.
    CHECK(after.append_transactions - before.append_transactions <= 3);
    CHECK(after.appends - before.appends == kGood);
    CHECK(after.conflicts - before.conflicts == 1);
    CHECK(after.duplicates - before.duplicates == 1);
    std::set<std::int64_t> positions;
    for (const auto& r : good) {
        REQUIRE(r.has_value());
        CHECK(r->next_expected_version == 2);
        CHECK(r->last_position == r->first_position + 1);
        positions.insert(r->first_position);
    }
    CHECK(positions.size() == kGood);
    try {
        std::rethrow_exception(conflict);
    } catch (const boong::ConcurrencyConflict& c) {
        CHECK(c.expected() == 5);
        CHECK(c.actual() == 1);
    }
    CHECK(code_of([&] { std::rethrow_exception(duplicate); }) == boong::errc::duplicate_event);
    // Nothing of the refused appends was written.
    auto dup_stream = run(ioc, [&] { return store.async_read_stream("gc-dup-" + tag, 1, 10, asio::use_awaitable); });
    CHECK(dup_stream.empty());
    auto existing_stream = run(ioc, [&] { return store.async_read_stream(existing, 1, 10, asio::use_awaitable); });
    CHECK(existing_stream.size() == 1);
    require_idle(ioc);
}

// Schema version 3 checks event ids only when an append does not expect its
// stream's version; otherwise the unique index does, at the insert. Here no
// append has a stale expectation, so the batch is first run unchecked, fails
// on the stored id, and is run again carefully: the duplicate and the replay
// are still told apart, and the others written once.
TEST_CASE("postgres: ids left to the unique index: a duplicate and a replay in a batch are still answered",
          "[postgres][group-commit]") {
    asio::io_context ioc;
    auto cfg = test_config();
    cfg.group_commit_delay = std::chrono::milliseconds(300);
    boong::PostgresEventStore store(ioc.get_executor(), cfg);
    store.open();
    boong::IdGenerator ids;
    const auto tag = run_id() + "-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    const auto replayed = "ix-replayed-" + tag;
    const std::vector<boong::EventData> original{make_event(ids, "First"), make_event(ids, "Second")};
    const auto first = run(ioc, [&] {
        return store.async_append(replayed, boong::ExpectedVersion::any(), original, asio::use_awaitable);
    });
    // Not one of `original`: an id in two appends keeps them out of one batch.
    const auto elsewhere = make_event(ids, "Elsewhere");
    run(ioc, [&] {
        return store.async_append("ix-elsewhere-" + tag, boong::ExpectedVersion::no_stream(), {elsewhere},
                                  asio::use_awaitable);
    });

    const auto before = store.stats();
    constexpr int kGood = 10;
    std::vector<std::optional<boong::AppendResult>> good(kGood);
    std::optional<boong::AppendResult> replay;
    std::exception_ptr duplicate, replay_error;
    int completed = 0;
    for (int i = 0; i < kGood; ++i) {
        store.async_append("ix-" + std::to_string(i) + "-" + tag, boong::ExpectedVersion::no_stream(),
                           {make_event(ids, "Good")}, [&, i](std::exception_ptr e, boong::AppendResult r) {
                               CHECK_FALSE(e);
                               if (!e) good[static_cast<std::size_t>(i)] = r;
                               ++completed;
                           });
        if (i == kGood / 2) {
            // Both expect "any": nothing looks wrong until the insert.
            store.async_append("ix-dup-" + tag, boong::ExpectedVersion::any(), {make_event(ids, "New"), elsewhere},
                               [&](std::exception_ptr e, boong::AppendResult) {
                                   duplicate = e;
                                   ++completed;
                               });
            store.async_append(replayed, boong::ExpectedVersion::any(), original,
                               [&](std::exception_ptr e, boong::AppendResult r) {
                                   replay_error = e;
                                   if (!e) replay = r;
                                   ++completed;
                               });
        }
    }
    pump(ioc, [&] { return completed == kGood + 2; });
    const auto after = store.stats();
    // The first append goes at once, the others as one batch: run unchecked,
    // refused by the unique index, run again carefully; never split.
    CHECK(after.append_transactions - before.append_transactions <= 2);
    CHECK(after.batch_splits == before.batch_splits);
    CHECK(after.duplicates - before.duplicates == 1);
    CHECK(after.replays - before.replays == 1);
    CHECK(after.events_written - before.events_written == kGood);
    CHECK(code_of([&] { std::rethrow_exception(duplicate); }) == boong::errc::duplicate_event);
    REQUIRE_FALSE(replay_error);
    REQUIRE(replay.has_value());
    CHECK(replay->next_expected_version == first.next_expected_version);
    CHECK(replay->first_position == first.first_position);
    CHECK(replay->last_position == first.last_position);
    for (const auto& r : good) {
        REQUIRE(r.has_value());
        CHECK(r->next_expected_version == 1);
    }
    auto dup_stream = run(ioc, [&] { return store.async_read_stream("ix-dup-" + tag, 1, 10, asio::use_awaitable); });
    CHECK(dup_stream.empty());
    auto replayed_stream = run(ioc, [&] { return store.async_read_stream(replayed, 1, 10, asio::use_awaitable); });
    CHECK(replayed_stream.size() == 2);
    require_idle(ioc);
}

// A store that appended to a stream skips the version probe for its next
// append there (it knows the stream is at least at that version). Another
// writer in between is still caught: by the unique index, then the careful run.
TEST_CASE("postgres: a stream another store wrote to since is a conflict, even when its head was known",
          "[postgres][group-commit]") {
    asio::io_context ioc;
    boong::PostgresEventStore mine(ioc.get_executor(), test_config());
    boong::PostgresEventStore theirs(ioc.get_executor(), test_config());
    mine.open();
    theirs.open();
    boong::IdGenerator ids;
    const auto stream = "heads-" + run_id() + "-" +
                        std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    auto append = [&](boong::PostgresEventStore& store, boong::ExpectedVersion expected) {
        return run(ioc, [&] {
            return store.async_append(stream, expected, {make_event(ids, "E")}, asio::use_awaitable);
        });
    };
    CHECK(append(mine, boong::ExpectedVersion::no_stream()).next_expected_version == 1);
    CHECK(append(mine, boong::ExpectedVersion::exactly(1)).next_expected_version == 2);  // head known: no probe
    CHECK(append(theirs, boong::ExpectedVersion::exactly(2)).next_expected_version == 3);
    try {
        append(mine, boong::ExpectedVersion::exactly(2));  // mine still believes 2
        FAIL("a stale expectation was written");
    } catch (const boong::ConcurrencyConflict& c) {
        CHECK(c.expected() == 2);
        CHECK(c.actual() == 3);
    }
    auto events = run(ioc, [&] { return mine.async_read_stream(stream, 1, 10, asio::use_awaitable); });
    CHECK(events.size() == 3);
    require_idle(ioc);
}

// Appends that all expect the versions this store left their streams at go
// through the fast form of the append function: no checks before the insert,
// positions from the client's offsets, one number back. Its results must be
// exactly what was stored, and a stale head or a taken id in the batch must
// still be answered as a conflict or a duplicate, failing only that append.
TEST_CASE("postgres: a batch of appends at known versions: exact results; a stale head or a taken id fails only its own",
          "[postgres][group-commit]") {
    asio::io_context ioc;
    auto cfg = test_config();
    cfg.group_commit_delay = std::chrono::milliseconds(300);
    boong::PostgresEventStore mine(ioc.get_executor(), cfg);
    boong::PostgresEventStore theirs(ioc.get_executor(), test_config());
    mine.open();
    theirs.open();
    boong::IdGenerator ids;
    const auto tag = run_id() + "-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    constexpr int kStreams = 8;
    auto stream = [&](int i) { return "known-" + std::to_string(i) + "-" + tag; };
    for (int i = 0; i < kStreams; ++i) {
        run(ioc, [&] {
            return mine.async_append(stream(i), boong::ExpectedVersion::no_stream(), {make_event(ids, "First")},
                                     asio::use_awaitable);
        });
    }
    const auto taken = make_event(ids, "Taken");
    run(ioc, [&] {
        return theirs.async_append("known-elsewhere-" + tag, boong::ExpectedVersion::no_stream(), {taken},
                                   asio::use_awaitable);
    });

    // Appends batches[i] to stream(first + i), all at once, each expecting 1.
    auto round = [&](int first, const std::vector<std::vector<boong::EventData>>& batches) {
        std::vector<std::pair<std::exception_ptr, std::optional<boong::AppendResult>>> out(batches.size());
        int completed = 0;
        for (std::size_t i = 0; i < batches.size(); ++i) {
            mine.async_append(stream(first + static_cast<int>(i)), boong::ExpectedVersion::exactly(1), batches[i],
                              [&, i](std::exception_ptr e, boong::AppendResult r) {
                                  out[i].first = e;
                                  if (!e) out[i].second = r;
                                  ++completed;
                              });
        }
        pump(ioc, [&] { return completed == static_cast<int>(batches.size()); });
        return out;
    };
    // Round 1, on the first half: every head right; appends of 1, 2, 3...
    // events, together.
    std::vector<std::vector<boong::EventData>> first(kStreams / 2);
    for (std::size_t i = 0; i < first.size(); ++i) {
        for (std::size_t k = 0; k <= i; ++k) first[i].push_back(make_event(ids, "Known", {{"k", k}}));
    }
    const auto before = mine.stats();
    const auto results = round(0, first);
    const auto after = mine.stats();
    // The first goes at once (nothing in flight to wait for), the rest together.
    CHECK(after.append_transactions - before.append_transactions <= 2);
    CHECK(after.known_version_transactions - before.known_version_transactions ==
          after.append_transactions - before.append_transactions);
    for (std::size_t i = 0; i < first.size(); ++i) {
        REQUIRE_FALSE(results[i].first);
        REQUIRE(results[i].second.has_value());
        const auto& r = *results[i].second;
        const auto n = static_cast<std::int64_t>(first[i].size());
        CHECK(r.next_expected_version == 1 + n);
        CHECK(r.last_position - r.first_position == n - 1);
        // What the result says is what is stored, event by event.
        const auto stored = run(ioc, [&] {
            return mine.async_read_stream(stream(static_cast<int>(i)), 2, 100, asio::use_awaitable);
        });
        REQUIRE(stored.size() == first[i].size());
        for (std::size_t k = 0; k < stored.size(); ++k) {
            CHECK(stored[k].event.event_id == first[i][k].event_id);
            CHECK(stored[k].version == 2 + static_cast<std::int64_t>(k));
            CHECK(stored[k].position == r.first_position + static_cast<std::int64_t>(k));
        }
        // Appends of one batch hold consecutive positions, in the batch's order.
        if (i > 1) CHECK(r.first_position == results[i - 1].second->last_position + 1);
    }

    // Round 2, on the other half: one stream was written by another store
    // since (mine still believes 1), one append carries an id stored elsewhere.
    constexpr int kStale = 1, kTaken = 2;
    run(ioc, [&] {
        return theirs.async_append(stream(kStreams / 2 + kStale), boong::ExpectedVersion::exactly(1),
                                   {make_event(ids, "Theirs")}, asio::use_awaitable);
    });
    std::vector<std::vector<boong::EventData>> second(kStreams / 2);
    for (auto& events : second) events = {make_event(ids, "Again")};
    second[kTaken].push_back(taken);
    const auto before2 = mine.stats();
    const auto results2 = round(kStreams / 2, second);
    const auto after2 = mine.stats();
    // The batch with the two bad appends was refused, then run carefully;
    // only the first append may have gone ahead alone (nothing was in flight).
    CHECK(after2.known_version_transactions - before2.known_version_transactions <= 1);
    CHECK(after2.batch_splits == before2.batch_splits);
    CHECK(after2.conflicts - before2.conflicts == 1);
    CHECK(after2.duplicates - before2.duplicates == 1);
    for (std::size_t i = 0; i < second.size(); ++i) {
        const auto& [error, result] = results2[i];
        if (i == kStale) {
            REQUIRE(error);
            try {
                std::rethrow_exception(error);
            } catch (const boong::ConcurrencyConflict& c) {
                CHECK(c.actual() == 2);
            }
        } else if (i == kTaken) {
            REQUIRE(error);
            CHECK(code_of([&] { std::rethrow_exception(error); }) == boong::errc::duplicate_event);
            const auto stored = run(ioc, [&] {
                return mine.async_read_stream(stream(kStreams / 2 + kTaken), 1, 10, asio::use_awaitable);
            });
            CHECK(stored.size() == 1);  // nothing of the refused append
        } else {
            REQUIRE_FALSE(error);
            REQUIRE(result.has_value());
            CHECK(result->next_expected_version == 2);
        }
    }
    require_idle(ioc);
}

TEST_CASE("postgres: under load, appends share transactions and each stream keeps the order appends were made",
          "[postgres][group-commit]") {
    asio::io_context ioc;
    auto cfg = test_config();
    cfg.group_commit_delay = std::chrono::milliseconds(2);
    boong::PostgresEventStore store(ioc.get_executor(), cfg);
    store.open();
    boong::IdGenerator ids;
    const auto tag = run_id() + "-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    const auto before = store.stats();
    constexpr int kAppends = 300;
    int completed = 0, failed = 0;
    for (int i = 0; i < kAppends; ++i) {
        // Ten streams, thirty appends each, all in flight at once, with no
        // version check: they must land in the order they were made.
        store.async_append("load-" + std::to_string(i % 10) + "-" + tag, boong::ExpectedVersion::any(),
                           {make_event(ids, "Seq", {{"i", i}})}, [&](std::exception_ptr e, boong::AppendResult) {
                               failed += e ? 1 : 0;
                               ++completed;
                           });
    }
    pump(ioc, [&] { return completed == kAppends; });
    CHECK(failed == 0);
    const auto after = store.stats();
    const auto transactions = after.append_transactions - before.append_transactions;
    CHECK(after.appends - before.appends == kAppends);
    // Two appends per stream per transaction at the most (a stream waits for
    // its previous batch), so 300 appends over 10 streams need at least 30;
    // a commit per append would be 300.
    CHECK(transactions < kAppends / 3);
    for (int s = 0; s < 10; ++s) {
        auto events = run(ioc, [&] {
            return store.async_read_stream("load-" + std::to_string(s) + "-" + tag, 1, 100, asio::use_awaitable);
        });
        REQUIRE(events.size() == kAppends / 10);
        for (std::size_t k = 0; k < events.size(); ++k) {
            CHECK(events[k].event.payload.at("i") == static_cast<int>(k) * 10 + s);
        }
    }
    require_idle(ioc);
}

TEST_CASE("postgres: dropped connections: idle ones are replaced, a running operation fails clearly, a retry is safe",
          "[postgres][reconnect]") {
    const auto table = fresh_table("it_drop");
    drop_tables(table);
    const auto app = "boong_drop_" + run_id();
    asio::io_context ioc;
    auto cfg = test_config(table);
    cfg.connection = with_application_name(test_dsn(), app);
    cfg.pool_size = 2;
    cfg.group_commit_delay = std::chrono::microseconds(0);
    boong::PostgresEventStore store(ioc.get_executor(), cfg);
    store.open();
    boong::IdGenerator ids;
    auto killer = admin();
    auto terminate_all = [&] {
        pqxx::nontransaction tx(killer);
        const auto r = tx.exec_params(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", app);
        return r[0][0].as<int>();
    };
    // pg_terminate_backend only signals: wait until the backends have exited
    // (and so closed their sockets).
    auto wait_until_gone = [&] {
        for (int i = 0; i < 500; ++i) {
            pqxx::nontransaction tx(killer);
            const auto r = tx.exec_params("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app);
            if (r[0][0].as<int>() == 0) return;
            std::this_thread::sleep_for(10ms);
        }
        FAIL("terminated backends did not exit");
    };

    std::vector<boong::EventData> batch{make_event(ids, "A"), make_event(ids, "B")};
    auto first = run(ioc, [&] {
        return store.async_append("drop", boong::ExpectedVersion::no_stream(), batch, asio::use_awaitable);
    });

    // 1. Idle connections killed: the next operations reconnect and succeed.
    CHECK(terminate_all() == 2);
    wait_until_gone();
    const auto before = store.stats();
    auto events = run(ioc, [&] { return store.async_read_stream("drop", 1, 10, asio::use_awaitable); });
    CHECK(events.size() == 2);
    // The retry of an append whose reply was lost returns the original result.
    auto again = run(ioc, [&] {
        return store.async_append("drop", boong::ExpectedVersion::no_stream(), batch, asio::use_awaitable);
    });
    CHECK(again.first_position == first.first_position);
    CHECK(again.next_expected_version == 2);
    const auto after = store.stats();
    CHECK(after.connections_lost > before.connections_lost);
    CHECK(after.connects > before.connects);

    // 2. A connection killed under a running append: that append fails with
    // store_unavailable naming the server; retried, it is written once.
    auto locker = admin();
    std::optional<pqxx::work> lock(std::in_place, locker);
    lock->exec("LOCK TABLE " + table + " IN EXCLUSIVE MODE");
    std::vector<boong::EventData> more{make_event(ids, "C")};
    std::exception_ptr failure;
    bool done = false;
    store.async_append("drop", boong::ExpectedVersion::exactly(2), more, [&](std::exception_ptr e, boong::AppendResult) {
        failure = e;
        done = true;
    });
    wait_until_blocked(app);
    {
        // Only the backend running the append (the other one is idle).
        pqxx::nontransaction tx(killer);
        const auto r = tx.exec_params(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1 AND wait_event_type = 'Lock'",
            app);
        CHECK(r[0][0].as<int>() == 1);
    }
    pump(ioc, [&] { return done; });
    lock->abort();
    lock.reset();
    std::string message;
    boong::error_code code;
    try {
        std::rethrow_exception(failure);
    } catch (const boong::Error& e) {
        message = e.what();
        code = e.code();
    }
    CHECK(code == boong::errc::store_unavailable);
    CHECK_THAT(message, Catch::Contains("127.0.0.1:") && Catch::Contains("safe to retry"));
    auto retried = run(ioc, [&] {
        return store.async_append("drop", boong::ExpectedVersion::exactly(2), more, asio::use_awaitable);
    });
    CHECK(retried.next_expected_version == 3);
    auto retried_again = run(ioc, [&] {
        return store.async_append("drop", boong::ExpectedVersion::exactly(2), more, asio::use_awaitable);
    });
    CHECK(retried_again.first_position == retried.first_position);
    events = run(ioc, [&] { return store.async_read_stream("drop", 1, 10, asio::use_awaitable); });
    REQUIRE(events.size() == 3);
    CHECK(events[2].event.event_id == more[0].event_id);
    require_idle(ioc);
    drop_tables(table);
}

TEST_CASE("postgres: cancelling a queued operation aborts it and leaves the pool healthy", "[postgres][cancel]") {
    const auto table = fresh_table("it_cancel");
    drop_tables(table);
    const auto app = "boong_cancel_" + run_id();
    asio::io_context ioc;
    auto cfg = test_config(table);
    cfg.connection = with_application_name(test_dsn(), app);
    cfg.pool_size = 1;  // one worker: everything after the stuck append waits in a queue
    cfg.group_commit_delay = std::chrono::microseconds(0);
    boong::PostgresEventStore store(ioc.get_executor(), cfg);
    store.open();
    boong::IdGenerator ids;

    auto locker = admin();
    std::optional<pqxx::work> lock(std::in_place, locker);
    lock->exec("LOCK TABLE " + table + " IN EXCLUSIVE MODE");

    // A: running (stuck behind the lock). Cancelling it changes nothing.
    asio::cancellation_signal cancel_a, cancel_b, cancel_c;
    std::optional<std::exception_ptr> a, b, c;
    store.async_append("running", boong::ExpectedVersion::any(), {make_event(ids, "A")},
                       asio::bind_cancellation_slot(cancel_a.slot(), [&](std::exception_ptr e, boong::AppendResult) {
                           a = e;
                       }));
    wait_until_blocked(app);
    // B: a read queued behind it. C: an append waiting for a batch slot.
    store.async_read_stream("running", 1, 10,
                            asio::bind_cancellation_slot(cancel_b.slot(),
                                                         [&](std::exception_ptr e, std::vector<boong::RecordedEvent>) {
                                                             b = e;
                                                         }));
    store.async_append("queued", boong::ExpectedVersion::any(), {make_event(ids, "C")},
                       asio::bind_cancellation_slot(cancel_c.slot(), [&](std::exception_ptr e, boong::AppendResult) {
                           c = e;
                       }));
    ioc.restart();
    ioc.poll();
    cancel_b.emit(asio::cancellation_type::terminal);
    cancel_c.emit(asio::cancellation_type::terminal);
    cancel_a.emit(asio::cancellation_type::terminal);
    pump(ioc, [&] { return b && c; }, 5s);
    CHECK_FALSE(a.has_value());  // still running
    CHECK(code_of([&] { std::rethrow_exception(*b); }) == asio::error::operation_aborted);
    CHECK(code_of([&] { std::rethrow_exception(*c); }) == asio::error::operation_aborted);

    lock->commit();
    lock.reset();
    pump(ioc, [&] { return a.has_value(); });
    CHECK_FALSE(*a);  // a started operation completes normally
    // The one connection is fine, and nothing of the cancelled append exists.
    auto running = run(ioc, [&] { return store.async_read_stream("running", 1, 10, asio::use_awaitable); });
    CHECK(running.size() == 1);
    auto queued = run(ioc, [&] { return store.async_read_stream("queued", 1, 10, asio::use_awaitable); });
    CHECK(queued.empty());
    CHECK(store.stats().aborted == 2);
    // Coroutines cancelled while waiting: the same, through use_awaitable.
    require_idle(ioc);
    drop_tables(table);
}

TEST_CASE("postgres: destroying the store completes what is queued with operation_aborted", "[postgres][cancel]") {
    const auto table = fresh_table("it_destroy");
    drop_tables(table);
    const auto app = "boong_destroy_" + run_id();
    asio::io_context ioc;
    auto cfg = test_config(table);
    cfg.connection = with_application_name(test_dsn(), app);
    cfg.pool_size = 1;
    cfg.group_commit_delay = std::chrono::microseconds(0);
    cfg.command_timeout = 3s;
    boong::IdGenerator ids;
    std::optional<std::exception_ptr> running, queued;
    auto locker = admin();
    std::optional<pqxx::work> lock(std::in_place, locker);
    {
        boong::PostgresEventStore store(ioc.get_executor(), cfg);
        store.open();
        lock->exec("LOCK TABLE " + table + " IN EXCLUSIVE MODE");
        store.async_append("x", boong::ExpectedVersion::any(), {make_event(ids, "A")},
                           [&](std::exception_ptr e, boong::AppendResult) { running = e; });
        wait_until_blocked(app);
        store.async_read_all(1, 10, [&](std::exception_ptr e, std::vector<boong::RecordedEvent>) { queued = e; });
        // The destructor waits for the running append, which the command
        // timeout ends (the table stays locked).
    }
    lock->abort();
    lock.reset();
    pump(ioc, [&] { return running && queued; });
    CHECK(code_of([&] { std::rethrow_exception(*queued); }) == asio::error::operation_aborted);
    CHECK(code_of([&] { std::rethrow_exception(*running); }) == boong::errc::store_unavailable);
    require_idle(ioc);
    drop_tables(table);
}

TEST_CASE("postgres: the saga table follows saga streams, even ones written by hand", "[postgres][operators]") {
    const auto table = fresh_table("it_sagas");
    drop_tables(table);
    asio::io_context ioc;
    boong::PostgresEventStore store(ioc.get_executor(), test_config(table));
    store.open();
    boong::IdGenerator ids;
    auto append = [&](const std::string& stream, std::vector<boong::EventData> events) {
        run(ioc, [&] { return store.async_append(stream, boong::ExpectedVersion::any(), events, asio::use_awaitable); });
    };
    append("saga-done", {make_event(ids, "SagaStarted"), make_event(ids, "StepCompleted"),
                         make_event(ids, "SagaCompleted")});
    append("saga-busy", {make_event(ids, "SagaStarted"), make_event(ids, "StepStarted")});
    append("saga-back", {make_event(ids, "SagaStarted"), make_event(ids, "CompensationStarted"),
                         make_event(ids, "SagaFailed"), make_event(ids, "SagaResumed", {{"phase", "compensating"}})});
    append("order-1", {make_event(ids, "OrderCreated")});

    auto c = admin();
    pqxx::work tx(c);
    std::map<std::string, std::string> phases;
    for (const auto& row : tx.exec("SELECT saga_id, phase FROM " + table + "_sagas")) {
        phases[row[0].as<std::string>()] = row[1].as<std::string>();
    }
    CHECK(phases == std::map<std::string, std::string>{{"back", "compensating"}, {"busy", "running"}, {"done", "completed"}});
    // The question operators ask most: what is not finished?
    const auto open = tx.exec("SELECT saga_id FROM " + table + "_sagas WHERE phase IN ('running', 'compensating') ORDER BY 1");
    REQUIRE(open.size() == 2);
    // Orchestrators look for in-flight sagas of a type through a partial index.
    tx.exec("SET LOCAL enable_seqscan = off");
    std::string plan;
    for (const auto& row : tx.exec("EXPLAIN SELECT * FROM " + table +
                                   "_sagas WHERE saga_type = 'x' AND phase IN ('running', 'compensating')")) {
        plan += row[0].as<std::string>() + "\n";
    }
    CHECK_THAT(plan, Catch::Contains(table + "_sagas_claim_idx"));
    // Unreadable values in hand-written events are left out, never fail the append.
    append("saga-odd", {make_event(ids, "SagaStarted", {{"deadline", "tomorrow"}}),
                        make_event(ids, "SagaResumed", {{"phase", "sideways"}})});
    const auto odd = tx.exec("SELECT saga_type, phase, deadline FROM " + table + "_sagas WHERE saga_id = 'odd'");
    REQUIRE(odd.size() == 1);
    CHECK(odd[0][0].as<std::string>().empty());
    CHECK(odd[0][1].as<std::string>() == "running");
    CHECK(odd[0][2].is_null());
    tx.abort();
    drop_tables(table);
}

TEST_CASE("postgres: stored events keep their metadata, times and unusual payloads", "[postgres]") {
    asio::io_context ioc;
    boong::PostgresEventStore store(ioc.get_executor(), test_config());
    store.open();
    boong::IdGenerator ids;
    const auto stream = "shapes-" + run_id() + "-" +
                        std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    auto e = make_event(ids, "Shapes",
                        {{"big", 9007199254740993LL},
                         {"neg", -12},
                         {"float", 0.1},
                         {"text", "quote \" backslash \\ newline \n tab \t emoji 😀"},
                         {"nested", {{"a", boong::json::array({1, 2, 3})}, {"empty", boong::json::object()}}},
                         {"null", nullptr}});
    e.metadata.extra = {{"tenant", "acme"}, {"trace", {{"id", "t-1"}}}};
    e.schema_version = 3;
    auto scalar = make_event(ids, "Scalar", "just a string");
    const auto before = boong::Clock::now();
    run(ioc, [&] { return store.async_append(stream, boong::ExpectedVersion::no_stream(), {e, scalar}, asio::use_awaitable); });
    auto events = run(ioc, [&] { return store.async_read_stream(stream, 1, 10, asio::use_awaitable); });
    REQUIRE(events.size() == 2);
    CHECK(events[0].event.payload == e.payload);
    CHECK(events[0].event.metadata.extra == e.metadata.extra);
    CHECK(events[0].event.schema_version == 3);
    CHECK(events[1].event.payload == "just a string");
    CHECK(events[0].stored_at >= before - 5s);
    CHECK(events[0].stored_at <= boong::Clock::now() + 5s);
    CHECK(events[1].stored_at >= events[0].stored_at);
}

TEST_CASE("postgres: read-ahead serves exactly what read_all would, and nothing stale at the head",
          "[postgres][read-ahead]") {
    const auto table = fresh_table("it_ahead");
    drop_tables(table);
    asio::io_context ioc;
    boong::PostgresEventStore store(ioc.get_executor(), test_config(table));
    store.open();
    boong::IdGenerator ids;
    for (int batch = 0; batch < 10; ++batch) {
        std::vector<boong::EventData> events;
        for (int i = 0; i < 10; ++i) events.push_back(make_event(ids, "Tick", {{"n", batch * 10 + i}}));
        run(ioc, [&] {
            return store.async_append("ahead-" + std::to_string(batch % 3), boong::ExpectedVersion::any(), events,
                                      asio::use_awaitable);
        });
    }
    auto page_through = [&](boong::PostgresEventStore& s, std::int64_t from, std::size_t page) {
        std::vector<boong::RecordedEvent> all;
        for (;;) {
            auto got = run(ioc, [&] { return s.async_read_all(from, page, asio::use_awaitable); });
            if (got.empty()) return all;
            from = got.back().position + 1;
            for (auto& e : got) all.push_back(std::move(e));
        }
    };
    // read_all shows an event once every older write transaction in the
    // cluster has ended, and other tests run on the same server: wait until a
    // store that never reads ahead sees all 100, or paging stops early.
    {
        boong::PostgresEventStore fresh(ioc.get_executor(), test_config(table));
        fresh.open();
        const auto give_up = std::chrono::steady_clock::now() + 20s;
        while (run(ioc, [&] { return fresh.async_read_all(100, 1, asio::use_awaitable); }).empty()) {
            REQUIRE(std::chrono::steady_clock::now() < give_up);
            std::this_thread::sleep_for(20ms);
        }
    }
    const auto before = store.stats().read_ahead_pages;
    const auto read = page_through(store, 1, 7);
    CHECK(store.stats().read_ahead_pages > before);  // pages did come from read-ahead
    REQUIRE(read.size() == 100);
    // Exactly what a store that never read ahead returns, page by page.
    {
        boong::PostgresEventStore fresh(ioc.get_executor(), test_config(table));
        fresh.open();
        for (std::int64_t from = 1; from <= 100; from += 7) {
            auto page = run(ioc, [&] { return fresh.async_read_all(from, 7, asio::use_awaitable); });
            for (std::size_t i = 0; i < page.size(); ++i) {
                const auto& mine = read[static_cast<std::size_t>(from - 1) + i];
                CHECK(page[i].position == mine.position);
                CHECK(page[i].event.event_id == mine.event.event_id);
                CHECK(page[i].event.payload == mine.event.payload);
                CHECK(page[i].event.metadata == mine.event.metadata);
            }
        }
    }
    for (std::size_t i = 0; i < read.size(); ++i) CHECK(read[i].event.payload.at("n") == static_cast<int>(i));

    // At the head: a full page whose next page is short. The short page is
    // not kept, so events appended after it are seen by the next read.
    auto head = run(ioc, [&] { return store.async_read_all(91, 5, asio::use_awaitable); });  // 91..95, full
    REQUIRE(head.size() == 5);
    std::this_thread::sleep_for(200ms);  // let the read-ahead of 96.. (five events: full) and of 101.. (empty) finish
    run(ioc, [&] {
        return store.async_append("ahead-late", boong::ExpectedVersion::any(),
                                  {make_event(ids, "Late"), make_event(ids, "Late")}, asio::use_awaitable);
    });
    // read_all shows them once every older write transaction in the cluster
    // has ended, and other tests' transactions run on the same server: wait
    // until a store that never reads ahead sees them.
    {
        boong::PostgresEventStore fresh(ioc.get_executor(), test_config(table));
        fresh.open();
        const auto give_up = std::chrono::steady_clock::now() + 20s;
        while (run(ioc, [&] { return fresh.async_read_all(101, 5, asio::use_awaitable); }).size() < 2) {
            REQUIRE(std::chrono::steady_clock::now() < give_up);
            std::this_thread::sleep_for(20ms);
        }
    }
    auto next = run(ioc, [&] { return store.async_read_all(96, 5, asio::use_awaitable); });
    REQUIRE(next.size() == 5);
    auto tail = run(ioc, [&] { return store.async_read_all(101, 5, asio::use_awaitable); });
    REQUIRE(tail.size() == 2);  // not an empty page read ahead before these were written
    CHECK(tail[0].event.type == "Late");
    require_idle(ioc);
    drop_tables(table);
}

TEST_CASE("postgres: an exception thrown by a transaction's body reaches the caller as itself, and its connection "
          "stays in the pool",
          "[postgres][transact]") {
    asio::io_context ioc;
    auto config = test_config();
    config.pool_size = 1;  // one connection: a dropped one would show as a reconnect
    boong::PostgresEventStore store(ioc.get_executor(), config);
    store.open();
    const auto connects_before = store.stats().connects;
    struct Mine : std::runtime_error {
        using std::runtime_error::runtime_error;
    };
    int caught_mine = 0, caught_rejection = 0;
    bool rolled_back = false;
    const std::string table = fresh_table("it_body_errors");
    {
        auto c = admin();
        pqxx::nontransaction tx(c);
        tx.exec("DROP TABLE IF EXISTS " + table);
        tx.exec("CREATE TABLE " + table + " (n int)");
    }
    boong::test::run(ioc, [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 20; ++i) {
            auto throws_mine = [&table](pqxx::transaction_base& tx) {
                tx.exec("INSERT INTO " + table + " VALUES (1)");
                throw Mine("the body's own error");
            };
            try {
                co_await boong::async_transact(store, std::move(throws_mine), asio::use_awaitable);
            } catch (const Mine& e) {
                caught_mine += std::string(e.what()) == "the body's own error";
            }
            auto rejects = [](pqxx::transaction_base&) -> int { throw boong::Rejection("no such customer"); };
            try {
                co_await boong::async_transact(store, std::move(rejects), asio::use_awaitable);
            } catch (const boong::Rejection&) {
                ++caught_rejection;
            }
        }
        auto count = [&table](pqxx::transaction_base& tx) {
            return tx.exec("SELECT count(*) FROM " + table)[0][0].as<long>();
        };
        rolled_back = co_await boong::async_transact(store, std::move(count), asio::use_awaitable) == 0;
    });
    CHECK(caught_mine == 20);
    CHECK(caught_rejection == 20);
    CHECK(rolled_back);
    CHECK(store.stats().connects == connects_before);  // no connection dropped and reopened
    CHECK(store.stats().connections_lost == 0);
    auto c = admin();
    pqxx::nontransaction tx(c);
    tx.exec("DROP TABLE " + table);
}

TEST_CASE("postgres: a transaction the server keeps aborting (deadlock) is run three times, then fails as "
          "transaction_aborted, not as an outage",
          "[postgres][transact]") {
    asio::io_context ioc;
    auto config = test_config();
    config.pool_size = 1;
    boong::PostgresEventStore store(ioc.get_executor(), config);
    store.open();
    const auto connects_before = store.stats().connects;
    std::atomic<int> runs{0};
    std::optional<boong::error_code> code;
    std::string message;
    boong::test::run(ioc, [&]() -> asio::awaitable<void> {
        // What libpqxx 6 throws when the deadlock detector picks this
        // transaction (libpqxx 7: an sql_error with SQLSTATE 40P01).
        auto deadlocks = [&runs](pqxx::transaction_base& tx) {
            tx.exec("SELECT 1");
            if (++runs % 2 == 0) throw pqxx::sql_error("ERROR:  deadlock detected", "UPDATE stock", "40P01");
            throw pqxx::deadlock_detected("ERROR:  deadlock detected\nDETAIL:  Process 1 waits for ShareLock");
        };
        try {
            co_await boong::async_transact(store, std::move(deadlocks), asio::use_awaitable);
        } catch (const boong::Error& e) {
            code = e.code();
            message = e.what();
        }
    });
    CHECK(runs == 3);
    REQUIRE(code);
    CHECK(*code == boong::errc::transaction_aborted);
    CHECK_FALSE(boong::is_unavailable(*code));
    CHECK_THAT(message, Catch::Contains("SQLSTATE 40P01") && Catch::Contains("nothing was written"));
    CHECK(store.stats().connects == connects_before);  // the session survives an abort
    CHECK(store.stats().connections_lost == 0);
}

TEST_CASE("postgres: make_store picks the store from configuration, and refuses what it cannot use",
          "[postgres][backends]") {
    asio::io_context ioc;
    boong::EventStoreConfig config;
    config.type = boong::EventStoreConfig::Type::postgres;
    config.postgres = test_config();
    {
        auto store = boong::make_store(ioc.get_executor(), config);
        CHECK_THAT(store.describe(), Catch::StartsWith("postgres at ") && !Catch::Contains("password"));
        // Not open yet: nothing is read or written.
        CHECK(code_of([&] { run(ioc, [&] { return store.async_read_all(1, 1, asio::use_awaitable); }); }) ==
              boong::errc::store_unavailable);
        run(ioc, [&] { return store.async_open(asio::use_awaitable); });
        boong::IdGenerator ids;
        const auto stream = "made-" + run_id();
        auto r = run(ioc, [&] {
            return store.async_append(stream, boong::ExpectedVersion::no_stream(), {make_event(ids, "Made")},
                                      asio::use_awaitable);
        });
        CHECK(r.next_expected_version == 1);
        // What the erased store wrote, the typed one reads.
        boong::PostgresEventStore typed(ioc.get_executor(), test_config());
        typed.open();
        auto events = run(ioc, [&] { return typed.async_read_stream(stream, 1, 10, asio::use_awaitable); });
        REQUIRE(events.size() == 1);
        CHECK(events[0].event.type == "Made");
    }
    // Options the PostgreSQL store refuses are refused by make_store, at once.
    auto bad = config;
    bad.postgres.table_name = "events; DROP TABLE users";
    CHECK(code_of([&] { (void)boong::make_store(ioc.get_executor(), bad); }) == boong::errc::invalid_config);
    // An unreachable server: opening fails, naming where it tried.
    auto nowhere = config;
    nowhere.postgres.connection = "host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2";
    auto store = boong::make_store(ioc.get_executor(), nowhere);
    std::string message;
    const auto code = code_of([&] {
        try {
            run(ioc, [&] { return store.async_open(asio::use_awaitable); });
        } catch (const std::exception& e) {
            message = e.what();
            throw;
        }
    });
    CHECK(code == boong::errc::store_unavailable);
    CHECK_THAT(message, Catch::Contains("127.0.0.1:1"));
}
