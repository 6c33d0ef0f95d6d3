// A crash never takes back an event a reader has seen (CTest label `chaos`,
// run alone: it crashes the test server). With synchronous_commit off (here
// for the whole database, and the WAL writer slowed to 10 s so that an
// asynchronous commit stays unflushed), a commit is visible at once but only
// on disk later: an immediate stop then loses it, and its position goes to the
// next append. Appends must not be lost that way, however the transaction
// they are written in was set up. Each trial appends, sees the event through
// read_all at position q, crashes the server at once, and reads q again:
//   - a plain async_append;
//   - append_in inside a Durability::relaxed async_transact that also says
//     SET LOCAL synchronous_commit = off;
//   - control: a plain row committed the same way, which must be lost in most
//     trials (else this test could not tell a durable append from a lucky one).
//
//   durable_commit_test   (env: BOONG_TEST_PG_DSN, BOONG_TEST_PG_ADMIN_DSN, BOONG_TEST_PG_RESTART)
#include <boong/postgres/store.hpp>
#include <boong/postgres/transaction.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <pqxx/pqxx>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

int failures = 0;
void check(bool ok, const std::string& what) {
    if (ok) return;
    ++failures;
    std::cerr << "durable_commit: FAILED: " << what << "\n";
}

std::string env(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) {
        std::cerr << "durable_commit: " << name << " is not set: run through scripts/test.sh\n";
        std::exit(2);
    }
    return v;
}

// Runs `make()` on a fresh io_context to completion.
template <class T>
T run(std::function<asio::awaitable<T>()> make) {
    asio::io_context ioc;
    std::optional<T> result;
    std::exception_ptr error;
    asio::co_spawn(ioc, make(), [&](std::exception_ptr e, T v) {
        error = e;
        if (!e) result.emplace(std::move(v));
    });
    ioc.run();
    if (error) std::rethrow_exception(error);
    return std::move(*result);
}

void sql(const std::string& dsn, const std::string& statement) {
    pqxx::connection c(dsn);
    pqxx::nontransaction(c).exec(statement);
}

void crash() {
    const int rc = std::system(env("BOONG_TEST_PG_RESTART").c_str());
    check(rc == 0, "restarting PostgreSQL failed");
}

// Waits until the restarted server takes connections.
void wait_up(const std::string& dsn) {
    for (int i = 0; i < 300; ++i) {
        try {
            pqxx::connection c(dsn);
            return;
        } catch (const std::exception&) {
            std::this_thread::sleep_for(100ms);
        }
    }
    throw std::runtime_error("PostgreSQL did not come back within 30 s");
}

struct Settings {
    std::string admin, db;
    Settings(std::string a, std::string database) : admin(std::move(a)), db(std::move(database)) {
        sql(admin, "ALTER DATABASE " + db + " SET synchronous_commit = off");
        sql(admin, "ALTER SYSTEM SET wal_writer_delay = '10s'");
        sql(admin, "SELECT pg_reload_conf()");
    }
    ~Settings() {
        try {
            sql(admin, "ALTER DATABASE " + db + " RESET synchronous_commit");
            sql(admin, "ALTER SYSTEM RESET wal_writer_delay");
            sql(admin, "SELECT pg_reload_conf()");
        } catch (const std::exception& e) {
            std::cerr << "durable_commit: restoring the server's settings failed: " << e.what() << "\n";
        }
    }
};

}  // namespace

int main() try {
    const std::string dsn = env("BOONG_TEST_PG_DSN");
    const std::string admin = env("BOONG_TEST_PG_ADMIN_DSN");
    const std::string table = "durable_" + boong::IdGenerator().next().substr(24, 8);
    const std::string database = pqxx::nontransaction(*std::make_unique<pqxx::connection>(dsn))
                                     .exec("SELECT current_database()")[0][0]
                                     .as<std::string>();
    Settings settings(admin, database);
    sql(dsn, "CREATE TABLE " + table + "_control (n int)");

    boong::PostgresStoreConfig config;
    config.connection = dsn;
    config.table_name = table;
    config.snapshot_table_name = table + "_snapshots";
    config.pool_size = 2;
    boong::IdGenerator ids;
    constexpr int kTrials = 3;
    int control_lost = 0;
    for (int trial = 0; trial < kTrials; ++trial) {
        for (const std::string how : {"async_append", "append_in in a relaxed transaction"}) {
            std::string event_id = ids.next();
            std::int64_t seen_at = 0;
            {
                asio::io_context ioc;
                boong::PostgresEventStore store(ioc.get_executor(), config);
                store.open();
                auto session = run<std::string>([&]() -> asio::awaitable<std::string> {
                    auto show = [](pqxx::transaction_base& tx) {
                        return tx.exec("SHOW synchronous_commit")[0][0].as<std::string>();
                    };
                    co_return co_await boong::async_transact(store, std::move(show), asio::use_awaitable);
                });
                (void)session;
                seen_at = run<std::int64_t>([&]() -> asio::awaitable<std::int64_t> {
                    std::vector<boong::EventData> events{
                        boong::EventData{event_id, "Seen", 1, boong::json{{"trial", trial}}, {}}};
                    const std::string stream = "durable-" + std::to_string(trial) + "-" + how.substr(0, 6);
                    if (how == "async_append") {
                        co_await store.async_append(stream, boong::ExpectedVersion::no_stream(), std::move(events),
                                                    asio::use_awaitable);
                    } else {
                        auto body = [&store, stream, events = std::move(events)](pqxx::transaction_base& tx) mutable {
                            tx.exec("SET LOCAL synchronous_commit = off");
                            store.append_in(tx, stream, boong::ExpectedVersion::no_stream(), std::move(events));
                        };
                        co_await boong::async_transact(store, std::move(body), boong::Durability::relaxed,
                                                       asio::use_awaitable);
                    }
                    // A reader sees it.
                    auto all = co_await store.async_read_all(1, 100000, asio::use_awaitable);
                    for (const auto& e : all)
                        if (e.event.event_id == event_id) co_return e.position;
                    co_return 0;
                });
                check(seen_at > 0, how + ", trial " + std::to_string(trial) + ": read_all did not show the event");
                // The control, committed the same way, just before the crash.
                pqxx::connection c(dsn);
                pqxx::work tx(c);
                tx.exec("INSERT INTO " + table + "_control VALUES (" + std::to_string(trial) + ")");
                tx.commit();
                crash();
            }
            wait_up(dsn);
            asio::io_context ioc;
            boong::PostgresEventStore store(ioc.get_executor(), config);
            store.open();
            auto again = run<std::vector<boong::RecordedEvent>>([&]() -> asio::awaitable<std::vector<boong::RecordedEvent>> {
                co_return co_await store.async_read_all(seen_at, 1, asio::use_awaitable);
            });
            check(again.size() == 1 && again[0].event.event_id == event_id,
                  how + ", trial " + std::to_string(trial) + ": the event a reader saw at position " +
                      std::to_string(seen_at) + " is gone after the crash");
            pqxx::connection c(dsn);
            const auto rows = pqxx::nontransaction(c)
                                  .exec("SELECT count(*) FROM " + table + "_control WHERE n = " + std::to_string(trial))[0][0]
                                  .as<int>();
            control_lost += rows == 0;
            sql(dsn, "DELETE FROM " + table + "_control");
            std::cout << "durable_commit: trial " << trial << " (" << how << "): event at " << seen_at
                      << (again.size() == 1 ? " kept" : " LOST") << "; control row " << (rows == 0 ? "lost" : "kept")
                      << "\n";
        }
    }
    // Without losses in the control, the setup did not make asynchronous
    // commits lose anything, and the trials above proved nothing.
    check(control_lost >= kTrials, "the control lost its row in only " + std::to_string(control_lost) + " of " +
                                       std::to_string(2 * kTrials) + " crashes: the test setup does not work");
    sql(dsn, "DROP TABLE " + table + "_control");
    std::cout << "durable_commit: " << (failures ? "FAILED" : "passed") << "\n";
    return failures ? 1 : 0;
} catch (const std::exception& e) {
    std::cerr << "durable_commit: FAILED: " << e.what() << "\n";
    return 1;
}
