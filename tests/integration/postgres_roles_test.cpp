// Immutable history and least-privilege roles against a real PostgreSQL 15
// (scripts/test.sh starts one and exports BOONG_TEST_PG_DSN and, for making
// roles, the superuser's BOONG_TEST_PG_ADMIN_DSN): what the roles of
// boong::postgres_grants can and cannot do, and that not even the tables'
// owner changes an event (docs/security.md).
#include <boong/postgres/outbox.hpp>
#include <boong/postgres/roles.hpp>
#include <boong/postgres/sagas.hpp>
#include <boong/postgres/store.hpp>
#include <boong/postgres/subject_keys.hpp>
#include <boong/postgres/transaction.hpp>

#include "support/async.hpp"
#include "support/events.hpp"
#include "support/postgres.hpp"

#include <boost/asio/io_context.hpp>

#include <pqxx/pqxx>

#include <chrono>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boong::test::make_event;
using boong::test::message_of;
using boong::test::run;
using boong::test::test_dsn;

std::string admin_dsn() {
    const char* dsn = std::getenv("BOONG_TEST_PG_ADMIN_DSN");
    if (!dsn || !*dsn) FAIL("BOONG_TEST_PG_ADMIN_DSN is not set: run integration tests through scripts/test.sh");
    return dsn;
}

// The test DSN (postgresql://user:password@host:port/db, servers.sh) as
// another user.
std::string dsn_as(const std::string& user, const std::string& password) {
    const std::string dsn = test_dsn();
    const auto from = dsn.find("://");
    const auto to = dsn.find('@');
    if (from == std::string::npos || to == std::string::npos || to < from) FAIL("not a URI DSN: " << dsn);
    return dsn.substr(0, from + 3) + user + ":" + password + dsn.substr(to);
}

boong::PostgresStoreConfig config(const std::string& table, const std::string& dsn) {
    boong::PostgresStoreConfig c;
    c.connection = dsn;
    c.table_name = table;
    c.snapshot_table_name = table + "_snapshots";
    c.pool_size = 2;
    c.command_timeout = 20s;
    return c;
}

// What a statement run as `dsn` fails with: its SQLSTATE and message
// (empty: it ran).
struct Refusal {
    std::string state;
    std::string message;
};
Refusal try_sql(const std::string& dsn, const std::string& statement) {
    pqxx::connection c(dsn);
    pqxx::work tx(c);
    try {
        tx.exec(statement);
    } catch (const pqxx::insufficient_privilege& e) {
        return {"42501", e.what()};  // libpqxx 6 leaves sqlstate() empty here
    } catch (const pqxx::sql_error& e) {
        return {e.sqlstate().empty() ? "?" : e.sqlstate(), e.what()};
    }
    return {};  // rolled back all the same
}

std::int64_t count(const std::string& dsn, const std::string& query) {
    pqxx::connection c(dsn);
    pqxx::nontransaction tx(c);
    return tx.exec1(query)[0].as<std::int64_t>();
}

// A table of its own, made by the owner (the test's role), and two roles
// with the grants of boong::postgres_grants; all dropped at the end.
struct RolesFixture {
    std::string tag = std::string(boong::IdGenerator().next().substr(24, 12));
    std::string table = "it_roles_" + tag;
    std::string app = "boong_app_" + tag;
    std::string reader = "boong_ops_" + tag;
    std::string app_password = boong::IdGenerator().next();
    std::string reader_password = boong::IdGenerator().next();
    asio::io_context ioc;
    boong::IdGenerator ids;

    RolesFixture() {
        {
            boong::PostgresEventStore owner(ioc.get_executor(), config(table, test_dsn()));
            owner.open();
        }
        {
            pqxx::connection c(admin_dsn());
            pqxx::nontransaction tx(c);
            tx.exec("CREATE ROLE " + app + " LOGIN PASSWORD " + tx.quote(app_password));
            tx.exec("CREATE ROLE " + reader + " LOGIN PASSWORD " + tx.quote(reader_password));
        }
        pqxx::connection c(test_dsn());
        pqxx::work tx(c);
        for (const auto& s : boong::postgres_grants(config(table, test_dsn()), "public", {app, reader})) tx.exec(s);
        tx.commit();
    }
    ~RolesFixture() {
        try {
            boong::test::drop_tables(table);
            pqxx::connection c(admin_dsn());
            pqxx::nontransaction tx(c);
            for (const auto& role : {app, reader}) {
                tx.exec("DROP OWNED BY " + role);
                tx.exec("DROP ROLE " + role);
            }
        } catch (const std::exception&) {
            // left for the server's cleanup with the test run
        }
    }
    std::string app_dsn() const { return dsn_as(app, app_password); }
    std::string reader_dsn() const { return dsn_as(reader, reader_password); }
};

}  // namespace

TEST_CASE("postgres roles: the application role appends and reads, keeps its working rows, never changes history",
          "[postgres][security]") {
    RolesFixture f;
    boong::PostgresEventStore store(f.ioc.get_executor(), config(f.table, f.app_dsn()));
    store.open();  // migrated already: the application only reads the schema version

    // What a service does: append, read, snapshot, saga rows (by the saga
    // trigger), claims, the outbox cursor, the inbox.
    std::vector<boong::EventData> events{make_event(f.ids, "Placed", {{"n", 1}}),
                                         make_event(f.ids, "Paid", {{"n", 2}})};
    const auto appended = run(f.ioc, [&] {
        return store.async_append("order-1", boong::ExpectedVersion::no_stream(), events, asio::use_awaitable);
    });
    CHECK(appended.next_expected_version == 2);
    const auto stream = run(f.ioc, [&] { return store.async_read_stream("order-1", 1, 10, asio::use_awaitable); });
    REQUIRE(stream.size() == 2);
    CHECK(stream[1].event.type == "Paid");
    boong::Snapshot snapshot{.stream_id = "order-1", .version = 2, .type = "Order", .state = {{"paid", true}}};
    run(f.ioc, [&] { return store.async_save_snapshot(snapshot, asio::use_awaitable); });
    const auto loaded = run(f.ioc, [&] { return store.async_load_snapshot("order-1", asio::use_awaitable); });
    REQUIRE(loaded);
    CHECK(loaded->state == snapshot.state);

    std::vector<boong::EventData> started{make_event(f.ids, "SagaStarted", {{"saga_type", "order"}})};
    run(f.ioc, [&] {
        return store.async_append("saga-s1", boong::ExpectedVersion::no_stream(), started, asio::use_awaitable);
    });
    boong::PostgresSagaIndex index(store);
    const auto saga = run(f.ioc, [&] { return index.async_find("s1", asio::use_awaitable); });
    REQUIRE(saga);
    CHECK(saga->phase == boong::SagaPhase::running);
    // Never owned: claimable once unchanged for a lease.
    std::this_thread::sleep_for(100ms);
    const auto claimed = run(f.ioc, [&] {
        return index.async_claim(boong::SagaClaim{.saga_type = "order", .definitions = {}}, "app/1", 50ms, 10,
                                 asio::use_awaitable);
    });
    CHECK(claimed == std::vector<std::string>{"s1"});

    boong::PostgresOutbox outbox(store);
    const auto from = run(f.ioc, [&] { return outbox.async_acquire("relay", "app/1", 10s, asio::use_awaitable); });
    REQUIRE(from);
    CHECK(run(f.ioc, [&] { return outbox.async_advance("relay", "app/1", 2, 10s, asio::use_awaitable); }));

    const auto recorded = run(f.ioc, [&] {
        return boong::async_transact(
            store, [&](pqxx::transaction_base& tx) { return store.record_processed_in(tx, "payments", "m-1"); },
            asio::use_awaitable);
    });
    CHECK(recorded);

    // Field encryption's keys: made, rotated, shredded (an erasure request).
    boong::PostgresSubjectKeys keys(store, std::make_shared<const boong::MasterKey>(
                                               boong::MasterKey::from_hex(std::string(64, 'c'))));
    CHECK(run(f.ioc, [&] { return keys.async_current("c-1", asio::use_awaitable); }).version == 1);
    CHECK(run(f.ioc, [&] { return keys.async_rotate("c-1", asio::use_awaitable); }).version == 2);
    CHECK(run(f.ioc, [&] { return keys.async_shred("c-1", asio::use_awaitable); }) == 2);

    // History: privileges refuse it before any trigger is asked.
    const std::string events_table = store.tables().events;
    for (const auto& statement :
         {"UPDATE " + events_table + " SET payload = '{\"n\": -1000}'", "DELETE FROM " + events_table,
          "TRUNCATE " + events_table, "INSERT INTO " + store.tables().archive + " SELECT *, now() FROM " + events_table,
          "ALTER TABLE " + events_table + " DISABLE TRIGGER USER", "DROP TABLE " + events_table}) {
        const auto refusal = try_sql(f.app_dsn(), statement);
        INFO(statement << ": " << refusal.message);
        CHECK(refusal.state == "42501");  // insufficient_privilege
    }
    // An archive run needs the owner: it is refused, and nothing moved.
    boong::ArchivePolicy everything;
    everything.below_position = std::numeric_limits<std::int64_t>::max();
    everything.min_age = 0ms;
    const auto archive_error =
        message_of([&] { run(f.ioc, [&] { return store.async_archive(everything, asio::use_awaitable); }); });
    CHECK_THAT(archive_error, Catch::Contains("permission denied"));
    CHECK(count(test_dsn(), "SELECT count(*) FROM " + store.tables().archive) == 0);
    const auto again = run(f.ioc, [&] { return store.async_read_stream("order-1", 1, 10, asio::use_awaitable); });
    REQUIRE(again.size() == 2);
    CHECK(again[0].event.payload == stream[0].event.payload);
}

TEST_CASE("postgres roles: the read-only role reads everything and writes nothing", "[postgres][security]") {
    RolesFixture f;
    {
        boong::PostgresEventStore owner(f.ioc.get_executor(), config(f.table, test_dsn()));
        owner.open();
        std::vector<boong::EventData> events{make_event(f.ids, "Placed")};
        run(f.ioc, [&] {
            return owner.async_append("order-1", boong::ExpectedVersion::no_stream(), events, asio::use_awaitable);
        });
    }
    boong::PostgresEventStore store(f.ioc.get_executor(), config(f.table, f.reader_dsn()));
    store.open();
    CHECK(run(f.ioc, [&] { return store.async_read_stream("order-1", 1, 10, asio::use_awaitable); }).size() == 1);
    for (const auto& suffix : {"", "_archive", "_snapshots", "_sagas", "_outbox", "_inbox", "_schema"}) {
        CHECK_NOTHROW(count(f.reader_dsn(), "SELECT count(*) FROM " + f.table + suffix));  // not refused
    }
    std::vector<boong::EventData> more{make_event(f.ids, "Forged")};
    const auto append_error = message_of([&] {
        run(f.ioc, [&] {
            return store.async_append("order-1", boong::ExpectedVersion::any(), more, asio::use_awaitable);
        });
    });
    CHECK_THAT(append_error, Catch::Contains("permission denied"));
    CHECK(try_sql(f.reader_dsn(), "INSERT INTO " + f.table + "_inbox (consumer, message_id) VALUES ('c', 'm')").state ==
          "42501");
    CHECK(try_sql(f.reader_dsn(), "UPDATE " + f.table + "_sagas SET owner = 'x'").state == "42501");
    // Not even wrapped keys for operators.
    CHECK(try_sql(f.reader_dsn(), "SELECT count(*) FROM " + f.table + "_subject_keys").state == "42501");
    CHECK(count(test_dsn(), "SELECT count(*) FROM " + f.table) == 1);
}

TEST_CASE("postgres roles: an application role cannot migrate; opening says who can", "[postgres][security]") {
    RolesFixture f;
    asio::io_context ioc;
    boong::PostgresEventStore fresh(ioc.get_executor(), config(f.table + "_new", f.app_dsn()));
    const auto error = message_of([&] { fresh.open(); });
    CHECK_THAT(error, Catch::Contains("schema version 0") && Catch::Contains("may not migrate") &&
                          Catch::Contains("boong schema migrate"));
    CHECK(count(test_dsn(), "SELECT count(*) FROM pg_class WHERE relname = '" + f.table + "_new'") == 0);
}

TEST_CASE("postgres roles: the grants are refused when they name no role, or one role twice", "[postgres][security]") {
    const boong::PostgresStoreConfig c;
    CHECK_THAT(message_of([&] { boong::postgres_grants(c, "public", {}); }), Catch::Contains("name an application"));
    CHECK_THAT(message_of([&] { boong::postgres_grants(c, "public", {"same", "same"}); }),
               Catch::Contains("different roles"));
    // Names are quoted: a role name cannot smuggle SQL in.
    const auto statements = boong::postgres_grants(c, "my schema", {"app\"; DROP TABLE x; --", ""});
    REQUIRE_FALSE(statements.empty());
    CHECK_THAT(statements[0], Catch::Equals("GRANT USAGE ON SCHEMA \"my schema\" TO \"app\"\"; DROP TABLE x; --\""));
}

TEST_CASE("postgres history: not even the owner changes or deletes an event; an archive run still moves them whole",
          "[postgres][security][archive]") {
    asio::io_context ioc;
    boong::IdGenerator ids;
    const std::string table = "it_history_" + std::string(ids.next().substr(24, 12));
    boong::PostgresEventStore store(ioc.get_executor(), config(table, test_dsn()));
    store.open();
    for (int i = 1; i <= 3; ++i) {
        std::vector<boong::EventData> one{make_event(ids, "Happened", {{"i", i}})};
        run(ioc, [&] {
            return store.async_append("a", boong::ExpectedVersion::exactly(i - 1), one, asio::use_awaitable);
        });
    }
    const auto before = run(ioc, [&] { return store.async_read_stream("a", 1, 10, asio::use_awaitable); });
    REQUIRE(before.size() == 3);
    const std::string events = store.tables().events;
    const std::string archive = store.tables().archive;
    for (const auto& statement : {"UPDATE " + events + " SET payload = '{\"i\": -1000}' WHERE version = 1",
                                  "DELETE FROM " + events + " WHERE version = 1", "TRUNCATE " + events}) {
        const auto refusal = try_sql(test_dsn(), statement);
        INFO(statement);
        CHECK(refusal.state == "42501");
        CHECK_THAT(refusal.message, Catch::Contains("history is immutable"));
    }
    // A changed copy in the archive does not let the original out.
    const auto forged = try_sql(test_dsn(), "WITH c AS (INSERT INTO " + archive +
                                                " SELECT position, stream_id, version, event_id, type, schema_version,"
                                                " '{\"i\": -1000}', metadata, stored_at, transaction_id FROM " +
                                                events + " WHERE version = 1 RETURNING position) DELETE FROM " +
                                                events + " e USING c WHERE e.position = c.position");
    CHECK(forged.state == "42501");
    CHECK_THAT(forged.message, Catch::Contains("history is immutable"));

    // The archive run: copied whole, then deleted; reads are unchanged.
    boong::ArchivePolicy p;
    p.below_position = std::numeric_limits<std::int64_t>::max();
    p.min_age = 0ms;
    const auto moved = run(ioc, [&] { return store.async_archive(p, asio::use_awaitable); });
    CHECK(moved.archived == 2);  // the stream's newest stays
    const auto after = run(ioc, [&] { return store.async_read_stream("a", 1, 10, asio::use_awaitable); });
    REQUIRE(after.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(after[i].event.event_id == before[i].event.event_id);
        CHECK(after[i].event.payload == before[i].event.payload);
        CHECK(after[i].position == before[i].position);
    }
    // Archived events are as immutable.
    for (const auto& statement : {"UPDATE " + archive + " SET payload = '{}'", "DELETE FROM " + archive,
                                  "TRUNCATE " + archive}) {
        const auto refusal = try_sql(test_dsn(), statement);
        INFO(statement);
        CHECK(refusal.state == "42501");
        CHECK_THAT(refusal.message, Catch::Contains("history is immutable"));
    }
    CHECK(count(test_dsn(), "SELECT count(*) FROM " + archive) == 2);
    boong::test::drop_tables(table);
}
