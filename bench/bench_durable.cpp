// bench_durable: durable execution (issue 5) on a real PostgreSQL with durable
// commits (fsync=on, synchronous_commit=on), next to a pgbench baseline that
// scripts/bench.sh measures in the same run (scripts/lib/pg_baselines.sh):
//
//   BOONG_BENCH_PG_DSN                  the server (required)
//   BOONG_BENCH_BASELINE_SAGA_STEPS     pgbench transactions/s, 16 clients, one transaction per saga
//                                       step: INSERT an event row + UPDATE a saga row
//   BOONG_BENCH_SECONDS                 measured seconds of saga_durable_throughput (default 8)
//   BOONG_BENCH_PG_DATA_DIR             the server's data directory, to read its CPU use in /proc
//
// saga_durable_throughput: 3-step sagas of no-op steps run end to end by a
//   SagaOrchestrator on the PostgresEventStore, 256 in flight (a new one
//   starts when one finishes). steps_per_s is compared with the baseline.
// recovery_time: 10,000 sagas interrupted mid-flight (owner "bench-node/<old>",
//   stopped inside their second step), then a fresh store and orchestrator
//   named "bench-node": seconds from making the store to every saga resumed
//   (running its second step again, after its SagaResumed is stored) and to
//   every saga finished (its outcome delivered through on_outcome).
//
// `bench_durable --boong-prepare` creates the tables (through the store, so
// the baseline's have the same shape) and fills the baseline's saga table with
// 10,000 rows, then exits: bench.sh runs it before the baseline.
#include <boong/saga_orchestrator.hpp>
#include <boong/saga_runner.hpp>
#include <boong/postgres/store.hpp>
#include <boong/postgres/sagas.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "pg_bench.hpp"
#include "report.hpp"

#include <benchmark/benchmark.h>
#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using boost::asio::awaitable;
using boong::bench::env_number;
using boong::bench::report;
using boong::bench::pg_dsn;
using boong::bench::pg_usable;
using boong::bench::percentile;

constexpr const char* kThroughputTable = "bench_durable";
constexpr const char* kRecoveryTable = "bench_recovery";
constexpr const char* kBaselineTable = "bench_durable_pgbench";  // pgbench writes here: same shape
constexpr int kInFlight = 256;
constexpr std::size_t kSteps = 3;
constexpr std::int64_t kBaselineSagaRows = 10000;
constexpr std::size_t kRecoverySagas = 10000;
constexpr double kRecoveryTargetSeconds = 10.0;
constexpr auto kWarmUp = 2s;

// Store settings: the defaults unless the environment says otherwise
// (BOONG_BENCH_POOL_SIZE, BOONG_BENCH_GROUP_MAX_EVENTS, BOONG_BENCH_GROUP_DELAY_US),
// for exploring; bench.sh sets none of them.
boong::PostgresStoreConfig config(const char* table) {
    boong::PostgresStoreConfig c;
    c.connection = pg_dsn();
    c.table_name = table;
    c.snapshot_table_name = std::string(table) + "_snapshots";
    if (auto v = env_number("BOONG_BENCH_POOL_SIZE")) c.pool_size = static_cast<std::size_t>(*v);
    if (auto v = env_number("BOONG_BENCH_GROUP_MAX_EVENTS")) c.group_commit_max_events = static_cast<std::size_t>(*v);
    if (auto v = env_number("BOONG_BENCH_GROUP_DELAY_US")) {
        c.group_commit_delay = std::chrono::microseconds(static_cast<std::int64_t>(*v));
    }
    return c;
}

// A small saga data struct, as a service would have.
struct OrderData {
    std::string order_id;
    std::int64_t amount_cents = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OrderData, order_id, amount_cents)

// Three no-op steps (each with a no-op compensation): what is measured is the
// engine and the store, not the steps.
class NoopSteps {
public:
    static constexpr std::string_view name = "bench_durable";
    awaitable<void> step(boong::StepContext<OrderData>&) { co_return; }
    awaitable<void> undo(boong::StepContext<OrderData>&) { co_return; }
};
using DurableSaga = boong::Saga<boong::Step<"reserve", &NoopSteps::step, &NoopSteps::undo>,
                                boong::Step<"charge", &NoopSteps::step, &NoopSteps::undo>,
                                boong::Step<"confirm", &NoopSteps::step, &NoopSteps::undo>>;

// Three steps whose second one hangs (until the saga is interrupted) while
// `hang` is set: how the sagas to recover are made. Once recovering, it counts
// the sagas that got as far as running it again.
class RecoverySteps {
public:
    static constexpr std::string_view name = "bench_recovery";
    bool hang = false;
    std::size_t entered = 0;  // sagas that started the second step (on the io_context's one thread)
    steady::time_point all_entered{};
    std::size_t expected = 0;

    awaitable<void> first(boong::StepContext<OrderData>&) { co_return; }
    awaitable<void> second(boong::StepContext<OrderData>&) {
        if (++entered == expected) all_entered = steady::now();
        if (hang) {
            asio::steady_timer forever(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
            co_await forever.async_wait(asio::use_awaitable);  // ends with operation_aborted at shutdown
        }
    }
    awaitable<void> third(boong::StepContext<OrderData>&) { co_return; }
    awaitable<void> undo(boong::StepContext<OrderData>&) { co_return; }
};
using RecoverySaga = boong::Saga<boong::Step<"reserve", &RecoverySteps::first, &RecoverySteps::undo>,
                                 boong::Step<"charge", &RecoverySteps::second, &RecoverySteps::undo>,
                                 boong::Step<"confirm", &RecoverySteps::third, &RecoverySteps::undo>>;

double seconds_between(steady::time_point a, steady::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

// CPU seconds (user + system) used by this process so far.
double process_cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// CPU seconds used so far by the PostgreSQL server (the postmaster and its
// children: backends, WAL writer, checkpointer...), from /proc. The
// postmaster's pid is the first line of postmaster.pid in its data
// directory. Exited backends are not counted: the benchmarks keep theirs open.
// Nothing (no error) when it cannot be read.
std::optional<double> server_cpu_seconds(const std::string& data_directory) {
    std::ifstream pidfile(data_directory + "/postmaster.pid");
    long postmaster = 0;
    if (!(pidfile >> postmaster) || postmaster <= 0) return std::nullopt;
    const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    double total = 0;
    bool found = false;
    DIR* proc = opendir("/proc");
    if (!proc) return std::nullopt;
    while (dirent* d = readdir(proc)) {
        char* end = nullptr;
        const long pid = std::strtol(d->d_name, &end, 10);
        if (pid <= 0 || *end != '\0') continue;
        std::ifstream stat("/proc/" + std::string(d->d_name) + "/stat");
        std::string line;
        if (!std::getline(stat, line)) continue;
        const auto close = line.rfind(')');  // the command name may hold spaces
        if (close == std::string::npos) continue;
        std::istringstream fields(line.substr(close + 2));
        std::string state;
        long ppid = 0;
        fields >> state >> ppid;
        if (pid != postmaster && ppid != postmaster) continue;
        std::string skip;
        for (int i = 0; i < 9; ++i) fields >> skip;  // pgrp .. cmajflt
        unsigned long long utime = 0, stime = 0;
        fields >> utime >> stime;
        total += static_cast<double>(utime + stime) / tick;
        found = true;
    }
    closedir(proc);
    if (!found) return std::nullopt;
    return total;
}

// The server's data directory: BOONG_BENCH_PG_DATA_DIR (bench.sh sets it),
// else what the server says (superusers only).
std::string server_data_directory() {
    if (const char* d = std::getenv("BOONG_BENCH_PG_DATA_DIR"); d && *d) return d;
    try {
        pqxx::connection c(pg_dsn());
        pqxx::nontransaction tx(c);
        return tx.exec1("SHOW data_directory")[0].c_str();
    } catch (const std::exception&) {
        return {};  // not a superuser: no server CPU figure
    }
}

void sql(const std::string& statement) {
    pqxx::connection c(pg_dsn());
    pqxx::nontransaction tx(c);
    tx.exec(statement);
}

std::int64_t sql_count(const std::string& query) {
    pqxx::connection c(pg_dsn());
    pqxx::nontransaction tx(c);
    return tx.exec1(query)[0].as<std::int64_t>();
}

// Runs the io_context until `done()` or `limit` passes; false on timeout.
template <class Done>
bool run_until(asio::io_context& ioc, Done&& done, std::chrono::seconds limit) {
    const auto end = steady::now() + limit;
    while (!done() && steady::now() < end) {
        ioc.restart();
        ioc.run_for(2ms);
    }
    return done();
}

// ---- saga_durable_throughput

using DurableOrchestrator = boong::SagaOrchestrator<DurableSaga, boong::PostgresEventStore, boong::PostgresSagaIndex>;

struct Throughput {
    steady::time_point window_start{}, window_end{};
    bool stopping = false;         // no new sagas after window_end
    std::size_t workers_done = 0;
    std::uint64_t completed = 0;   // in the window
    std::uint64_t not_completed = 0;
    std::uint64_t failures = 0;
    std::string first_failure;
    std::vector<double> latencies_ms;  // of the sagas that ended in the window
};

// One of the 256: runs sagas one after another until the window closes.
awaitable<void> saga_worker(DurableOrchestrator& orchestrator, Throughput& t, int worker) {
    std::uint64_t n = 0;
    while (!t.stopping) {
        OrderData data;
        data.order_id = "ord-" + std::to_string(worker) + "-" + std::to_string(n++);
        data.amount_cents = 12345;
        const auto start = steady::now();
        try {
            auto outcome = co_await orchestrator.run(std::move(data));
            const auto end = steady::now();
            if (end >= t.window_end) t.stopping = true;
            // Every saga that ends in the window counts, also one started in
            // the warm-up: the window always holds 256 sagas in flight.
            if (end >= t.window_start && end < t.window_end) {
                if (outcome.status == boong::SagaStatus::completed) {
                    ++t.completed;
                    t.latencies_ms.push_back(std::chrono::duration<double, std::milli>(end - start).count());
                } else {
                    ++t.not_completed;
                }
            }
        } catch (const std::exception& e) {
            if (t.failures++ == 0) t.first_failure = e.what();
            t.stopping = true;
        }
    }
    ++t.workers_done;
}

void saga_durable_throughput(benchmark::State& state) {
    if (!pg_usable(state)) return;
    spdlog::set_level(spdlog::level::warn);
    const auto measure = std::chrono::duration_cast<steady::duration>(
        std::chrono::duration<double>(env_number("BOONG_BENCH_SECONDS").value_or(8.0)));
    const std::string data_dir = server_data_directory();
    for (auto _ : state) {
        asio::io_context ioc(1);
        boong::PostgresEventStore store(ioc.get_executor(), config(kThroughputTable));
        store.open();
        boong::PostgresSagaIndex index(store);
        NoopSteps definition;
        boong::OrchestratorOptions options;
        options.name = "bench-durable";
        DurableOrchestrator orchestrator(definition, store, index, boong::SagaOptions{}, options);
        orchestrator.start();

        Throughput t;
        t.latencies_ms.reserve(1 << 20);
        const auto begin = steady::now();
        t.window_start = begin + kWarmUp;
        t.window_end = t.window_start + measure;
        for (int w = 0; w < kInFlight; ++w) asio::co_spawn(ioc, saga_worker(orchestrator, t, w), asio::detached);

        // Counters at the window's edges.
        boong::PostgresStoreStats s0, s1;
        double cpu0 = 0, cpu1 = 0;
        std::optional<double> pg0, pg1;
        bool edges_ok = run_until(ioc, [&] { return steady::now() >= t.window_start || t.stopping; }, 60s);
        s0 = store.stats();
        cpu0 = process_cpu_seconds();
        if (!data_dir.empty()) pg0 = server_cpu_seconds(data_dir);
        edges_ok = edges_ok && run_until(ioc, [&] { return steady::now() >= t.window_end || t.stopping; }, 120s);
        s1 = store.stats();
        cpu1 = process_cpu_seconds();
        if (!data_dir.empty()) pg1 = server_cpu_seconds(data_dir);
        const double window = seconds_between(t.window_start, t.window_end);

        // The sagas still running finish (nothing is left interrupted), then the orchestrator stops.
        t.stopping = true;
        const bool drained = run_until(ioc, [&] { return t.workers_done == kInFlight; }, 120s);
        bool stopped = false;
        asio::co_spawn(ioc, orchestrator.stop(), [&](std::exception_ptr) { stopped = true; });
        run_until(ioc, [&] { return stopped; }, 30s);

        if (t.failures) {
            std::cerr << "bench_durable: a saga failed: " << t.first_failure << "\n";
            state.SkipWithError("sagas failed");
            return;
        }
        if (!edges_ok || !drained || !stopped) {
            state.SkipWithError("the benchmark did not finish in time");
            return;
        }
        if (t.not_completed) {
            state.SkipWithError("a saga did not complete");
            return;
        }
        const double sagas_per_s = static_cast<double>(t.completed) / window;
        state.counters["sagas_per_s"] = sagas_per_s;
        report(state, "steps_per_s", sagas_per_s * kSteps, "BOONG_BENCH_BASELINE_SAGA_STEPS");
        state.counters["saga_p50_ms"] = percentile(t.latencies_ms, 0.50);
        state.counters["saga_p99_ms"] = percentile(t.latencies_ms, 0.99);
        // Group commit at work: events and appends per append transaction.
        const auto transactions = static_cast<double>(s1.append_transactions - s0.append_transactions);
        if (transactions > 0) {
            state.counters["events_per_transaction"] =
                static_cast<double>(s1.events_written - s0.events_written) / transactions;
            state.counters["appends_per_transaction"] = static_cast<double>(s1.appends - s0.appends) / transactions;
            state.counters["transactions_per_s"] = transactions / window;
        }
        state.counters["appends_per_saga"] =
            t.completed ? static_cast<double>(s1.appends - s0.appends) / static_cast<double>(t.completed) : 0.0;
        // Where the two cores went: this process and the server, in cores busy.
        state.counters["client_cpu_cores"] = (cpu1 - cpu0) / window;
        if (pg0 && pg1) {
            state.counters["server_cpu_cores"] = (*pg1 - *pg0) / window;
            if (t.completed) {
                state.counters["server_cpu_us_per_step"] =
                    (*pg1 - *pg0) * 1e6 / static_cast<double>(t.completed * kSteps);
            }
        }
    }
}

// ---- recovery_time

using RecoveryRunner = boong::SagaRunner<RecoverySaga, boong::PostgresEventStore>;
using RecoveryOrchestrator =
    boong::SagaOrchestrator<RecoverySaga, boong::PostgresEventStore, boong::PostgresSagaIndex>;

// What a process named "bench-node" leaves behind when it dies: 10,000 sagas
// stopped inside their second step (first step completed, second started),
// held by its incarnation "bench-node/old". Returns an error message, or "".
std::string interrupt_sagas(std::size_t count) {
    asio::io_context ioc(1);
    boong::PostgresEventStore store(ioc.get_executor(), config(kRecoveryTable));
    store.open();
    RecoverySteps definition;
    definition.hang = true;
    definition.expected = count;
    boong::SagaOptions saga_options;
    saga_options.defaults.timeout = 0ms;  // the hanging step waits for the shutdown, however long the setup takes
    boong::RunnerOptions runner_options;
    runner_options.owner = "bench-node/old";
    runner_options.lease = 30000ms;
    RecoveryRunner runner(definition, store, saga_options, runner_options);

    std::size_t ended = 0, aborted = 0;
    std::string unexpected;
    for (std::size_t i = 0; i < count; ++i) {
        OrderData data;
        data.order_id = "ord-" + std::to_string(i);
        data.amount_cents = 12345;
        runner.async_run(std::move(data), boong::RunOptions{},
                         [&](std::exception_ptr e, boong::SagaOutcome<OrderData>) {
                             ++ended;
                             if (!e) {
                                 if (unexpected.empty()) unexpected = "a saga ended before its shutdown";
                                 return;
                             }
                             try {
                                 std::rethrow_exception(e);
                             } catch (const boost::system::system_error& x) {
                                 if (x.code() == asio::error::operation_aborted) {
                                     ++aborted;
                                 } else if (unexpected.empty()) {
                                     unexpected = x.what();
                                 }
                             } catch (const std::exception& x) {
                                 if (unexpected.empty()) unexpected = x.what();
                             }
                         });
    }
    if (!run_until(ioc, [&] { return definition.entered >= count || ended > 0; }, 300s)) {
        return "the sagas to recover did not all reach their second step in time";
    }
    runner.shutdown();
    if (!run_until(ioc, [&] { return ended == count; }, 120s)) return "interrupting the sagas did not end them";
    if (!unexpected.empty()) return "making the sagas to recover: " + unexpected;
    if (aborted != count) return "not every saga was interrupted";
    return {};
}

void recovery_time(benchmark::State& state) {
    if (!pg_usable(state)) return;
    spdlog::set_level(spdlog::level::warn);
    const auto claim_batch = static_cast<std::size_t>(env_number("BOONG_BENCH_CLAIM_BATCH").value_or(1000));
    for (auto _ : state) {
        state.PauseTiming();
        // A clean table for each run: only this run's 10,000 sagas.
        std::string sagas_table;
        {
            asio::io_context ioc(1);
            boong::PostgresEventStore store(ioc.get_executor(), config(kRecoveryTable));
            store.open();
            const auto& tables = store.tables();
            // History is immutable (schema version 6): the owner resets the
            // bench table on purpose, its history triggers off meanwhile.
            sql("ALTER TABLE " + tables.events + " DISABLE TRIGGER USER; TRUNCATE " + tables.events + ", " +
                tables.sagas + "; ALTER TABLE " + tables.events + " ENABLE TRIGGER USER");
            sagas_table = tables.sagas;
        }
        if (auto error = interrupt_sagas(kRecoverySagas); !error.empty()) {
            std::cerr << "bench_durable: " << error << "\n";
            state.SkipWithError("could not make the sagas to recover");
            return;
        }
        const auto left = sql_count(
            "SELECT count(*) FROM " + sagas_table + " WHERE phase = 'running' AND owner = 'bench-node/old'");
        if (left != static_cast<std::int64_t>(kRecoverySagas)) {
            std::cerr << "bench_durable: " << left << " interrupted sagas stored, not " << kRecoverySagas << "\n";
            state.SkipWithError("the sagas to recover are not as expected");
            return;
        }
        state.ResumeTiming();

        // The restarted process: from making its store to every saga resumed / finished.
        const auto start = steady::now();
        const double cpu0 = process_cpu_seconds();
        asio::io_context ioc(1);
        boong::PostgresEventStore store(ioc.get_executor(), config(kRecoveryTable));
        store.open();
        boong::PostgresSagaIndex index(store);
        RecoverySteps definition;
        definition.expected = kRecoverySagas;
        boong::OrchestratorOptions options;
        options.name = "bench-node";
        options.claim_batch = claim_batch;
        options.max_running = kRecoverySagas;
        RecoveryOrchestrator orchestrator(definition, store, index, boong::SagaOptions{}, options);
        std::size_t finished = 0, completed = 0;
        steady::time_point all_finished{};
        std::string failure;
        orchestrator.on_outcome([&](const std::string&, std::exception_ptr e, const boong::SagaOutcome<OrderData>& o) {
            if (!e && o.status == boong::SagaStatus::completed) {
                ++completed;
            } else if (failure.empty()) {
                failure = e ? boong::describe(e) : "a resumed saga did not complete";
            }
            if (++finished == kRecoverySagas) all_finished = steady::now();
        });
        orchestrator.start();
        const bool done = run_until(ioc, [&] { return finished >= kRecoverySagas; }, 300s);
        const auto stats = orchestrator.stats();
        const double cpu = process_cpu_seconds() - cpu0;
        bool stopped = false;
        asio::co_spawn(ioc, orchestrator.stop(), [&](std::exception_ptr) { stopped = true; });
        run_until(ioc, [&] { return stopped; }, 30s);

        if (!done || definition.entered < kRecoverySagas) {
            state.SkipWithError("the sagas were not all recovered in 300 s");
            return;
        }
        if (!failure.empty() || completed != kRecoverySagas) {
            std::cerr << "bench_durable: a resumed saga failed: " << failure << "\n";
            state.SkipWithError("resumed sagas failed");
            return;
        }
        state.counters["resumed_s"] = seconds_between(start, definition.all_entered);
        state.counters["finished_s"] = seconds_between(start, all_finished);
        state.counters["target_s"] = kRecoveryTargetSeconds;
        state.counters["sagas_claimed"] = static_cast<double>(stats.claimed);
        state.counters["client_cpu_s"] = cpu;
    }
}

// Creates the tables through the store (exact shape) and fills the
// baseline's saga table with kBaselineSagaRows rows for pgbench to update.
int prepare() {
    asio::io_context ioc;
    for (const char* table : {kThroughputTable, kRecoveryTable, kBaselineTable}) {
        boong::PostgresEventStore store(ioc.get_executor(), config(table));
        store.open();
    }
    pqxx::connection c(pg_dsn());
    pqxx::work tx(c);
    const std::string sagas = std::string(kBaselineTable) + "_sagas";
    tx.exec("TRUNCATE " + sagas);
    tx.exec_params("INSERT INTO " + sagas +
                       " (saga_id, saga_type, phase, version, started_at, updated_at)"
                       " SELECT 'b' || g, 'pgbench', 'running', 0, now(), now() FROM generate_series(1, $1::bigint) AS g",
                   kBaselineSagaRows);
    tx.exec(std::string("CREATE SEQUENCE IF NOT EXISTS ") + kBaselineTable + "_seq");
    tx.commit();
    pqxx::nontransaction vacuum(c);
    vacuum.exec("VACUUM ANALYZE " + sagas);
    std::cout << "bench_durable: prepared " << sagas << " (" << kBaselineSagaRows << " saga rows)\n";
    return 0;
}

}  // namespace

BENCHMARK(saga_durable_throughput)->Name("saga_durable_throughput")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(recovery_time)->Name("recovery_time")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) { return boong::bench::pg_main("bench_durable", argc, argv, prepare); }
