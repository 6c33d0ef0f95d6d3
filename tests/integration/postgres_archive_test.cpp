// Archiving against a real PostgreSQL 15 (scripts/test.sh starts one and
// exports BOONG_TEST_PG_DSN): what moves, what stays, and that every read
// returns the same events before, during and after a run.
#include <boong/postgres/store.hpp>
#include <boong/postgres/transaction.hpp>

#include "support/async.hpp"
#include "support/postgres.hpp"
#include "support/events.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <pqxx/pqxx>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <future>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boong::test::code_of;
using boong::test::make_event;
using boong::test::run;

using boong::test::test_dsn;

// A store on tables of its own (dropped at the end): positions, the relay
// fence and row counts are the test's alone.
struct ArchiveFixture {
    inline static int made = 0;
    asio::io_context ioc;
    std::string table;
    boong::PostgresEventStore store;
    boong::IdGenerator ids;

    static boong::PostgresStoreConfig config(const std::string& table) {
        boong::PostgresStoreConfig c;
        c.connection = test_dsn();
        c.table_name = table;
        c.snapshot_table_name = table + "_snapshots";
        c.pool_size = 4;
        c.command_timeout = 20s;
        return c;
    }
    ArchiveFixture()
        : table("it_archive_" + std::string(boong::IdGenerator().next().substr(24, 12)) + "_" +
                std::to_string(++made)),
          store(ioc.get_executor(), config(table)) {
        store.open();
    }
    ~ArchiveFixture() {
        try {
            boong::test::drop_tables(table);
        } catch (const std::exception&) {
            // left for the server's cleanup with the test run
        }
    }

    std::int64_t last_appended = 0;  // by append()
    void append(const std::string& stream, std::int64_t expected, int n) {
        std::vector<boong::EventData> events;
        for (int i = 0; i < n; ++i) events.push_back(make_event(ids, "Happened", {{"stream", stream}, {"i", i}}));
        const auto e = expected == 0 ? boong::ExpectedVersion::no_stream() : boong::ExpectedVersion::exactly(expected);
        const auto r = run(ioc, [&] { return store.async_append(stream, e, events, asio::use_awaitable); });
        last_appended = std::max(last_appended, r.last_position);
    }
    // Every event from `from` on, through `until` at least: read_all shows
    // only what committed below the oldest transaction running anywhere on
    // the server, and tests run in parallel, so the last ones may need a
    // moment. (Up to 30 s; then what there is.)
    std::vector<boong::RecordedEvent> read_all(std::int64_t from = 1, std::size_t page = 1000,
                                               std::int64_t until = -1) {
        if (until < 0) until = last_appended;
        std::vector<boong::RecordedEvent> out;
        const auto deadline = std::chrono::steady_clock::now() + 30s;
        for (;;) {
            auto got = run(ioc, [&] { return store.async_read_all(from, page, asio::use_awaitable); });
            if (got.empty()) {
                if (from > until || std::chrono::steady_clock::now() > deadline) return out;
                std::this_thread::sleep_for(20ms);
                continue;
            }
            from = got.back().position + 1;
            out.insert(out.end(), got.begin(), got.end());
        }
    }
    std::vector<boong::RecordedEvent> read_stream(const std::string& stream, std::int64_t from = 1,
                                                  std::size_t max = 1000) {
        return run(ioc, [&] { return store.async_read_stream(stream, from, max, asio::use_awaitable); });
    }
    boong::ArchiveResult archive(boong::ArchivePolicy policy) {
        return run(ioc, [&] { return store.async_archive(policy, asio::use_awaitable); });
    }
    std::int64_t rows(const std::string& suffix) {
        pqxx::connection c(test_dsn());
        pqxx::nontransaction tx(c);
        return tx.exec1("SELECT count(*) FROM " + table + suffix)[0].as<std::int64_t>();
    }
};

// What a reader compares: where each event is and what it is.
std::vector<std::string> keys(const std::vector<boong::RecordedEvent>& events) {
    std::vector<std::string> out;
    for (const auto& e : events) {
        out.push_back(std::to_string(e.position) + " " + e.stream_id + "@" + std::to_string(e.version) + " " +
                      e.event.event_id + " " + e.event.payload.dump() + " " +
                      std::to_string(e.stored_at.time_since_epoch().count()));
    }
    return out;
}

boong::ArchivePolicy everything() {
    boong::ArchivePolicy p;
    p.below_position = std::numeric_limits<std::int64_t>::max();
    p.min_age = 0ms;
    return p;
}

}  // namespace

TEST_CASE("archive: moves what the policy matches but each stream's newest event, and reads do not change",
          "[postgres][archive]") {
    ArchiveFixture f;
    // a: 5 events, b: 1, c: 3, interleaved in the global order.
    f.append("a", 0, 2);
    f.append("b", 0, 1);
    f.append("c", 0, 1);
    f.append("a", 2, 1);
    f.append("c", 1, 2);
    f.append("a", 3, 2);
    const auto all_before = keys(f.read_all());
    REQUIRE(all_before.size() == 9);
    const auto a_before = keys(f.read_stream("a"));

    SECTION("a dry run counts and moves nothing") {
        auto p = everything();
        p.dry_run = true;
        const auto r = f.archive(p);
        CHECK(r.archived == 6);  // a1-a4, c1-c2
        CHECK(r.kept == 3);      // a5, b1, c3
        CHECK(f.rows("") == 9);
        CHECK(f.rows("_archive") == 0);
    }

    SECTION("two runs at once: what one moved, the other leaves") {
        // Another run's batch moves a1 and holds its transaction open; this
        // run meets a1 meanwhile, waits for it, and leaves it.
        const auto a1 = f.read_stream("a", 1, 1).at(0).position;
        pqxx::connection c(test_dsn());
        pqxx::work other(c);
        other.exec("WITH archived AS (INSERT INTO " + f.table + "_archive (position, stream_id, version, event_id, "
                   "type, schema_version, payload, metadata, stored_at, transaction_id) SELECT position, stream_id, "
                   "version, event_id, type, schema_version, payload, metadata, stored_at, transaction_id FROM " +
                   f.table + " WHERE position = " + std::to_string(a1) + " RETURNING position) DELETE FROM " +
                   f.table + " e USING archived a WHERE e.position = a.position");
        auto run_here = std::async(std::launch::async, [&] { return f.archive(everything()); });
        CHECK(run_here.wait_for(500ms) == std::future_status::timeout);  // waiting for a1's move
        other.commit();
        const auto r = run_here.get();
        CHECK(r.archived == 5);  // a2-a4, c1-c2
        CHECK(f.rows("") == 3);
        CHECK(f.rows("_archive") == 6);
        CHECK(keys(f.read_all()) == all_before);
        CHECK(keys(f.read_stream("a")) == a_before);
    }

    SECTION("a run in batches of two") {
        auto p = everything();
        p.batch_size = 2;
        const auto r = f.archive(p);
        CHECK(r.archived == 6);
        CHECK(r.kept == 3);
        CHECK(r.transactions == 5);  // 2+2+2+2+1 examined
        CHECK_FALSE(r.held_by_relay);
        CHECK(f.rows("") == 3);
        CHECK(f.rows("_archive") == 6);

        // read_all: the same events, one page or many across the boundary.
        CHECK(keys(f.read_all()) == all_before);
        CHECK(keys(f.read_all(1, 2)) == all_before);
        CHECK(keys(f.read_all(1, 1)) == all_before);
        // read_stream: whole, from the middle of the archived part, limited,
        // and only the hot part.
        CHECK(keys(f.read_stream("a")) == a_before);
        const auto middle = f.read_stream("a", 3, 2);
        REQUIRE(middle.size() == 2);
        CHECK(middle[0].version == 3);
        CHECK(middle[1].version == 4);
        const auto head = f.read_stream("a", 5);
        REQUIRE(head.size() == 1);
        CHECK(head[0].version == 5);
        CHECK(f.read_stream("a", 6).empty());
        CHECK(f.read_stream("c", 2, 1).at(0).version == 2);
        CHECK(f.read_stream("b").size() == 1);
        // In a transaction of the caller's, the same.
        const auto in_tx = run(f.ioc, [&] {
            return boong::async_transact(
                f.store, [&](pqxx::transaction_base& tx) { return f.store.read_stream_in(tx, "a", 2, 10); },
                asio::use_awaitable);
        });
        CHECK(keys(in_tx) == std::vector<std::string>(a_before.begin() + 1, a_before.end()));
        const auto several = run(f.ioc, [&] {
            return boong::async_transact(
                f.store,
                [&](pqxx::transaction_base& tx) { return f.store.read_streams_in(tx, {"c", "a", "b"}); },
                asio::use_awaitable);
        });
        REQUIRE(several.size() == 3);
        CHECK(keys(several[0]) == keys(f.read_stream("c")));
        CHECK(keys(several[1]) == a_before);
        CHECK(keys(several[2]) == keys(f.read_stream("b")));

        // Appends check versions as before: a is at 5.
        CHECK(code_of([&] { f.append("a", 3, 1); }) == boong::errc::concurrency_conflict);
        f.append("a", 5, 1);
        CHECK(f.read_stream("a").size() == 6);
        // A snapshot at an archived version is still below the stream's head.
        boong::Snapshot s;
        s.stream_id = "a";
        s.version = 4;
        s.type = "A";
        s.state = {{"n", 4}};
        run(f.ioc, [&] { return f.store.async_save_snapshot(s, asio::use_awaitable); });

        // The next run moves what became old: a5, now that a6 is newer.
        const auto again = f.archive(everything());
        CHECK(again.archived == 1);
        CHECK(again.kept == 3);
        CHECK(f.read_stream("a").size() == 6);
        CHECK(f.read_all().size() == 10);
    }
}

TEST_CASE("archive: bounds by position and age; a policy out of range is refused", "[postgres][archive]") {
    ArchiveFixture f;
    f.append("a", 0, 4);
    f.append("b", 0, 4);
    const auto all = f.read_all();
    REQUIRE(all.size() == 8);

    SECTION("below a position: only the events under it") {
        auto p = everything();
        p.below_position = all[3].position;  // a1-a3
        const auto r = f.archive(p);
        CHECK(r.archived == 3);
        CHECK(r.reached_position == all[2].position);
        CHECK(f.rows("_archive") == 3);
    }
    SECTION("the default min_age keeps events of the last hour") {
        boong::ArchivePolicy p;
        p.below_position = all.back().position + 1;
        const auto r = f.archive(p);
        CHECK(r.archived == 0);
        CHECK(f.rows("_archive") == 0);
    }
    SECTION("older than an age: only events stored before it") {
        boong::ArchivePolicy p;
        p.older_than = 1h;
        p.min_age = 0ms;
        CHECK(f.archive(p).archived == 0);
        // Age the first four by hand, as an hour would.
        boong::test::rewrite_history(f.table, "UPDATE " + f.table +
                                                  " SET stored_at = stored_at - interval '2 hours' WHERE position <= " +
                                                  std::to_string(all[3].position));
        const auto r = f.archive(p);
        CHECK(r.archived == 3);  // a1-a3; a4 is a's newest
        CHECK(r.kept == 1);
        CHECK(f.read_stream("a").size() == 4);
    }
    SECTION("archived events need not be a prefix of their stream: it still reads whole, in order") {
        // a2 old, a1 young (as when a1 was its stream's newest when a run
        // met it, and a2 was appended and archived later in the same run).
        boong::test::rewrite_history(f.table, "UPDATE " + f.table +
                                                  " SET stored_at = stored_at - interval '2 hours' WHERE position = " +
                                                  std::to_string(all[1].position));
        const auto before = f.read_all();  // with a2's new stored_at
        boong::ArchivePolicy p;
        p.older_than = 1h;
        p.min_age = 0ms;
        CHECK(f.archive(p).archived == 1);
        CHECK(f.rows("_archive") == 1);
        CHECK(keys(f.read_stream("a")) == keys(std::vector<boong::RecordedEvent>(before.begin(), before.begin() + 4)));
        const auto from_two = f.read_stream("a", 2, 2);
        REQUIRE(from_two.size() == 2);
        CHECK(from_two[0].version == 2);
        CHECK(from_two[1].version == 3);
        CHECK(keys(f.read_all()) == keys(before));
    }
    SECTION("refused") {
        boong::ArchivePolicy none;
        auto what = [&](boong::ArchivePolicy p) {
            try {
                f.archive(p);
            } catch (const boong::Error& e) {
                CHECK(e.code() == boong::errc::invalid_argument);
                return std::string(e.what());
            }
            return std::string("no error");
        };
        CHECK_THAT(what(none), Catch::Contains("neither below_position nor older_than"));
        auto p = everything();
        p.batch_size = 0;
        CHECK_THAT(what(p), Catch::Contains("batch_size 0"));
        p = everything();
        p.below_position = 0;
        CHECK_THAT(what(p), Catch::Contains("below_position must be >= 1"));
        p = everything();
        p.min_age = -1ms;
        CHECK_THAT(what(p), Catch::Contains("min_age is negative"));
        CHECK(f.rows("_archive") == 0);
    }
}

TEST_CASE("archive: events a relay has not published stay in the events table", "[postgres][archive]") {
    ArchiveFixture f;
    f.append("a", 0, 6);
    const auto all = f.read_all();
    {
        pqxx::connection c(test_dsn());
        pqxx::work tx(c);
        tx.exec("INSERT INTO " + f.table + "_outbox (relay, position) VALUES ('slow', " +
                std::to_string(all[2].position) + "), ('fast', " + std::to_string(all[5].position) + ")");
        tx.commit();
    }
    const auto r = f.archive(everything());
    CHECK(r.archived == 3);  // a1-a3: at or below the slow relay's cursor
    CHECK(r.reached_position == all[2].position);
    REQUIRE(r.held_by_relay);
    CHECK(*r.held_by_relay == all[2].position);
    CHECK(f.rows("") == 3);
}

// read_all returns a prefix of the positions: only events of transactions
// older than every one still running. An archived event keeps its
// transaction id, and the archive is held to the same rule: an event moved
// while an append below it is still in flight must not be read before that
// append (the reader would move past its position and never see it).
TEST_CASE("archive: read_all does not return an archived event above an append still in flight",
          "[postgres][archive]") {
    ArchiveFixture f;
    std::promise<void> appended, release;
    auto released = release.get_future();
    // Lets the held transaction go whatever happens below (a failed REQUIRE
    // must not leave a pool thread waiting for ever).
    struct Release {
        std::promise<void>& p;
        bool done = false;
        void now() {
            if (!done) p.set_value();
            done = true;
        }
        ~Release() { now(); }
    } let_go{release};
    auto hold = [&](pqxx::transaction_base& tx) {
        std::vector<boong::EventData> one{make_event(f.ids, "Happened", {{"stream", "slow"}})};
        f.store.append_in(tx, "slow", boong::ExpectedVersion::no_stream(), std::move(one));
        appended.set_value();
        released.wait();
    };
    bool committed = false;
    std::exception_ptr failure;
    asio::co_spawn(f.ioc, boong::async_transact(f.store, std::move(hold), asio::use_awaitable),
                   [&](std::exception_ptr e) {
                       failure = e;
                       committed = true;
                   });
    auto in_flight = appended.get_future();
    while (in_flight.wait_for(0s) != std::future_status::ready) f.ioc.run_one_for(10ms);

    using boong::test::run_until_done;
    auto append_b = [&](std::int64_t expected) {
        std::vector<boong::EventData> one{make_event(f.ids, "Happened", {{"stream", "b"}})};
        const auto e = expected == 0 ? boong::ExpectedVersion::no_stream() : boong::ExpectedVersion::exactly(expected);
        run_until_done(f.ioc, [&] { return f.store.async_append("b", e, one, asio::use_awaitable); });
    };
    append_b(0);  // position 2, above the held append's position 1
    append_b(1);  // position 3
    const auto moved = run_until_done(f.ioc, [&] { return f.store.async_archive(everything(), asio::use_awaitable); });
    REQUIRE(moved.archived == 1);  // b@1; b@2 is its stream's newest
    const auto early =
        run_until_done(f.ioc, [&] { return f.store.async_read_all(1, 10, asio::use_awaitable); });
    CHECK(early.empty());

    let_go.now();
    while (!committed) f.ioc.run_one_for(10ms);
    if (failure) std::rethrow_exception(failure);
    const auto all = f.read_all(1, 10, 3);
    REQUIRE(all.size() == 3);
    CHECK(all[0].stream_id == "slow");
    CHECK(all[1].stream_id == "b");
    CHECK(all[1].version == 1);
    CHECK(all[2].version == 2);
}

// The run takes rows out of the table readers and writers use: nobody may
// notice, but for the speed of a read of the archive.
TEST_CASE("archive: appends and a read_all reader running during archive runs see every event once, in order",
          "[postgres][archive]") {
    ArchiveFixture f;
    constexpr int kStreams = 8, kPerStream = 40;
    bool writing = true;
    std::int64_t last_appended = 0;
    std::map<std::string, std::int64_t> heads;
    std::vector<std::int64_t> seen;
    std::int64_t archived = 0, runs = 0;
    std::exception_ptr failure;
    auto record = [&](std::exception_ptr e) {
        if (e && !failure) failure = e;
    };

    asio::co_spawn(
        f.ioc,
        [&]() -> asio::awaitable<void> {
            for (int i = 0; i < kPerStream; ++i) {
                for (int s = 0; s < kStreams; ++s) {
                    const auto stream = "s" + std::to_string(s);
                    auto& head = heads[stream];
                    const auto e =
                        head == 0 ? boong::ExpectedVersion::no_stream() : boong::ExpectedVersion::exactly(head);
                    std::vector<boong::EventData> events{make_event(f.ids, "Happened", {{"i", i}})};
                    last_appended =
                        (co_await f.store.async_append(stream, e, std::move(events), asio::use_awaitable)).last_position;
                    ++head;
                }
            }
            writing = false;
        },
        record);
    asio::co_spawn(
        f.ioc,
        [&]() -> asio::awaitable<void> {
            auto p = everything();
            p.batch_size = 7;
            while (writing) {
                archived += (co_await f.store.async_archive(p, asio::use_awaitable)).archived;
                ++runs;
            }
        },
        record);
    asio::co_spawn(
        f.ioc,
        [&]() -> asio::awaitable<void> {
            // Until past the last event appended: an empty page says only that
            // nothing more is below the horizon yet (an archive batch still
            // running holds it back).
            std::int64_t from = 1;
            while (writing || from <= last_appended) {
                auto page = co_await f.store.async_read_all(from, 5, asio::use_awaitable);
                for (const auto& e : page) seen.push_back(e.position);
                if (!page.empty()) from = page.back().position + 1;
            }
        },
        record);
    f.ioc.run();
    if (failure) std::rethrow_exception(failure);

    INFO(runs << " archive runs moved " << archived << " events");
    CHECK(runs > 1);
    CHECK(archived > 0);
    CHECK(f.rows("_archive") == archived);
    // The reader: every event once, in increasing order.
    REQUIRE(seen.size() == static_cast<std::size_t>(kStreams * kPerStream));
    CHECK(std::set<std::int64_t>(seen.begin(), seen.end()).size() == seen.size());
    CHECK(std::is_sorted(seen.begin(), seen.end()));
    // Each stream: versions 1..n, whole.
    for (int s = 0; s < kStreams; ++s) {
        const auto events = f.read_stream("s" + std::to_string(s));
        REQUIRE(events.size() == static_cast<std::size_t>(kPerStream));
        for (std::size_t i = 0; i < events.size(); ++i) CHECK(events[i].version == static_cast<std::int64_t>(i + 1));
    }
}
