// bench_postgres: the PostgreSQL event store on a real server with durable
// commits, each figure next to a raw-client baseline that scripts/bench.sh
// measures in the same run (pgbench, psql) and passes in the environment:
//
//   BOONG_BENCH_PG_DSN                         the server (required)
//   BOONG_BENCH_BASELINE_APPEND_CONCURRENT     pgbench events/s, 64 clients, one INSERT per transaction
//   BOONG_BENCH_BASELINE_APPEND_P50_US/_P99_US pgbench latency percentiles of that run
//   BOONG_BENCH_BASELINE_APPEND_BATCH          pgbench events/s, 100-row INSERTs
//   BOONG_BENCH_BASELINE_READ_ALL              psql events/s, SELECT ... ORDER BY position
//   BOONG_BENCH_GROWTH_SIZES                   pg_append_growth's table sizes, "1000000,50000000"
//                                              (its own small-table run is its baseline)
//
// `bench_postgres --boong-prepare` creates the tables (through the store, so
// they have its exact shape) and fills bench_read with 1,000,000 events, then
// exits: bench.sh runs it before the baselines, which use the same tables.
#include <boong/backends.hpp>
#include <boong/postgres/store.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "pg_bench.hpp"
#include "report.hpp"

#include <benchmark/benchmark.h>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr const char* kAppendTable = "bench_events";
constexpr const char* kBaselineTable = "bench_pgbench";  // pgbench writes here: same shape
constexpr const char* kReadTable = "bench_read";
constexpr const char* kGrowthTable = "bench_growth";  // pg_append_growth's, filled by it
constexpr std::int64_t kReadEvents = 1'000'000;
constexpr int kConcurrentAppenders = 64;
constexpr std::size_t kBatchSize = 100;
constexpr int kBatchAppenders = 4;
constexpr auto kMeasure = std::chrono::seconds(8);  // per append benchmark, after a 1 s warm-up
constexpr std::size_t kReadPage = 1000;             // events per read_all call

// About 200 bytes of JSON, as in the pgbench baseline (bench.sh uses the same text).
const boong::json& payload() {
    static const boong::json p = boong::json::parse(
        R"({"order_id":"ord-0000000001","customer":"cust-42","amount_cents":12345,"currency":"EUR",)"
        R"("items":[{"sku":"sku-1","qty":2},{"sku":"sku-2","qty":1}],"note":"benchmark payload of about two hundred bytes."})");
    return p;
}

using boong::bench::env_number;
using boong::bench::report;
using boong::bench::pg_dsn;
using boong::bench::pg_usable;
using boong::bench::percentile;

boong::PostgresStoreConfig config(const char* table) {
    boong::PostgresStoreConfig c;
    c.connection = pg_dsn();
    c.table_name = table;
    c.snapshot_table_name = std::string(table) + "_snapshots";
    // To explore the group-commit settings (as bench_durable); the figures are quoted with the defaults.
    if (auto v = env_number("BOONG_BENCH_POOL_SIZE")) c.pool_size = static_cast<int>(*v);
    if (auto v = env_number("BOONG_BENCH_GROUP_MAX_EVENTS")) c.group_commit_max_events = static_cast<int>(*v);
    if (auto v = env_number("BOONG_BENCH_GROUP_DELAY_US")) {
        c.group_commit_delay = std::chrono::microseconds(static_cast<std::int64_t>(*v));
    }
    return c;
}

boong::EventData event(boong::IdGenerator& ids, std::string_view correlation) {
    boong::EventData e;
    const auto now = boong::Clock::now();
    e.event_id = ids.next(now);
    e.type = "BenchEvent";
    e.payload = payload();
    e.metadata.correlation_id = correlation;
    e.metadata.causation_id = correlation;
    e.metadata.timestamp = now;
    return e;
}

// Process memory: resident pages and bytes the allocator has handed out.
struct Memory {
    std::int64_t rss = 0;
    std::int64_t heap = 0;
};
Memory memory_now() {
    Memory m;
    std::ifstream statm("/proc/self/statm");
    std::int64_t size = 0, resident = 0;
    statm >> size >> resident;
    m.rss = resident * 4096;
    const auto info = mallinfo2();
    m.heap = static_cast<std::int64_t>(info.uordblks + info.hblkhd);  // arena + mmapped blocks
    return m;
}

// Appenders that each append `per_call` events at a time to their own stream
// (with the version check) until `end`, recording each call's latency.
template <class Store>
void run_appenders(Store& store, asio::io_context& ioc, int appenders, std::size_t per_call,
                   steady::time_point end, const std::string& tag, std::vector<double>* latencies_us,
                   std::uint64_t& events, std::uint64_t& failures) {
    boong::IdGenerator ids;
    for (int a = 0; a < appenders; ++a) {
        asio::co_spawn(
            ioc,
            [&, a]() -> asio::awaitable<void> {
                // Ids of the baseline's sizes (pgbench writes 'pgbench-<client>' and
                // 16-character correlation and causation ids): each byte is
                // written to the WAL and the indexes, and the appends are
                // bound by the WAL flush.
                const std::string stream = tag + "-" + std::to_string(a);
                const std::string correlation = "bench-" + stream;
                std::int64_t version = 0;
                while (steady::now() < end) {
                    std::vector<boong::EventData> batch;
                    batch.reserve(per_call);
                    for (std::size_t i = 0; i < per_call; ++i) batch.push_back(event(ids, correlation));
                    const auto start = steady::now();
                    try {
                        auto r = co_await store.async_append(stream, boong::ExpectedVersion::exactly(version),
                                                             std::move(batch), asio::use_awaitable);
                        version = r.next_expected_version;
                        events += per_call;
                    } catch (const std::exception& e) {
                        if (failures++ == 0) std::cerr << "bench_postgres: append failed: " << e.what() << "\n";
                        co_return;
                    }
                    if (latencies_us) {
                        latencies_us->push_back(
                            std::chrono::duration<double, std::micro>(steady::now() - start).count());
                    }
                }
            },
            asio::detached);
    }
    ioc.run();
    ioc.restart();
}

// A run's own prefix for its streams: the time in milliseconds, in base 36
// (8 characters; runs never share one).
std::string unique_tag() {
    auto ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
    std::string tag;
    for (; ms; ms /= 36) tag.insert(tag.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[ms % 36]);
    return tag;
}

// pg_append_concurrent: 64 coroutines, each appending one event at a time to
// its own stream. Group commit turns their appends into few transactions.
void pg_append_concurrent(benchmark::State& state) {
    if (!pg_usable(state)) return;
    spdlog::set_level(spdlog::level::warn);
    std::vector<double> latencies;
    latencies.reserve(1 << 21);  // before the first measurement: the benchmark's, not the store's
    const auto before = memory_now();
    asio::io_context ioc(1);
    boong::PostgresEventStore store(ioc.get_executor(), config(kAppendTable));
    store.open();
    const auto measure = kMeasure;
    std::uint64_t events = 0, failures = 0;
    {
        std::uint64_t warm = 0;
        run_appenders(store, ioc, kConcurrentAppenders, 1, steady::now() + 1s, "warm-" + unique_tag(), nullptr, warm,
                      failures);
    }
    const auto stats_before = store.stats();
    Memory during{};
    double seconds = 0;
    for (auto _ : state) {
        const auto start = steady::now();
        run_appenders(store, ioc, kConcurrentAppenders, 1, start + measure, unique_tag(), &latencies, events,
                      failures);
        seconds += std::chrono::duration<double>(steady::now() - start).count();
        during = memory_now();
    }
    const auto stats = store.stats();
    if (failures) state.SkipWithError("appends failed");
    report(state, "events_per_s", static_cast<double>(events) / seconds, "BOONG_BENCH_BASELINE_APPEND_CONCURRENT");
    report(state, "append_p50_us", percentile(latencies, 0.50), "BOONG_BENCH_BASELINE_APPEND_P50_US");
    report(state, "append_p99_us", percentile(latencies, 0.99), "BOONG_BENCH_BASELINE_APPEND_P99_US");
    const auto transactions = stats.append_transactions - stats_before.append_transactions;
    state.counters["events_per_transaction"] =
        transactions ? static_cast<double>(stats.events_written - stats_before.events_written) /
                           static_cast<double>(transactions)
                     : 0.0;
    // What the store holds under this load: its threads, connections (libpq
    // buffers), queues and requests in flight. The process grew by this much
    // from before the store was made to the end of the measurement.
    state.counters["store_rss_bytes"] = static_cast<double>(during.rss - before.rss);
    state.counters["store_heap_bytes"] = static_cast<double>(during.heap - before.heap);
}

// any_pg_append_concurrent: pg_append_concurrent's load through AnyEventStore
// made by make_store, to show what the erasure costs (compare the two
// events_per_s of the same run).
void any_pg_append_concurrent(benchmark::State& state) {
    if (!pg_usable(state)) return;
    spdlog::set_level(spdlog::level::warn);
    std::vector<double> latencies;
    latencies.reserve(1 << 21);
    asio::io_context ioc(1);
    boong::EventStoreConfig sc;
    sc.type = boong::EventStoreConfig::Type::postgres;
    sc.postgres = config(kAppendTable);
    boong::AnyEventStore store = boong::make_store(ioc.get_executor(), sc);
    std::exception_ptr open_failed;
    store.async_open([&](std::exception_ptr e) { open_failed = e; });
    ioc.run();
    ioc.restart();
    if (open_failed) {
        state.SkipWithError("cannot open the store");
        return;
    }
    std::uint64_t events = 0, failures = 0;
    {
        std::uint64_t warm = 0;
        run_appenders(store, ioc, kConcurrentAppenders, 1, steady::now() + 1s, "awarm-" + unique_tag(), nullptr, warm,
                      failures);
    }
    double seconds = 0;
    for (auto _ : state) {
        const auto start = steady::now();
        run_appenders(store, ioc, kConcurrentAppenders, 1, start + kMeasure, "a" + unique_tag(), &latencies, events,
                      failures);
        seconds += std::chrono::duration<double>(steady::now() - start).count();
    }
    if (failures) state.SkipWithError("appends failed");
    report(state, "events_per_s", static_cast<double>(events) / seconds, "BOONG_BENCH_BASELINE_APPEND_CONCURRENT");
    report(state, "append_p50_us", percentile(latencies, 0.50), "BOONG_BENCH_BASELINE_APPEND_P50_US");
}

// pg_append_batch: appends of 100 events per call, from 4 appenders.
void pg_append_batch(benchmark::State& state) {
    if (!pg_usable(state)) return;
    spdlog::set_level(spdlog::level::warn);
    asio::io_context ioc(1);
    boong::PostgresEventStore store(ioc.get_executor(), config(kAppendTable));
    store.open();
    const auto measure = kMeasure;
    std::uint64_t events = 0, failures = 0;
    {
        std::uint64_t warm = 0;
        run_appenders(store, ioc, kBatchAppenders, kBatchSize, steady::now() + 1s, "bwarm-" + unique_tag(), nullptr,
                      warm, failures);
    }
    std::vector<double> latencies;
    double seconds = 0;
    for (auto _ : state) {
        const auto start = steady::now();
        run_appenders(store, ioc, kBatchAppenders, kBatchSize, start + measure, "b" + unique_tag(), &latencies, events,
                      failures);
        seconds += std::chrono::duration<double>(steady::now() - start).count();
    }
    if (failures) state.SkipWithError("appends failed");
    report(state, "events_per_s", static_cast<double>(events) / seconds, "BOONG_BENCH_BASELINE_APPEND_BATCH");
    state.counters["call_p50_us"] = percentile(latencies, 0.50);
}

// pg_read_all: catching up over 1,000,000 stored events in global order, in
// pages, as a projection rebuilding from scratch would.
void pg_read_all(benchmark::State& state) {
    if (!pg_usable(state)) return;
    spdlog::set_level(spdlog::level::warn);
    asio::io_context ioc(1);
    boong::PostgresEventStore store(ioc.get_executor(), config(kReadTable));
    store.open();
    const auto page_size = kReadPage;
    std::int64_t events = 0;
    double seconds = 0;
    for (auto _ : state) {
        const auto start = steady::now();
        std::int64_t read = 0;
        asio::co_spawn(
            ioc,
            [&]() -> asio::awaitable<void> {
                std::int64_t next = 1;
                for (;;) {
                    auto page = co_await store.async_read_all(next, page_size, asio::use_awaitable);
                    if (page.empty()) co_return;
                    read += static_cast<std::int64_t>(page.size());
                    next = page.back().position + 1;
                    benchmark::DoNotOptimize(page.data());
                }
            },
            [&](std::exception_ptr e) {
                if (e) {
                    try {
                        std::rethrow_exception(e);
                    } catch (const std::exception& ex) {
                        std::cerr << "bench_postgres: read_all failed: " << ex.what() << "\n";
                    }
                    read = -1;
                }
            });
        ioc.run();
        ioc.restart();
        seconds += std::chrono::duration<double>(steady::now() - start).count();
        if (read < kReadEvents) {
            state.SkipWithError("read_all read fewer events than prepared (run bench_postgres --boong-prepare)");
            return;
        }
        events += read;
    }
    report(state, "events_per_s", static_cast<double>(events) / seconds, "BOONG_BENCH_BASELINE_READ_ALL");
    state.counters["pages_read_ahead"] = static_cast<double>(store.stats().read_ahead_pages);
}

// ---- pg_append_growth ------------------------------------------------------

// The table sizes pg_append_growth compares: BOONG_BENCH_GROWTH_SIZES, two
// event counts "SMALL,LARGE" (multiples of 10,000), default 1M and 50M.
std::pair<std::int64_t, std::int64_t> growth_sizes() {
    std::pair<std::int64_t, std::int64_t> sizes{1'000'000, 50'000'000};
    if (const char* v = std::getenv("BOONG_BENCH_GROWTH_SIZES"); v && *v) {
        const std::string text(v);
        const auto comma = text.find(',');
        try {
            sizes = {std::stoll(text.substr(0, comma)), std::stoll(text.substr(comma + 1))};
        } catch (const std::exception&) {
            sizes = {0, 0};
        }
        if (comma == std::string::npos || sizes.first < 10'000 || sizes.second <= sizes.first ||
            sizes.first % 10'000 != 0 || sizes.second % 10'000 != 0) {
            throw std::invalid_argument("BOONG_BENCH_GROWTH_SIZES must be SMALL,LARGE: multiples of 10000, SMALL < LARGE");
        }
    }
    return sizes;
}

// Streams of the fill: ten events each, interleaved as an application's are.
// Fill row i (from 1) belongs to stream 'growth-<s>' at version v: each block
// of 10,000 rows holds 1,000 streams, whose events lie 1,000 positions apart.
constexpr std::int64_t kGrowthBlock = 10'000;
constexpr std::int64_t kGrowthStreamsPerBlock = 1'000;
std::string growth_stream(std::int64_t s) { return "growth-" + std::to_string(s); }

// Adds fill rows `from`..`to` (1-based fill numbers) after the table's last
// position, in transactions of a million rows, server-side, moving the
// position sequence past them; then vacuums, as autovacuum would have by then.
void fill_growth(pqxx::connection& c, const std::string& table, std::int64_t from, std::int64_t to) {
    boong::EventMetadata m;
    m.correlation_id = "bench";
    m.causation_id = "bench";
    m.timestamp = boong::Clock::now();
    const std::string sequence = table + "_position_seq";
    for (std::int64_t begin = from; begin <= to; begin += 1'000'000) {
        const auto end = std::min(to, begin + 999'999);
        pqxx::work tx(c);
        const auto base = tx.exec1("SELECT coalesce(max(position), 0) FROM " + table)[0].as<std::int64_t>();
        tx.exec_params("INSERT INTO " + table +
                           " (position, stream_id, version, event_id, type, schema_version, payload, metadata)"
                           " SELECT $5::bigint + i - $3::bigint + 1,"
                           "  'growth-' || (((i - 1) / $6::bigint) * $7::bigint + ((i - 1) % $7::bigint)),"
                           "  ((i - 1) % $6::bigint) / $7::bigint + 1, gen_random_uuid(), 'BenchEvent', 1,"
                           "  $1::jsonb, $2::jsonb"
                           " FROM generate_series($3::bigint, $4::bigint) AS i",
                       payload().dump(), boong::json(m).dump(), begin, end, base, kGrowthBlock,
                       kGrowthStreamsPerBlock);
        tx.exec("SELECT pg_catalog.setval('" + sequence + "', (SELECT max(position) FROM " + table + "))");
        tx.commit();
    }
    pqxx::nontransaction vacuum(c);
    vacuum.exec("VACUUM (ANALYZE) " + table);
}

struct GrowthFigures {
    double events_per_s = 0;
    double append_p99_us = 0;
    double read_p99_us = 0;
};

// pg_append_concurrent's load on `table`, then read_stream of random fill
// streams (one at a time: latency, not throughput).
GrowthFigures measure_growth(const std::string& table, std::int64_t filled, const std::string& tag,
                             std::uint64_t& failures) {
    GrowthFigures f;
    asio::io_context ioc(1);
    boong::PostgresEventStore store(ioc.get_executor(), config(table.c_str()));
    store.open();
    std::uint64_t events = 0, warm = 0;
    std::vector<double> latencies;
    latencies.reserve(1 << 21);
    run_appenders(store, ioc, kConcurrentAppenders, 1, steady::now() + 1s, "gwarm-" + tag, nullptr, warm, failures);
    const auto start = steady::now();
    run_appenders(store, ioc, kConcurrentAppenders, 1, start + kMeasure, "g" + tag, &latencies, events, failures);
    f.events_per_s = static_cast<double>(events) / std::chrono::duration<double>(steady::now() - start).count();
    f.append_p99_us = percentile(latencies, 0.99);

    const std::int64_t streams = filled / kGrowthBlock * kGrowthStreamsPerBlock;
    std::mt19937_64 random(42);
    std::uniform_int_distribution<std::int64_t> pick(0, streams - 1);
    std::vector<double> reads;
    constexpr int kReads = 2000;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            for (int i = 0; i < kReads; ++i) {
                const auto stream = growth_stream(pick(random));
                const auto t = steady::now();
                auto got = co_await store.async_read_stream(stream, 1, 100, asio::use_awaitable);
                reads.push_back(std::chrono::duration<double, std::micro>(steady::now() - t).count());
                if (got.size() != 10) {
                    if (failures++ == 0)
                        std::cerr << "bench_postgres: " << stream << " has " << got.size() << " events, not 10\n";
                    co_return;
                }
            }
        },
        [&](std::exception_ptr e) {
            if (!e) return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                if (failures++ == 0) std::cerr << "bench_postgres: read_stream failed: " << ex.what() << "\n";
            }
        });
    ioc.run();
    f.read_p99_us = percentile(reads, 0.99);
    return f;
}

// pg_append_growth: pg_append_concurrent's load with SMALL (1M) and then
// LARGE (50M) events already in the table, filled server-side with
// generate_series (not through the library, and not timed). events_per_s is
// the large table's, its baseline the small table's of the same run; the
// same for read_stream_p99_us (random streams of ten events).
void pg_append_growth(benchmark::State& state) {
    if (!pg_usable(state)) return;
    spdlog::set_level(spdlog::level::warn);
    const auto [small, large] = growth_sizes();
    const std::string table = kGrowthTable;
    pqxx::connection c(pg_dsn());
    {
        asio::io_context ioc;
        boong::PostgresEventStore store(ioc.get_executor(), config(kGrowthTable));
        store.open();  // the store's exact shape
        pqxx::work tx(c);
        // History is immutable (schema version 6); the owner resets a bench
        // table on purpose, with the history triggers off for this transaction.
        tx.exec("ALTER TABLE " + table + " DISABLE TRIGGER USER");
        tx.exec("TRUNCATE " + table);
        tx.exec("ALTER TABLE " + table + " ENABLE TRIGGER USER");
        tx.exec("SELECT pg_catalog.setval('" + table + "_position_seq', 1, false)");
        tx.commit();
    }
    std::uint64_t failures = 0;
    GrowthFigures at_small, at_large;
    double fill_seconds = 0;
    for (auto _ : state) {
        auto t = steady::now();
        fill_growth(c, table, 1, small);
        fill_seconds += std::chrono::duration<double>(steady::now() - t).count();
        at_small = measure_growth(table, small, "s" + unique_tag(), failures);
        t = steady::now();
        fill_growth(c, table, small + 1, large);
        fill_seconds += std::chrono::duration<double>(steady::now() - t).count();
        at_large = measure_growth(table, large, "l" + unique_tag(), failures);
    }
    if (failures) state.SkipWithError("appends or reads failed");
    state.counters["events_per_s"] = at_large.events_per_s;
    state.counters["events_per_s_baseline"] = at_small.events_per_s;
    state.counters["events_per_s_ratio"] = at_small.events_per_s > 0 ? at_large.events_per_s / at_small.events_per_s : 0;
    state.counters["append_p99_us"] = at_large.append_p99_us;
    state.counters["append_p99_us_baseline"] = at_small.append_p99_us;
    state.counters["read_stream_p99_us"] = at_large.read_p99_us;
    state.counters["read_stream_p99_us_baseline"] = at_small.read_p99_us;
    state.counters["table_events_small"] = static_cast<double>(small);
    state.counters["table_events_large"] = static_cast<double>(large);
    state.counters["fill_s"] = fill_seconds;
    pqxx::nontransaction size(c);
    state.counters["table_bytes"] =
        size.exec1("SELECT pg_total_relation_size('" + table + "')")[0].as<double>();
}

// Creates the tables through the store (exact shape) and fills bench_read
// with kReadEvents events server-side (the same payload, one per row).
int prepare() {
    asio::io_context ioc;
    for (const char* table : {kAppendTable, kBaselineTable, kReadTable}) {
        boong::PostgresEventStore store(ioc.get_executor(), config(table));
        store.open();
    }
    pqxx::connection c(pg_dsn());
    pqxx::work tx(c);
    const auto have = tx.exec1(std::string("SELECT count(*) FROM ") + kReadTable)[0].as<std::int64_t>();
    if (have != kReadEvents) {
        tx.exec(std::string("ALTER TABLE ") + kReadTable + " DISABLE TRIGGER USER");  // as above
        tx.exec(std::string("TRUNCATE ") + kReadTable);
        tx.exec(std::string("ALTER TABLE ") + kReadTable + " ENABLE TRIGGER USER");
        boong::EventMetadata m;
        m.correlation_id = "bench";
        m.causation_id = "bench";
        m.timestamp = boong::Clock::now();
        tx.exec_params(std::string("INSERT INTO ") + kReadTable +
                           " (position, stream_id, version, event_id, type, schema_version, payload, metadata)"
                           " SELECT g, 'stream-' || (g % 10000), (g - 1) / 10000 + 1, gen_random_uuid(),"
                           " 'BenchEvent', 1, $1::jsonb, $2::jsonb FROM generate_series(1, $3::bigint) AS g",
                       payload().dump(), boong::json(m).dump(), kReadEvents);
    }
    tx.exec(std::string("CREATE SEQUENCE IF NOT EXISTS ") + kBaselineTable + "_seq");
    tx.commit();
    pqxx::nontransaction vacuum(c);
    vacuum.exec(std::string("VACUUM ANALYZE ") + kReadTable);
    std::cout << "bench_postgres: prepared " << kReadTable << " (" << kReadEvents << " events)\n";
    return 0;
}

}  // namespace

BENCHMARK(pg_append_concurrent)->Name("pg_append_concurrent")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(any_pg_append_concurrent)->Name("any_pg_append_concurrent")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(pg_append_batch)->Name("pg_append_batch")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(pg_read_all)->Name("pg_read_all")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(pg_append_growth)->Name("pg_append_growth")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) { return boong::bench::pg_main("bench_postgres", argc, argv, prepare); }
