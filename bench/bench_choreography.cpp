// bench_choreography: the design's order flow end to end. The order, payment
// and inventory services of examples/order_services run as processes on the
// private PostgreSQL and Redis that scripts/bench.sh started; a closed-loop
// load places orders over HTTP (64 keep-alive connections, each placing its
// next order when the last one was answered), and the events table says
// what the services did:
//
//   completed_per_s     orders that became final (OrderConfirmed or
//                       OrderCancelled stored) per second, in the measured
//                       window; its baseline: the same run's pgbench
//                       one-insert-per-transaction rate (as pg_append_concurrent's)
//   accepted_per_s      orders stored (OrderCreated) per second in the window
//   events_per_s        events of every kind stored per second in the window
//   completion_p50_ms/_p99_ms  from OrderCreated to final, for the orders that
//                       became final in the window
//   drain_s             after the load stops, until every accepted order is final
//
//   choreography_orders  --mode events: the three services react to each other
//   saga_orders          --mode saga: the order service alone, one orchestrated saga per order
//
// The order mix is the integration test's: one order in six declined (over
// the payment limit), one in six out of stock, the rest confirmed.
//
// Environment: BOONG_BENCH_PG_DSN, BOONG_BENCH_REDIS_HOST, BOONG_BENCH_REDIS_PORT
// (required); BOONG_BENCH_BASELINE_APPEND_CONCURRENT (pgbench events/s).
// `bench_choreography --boong-prepare` makes the pgbench baseline's table.
#include <boong/postgres/store.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "pg_bench.hpp"
#include "report.hpp"

#include <benchmark/benchmark.h>
#include <libpq-fe.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#ifndef BOONG_ORDER_SERVICES_DIR
#error "BOONG_ORDER_SERVICES_DIR: where order_service, payment_service and inventory_service are"
#endif

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr int kClients = 64;
constexpr auto kWarmUp = 5s;
constexpr auto kMeasure = 20s;
constexpr auto kDrainLimit = 180s;

using boong::bench::pg_dsn;
using boong::bench::pg_usable;
using boong::bench::report;

// The DSN without its password, and the password: a service takes the
// password from its environment, never from its command line.
std::pair<std::string, std::string> split_password(const std::string& dsn) {
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &error);
    if (!options) {
        std::string why = error ? error : "";
        PQfreemem(error);
        throw std::runtime_error("BOONG_BENCH_PG_DSN does not parse: " + why);
    }
    std::string bare, password;
    for (const PQconninfoOption* o = options; o->keyword; ++o) {
        if (!o->val || !*o->val) continue;
        if (std::string(o->keyword) == "password") {
            password = o->val;
            continue;
        }
        bare += std::string(bare.empty() ? "" : " ") + o->keyword + "='" + o->val + "'";
    }
    PQconninfoFree(options);
    return {bare, password};
}

int free_port() {
    asio::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

// The services of one run, stopped (SIGTERM, then SIGKILL after 10 s) when it ends.
class Services {
public:
    Services(const std::string& mode, const std::string& table, int http_port, int redis_db) {
        const auto [bare, password] = split_password(pg_dsn());
        const std::string redis =
            std::string(std::getenv("BOONG_BENCH_REDIS_HOST")) + ":" + std::getenv("BOONG_BENCH_REDIS_PORT");
        std::vector<std::string> names{"order_service"};
        if (mode == "events") names.insert(names.end(), {"payment_service", "inventory_service"});
        for (const auto& name : names) {
            std::vector<std::string> args{std::string(BOONG_ORDER_SERVICES_DIR) + "/" + name,
                                          "--dsn", bare, "--redis", redis, "--redis-db", std::to_string(redis_db),
                                          "--table", table, "--log-level", "warn"};
            if (name == "order_service") {
                args.insert(args.end(), {"--http", std::to_string(http_port), "--mode", mode});
            }
            const pid_t pid = ::fork();
            if (pid == 0) {
                if (!password.empty()) ::setenv("BOONG_PG_PASSWORD", password.c_str(), 1);
                std::vector<char*> argv;
                for (auto& a : args) argv.push_back(a.data());
                argv.push_back(nullptr);
                ::execv(argv[0], argv.data());
                ::_exit(127);
            }
            if (pid < 0) throw std::runtime_error("fork failed");
            pids_.push_back(pid);
        }
    }
    ~Services() {
        for (auto pid : pids_) ::kill(pid, SIGTERM);
        const auto until = steady::now() + 10s;
        for (auto pid : pids_) {
            int status = 0;
            while (::waitpid(pid, &status, WNOHANG) == 0) {
                if (steady::now() > until) {
                    ::kill(pid, SIGKILL);
                    ::waitpid(pid, &status, 0);
                    break;
                }
                std::this_thread::sleep_for(20ms);
            }
        }
    }
    Services(const Services&) = delete;
    Services& operator=(const Services&) = delete;

    // False when a service has exited.
    bool alive() {
        for (auto pid : pids_) {
            int status = 0;
            if (::waitpid(pid, &status, WNOHANG) == pid) return false;
        }
        return true;
    }

private:
    std::vector<pid_t> pids_;
};

// An order of the integration test's mix.
std::string order_body(int n) {
    json items = json::array();
    double amount = 10 + n % 90;
    const int kind = n % 6;
    if (kind == 4) {  // out of stock: 3 rare in stock, never more
        items.push_back({{"sku", "widget"}, {"quantity", 1}});
        items.push_back({{"sku", "rare"}, {"quantity", 5}});
    } else {
        items.push_back({{"sku", "widget"}, {"quantity", 1 + n % 3}});
        if (n % 2 == 0) items.push_back({{"sku", "gadget"}, {"quantity", 2}});
        if (kind == 1) amount = 1000.01 + n % 100;  // over the payment limit
    }
    return json{{"customer", "customer-" + std::to_string(n % 17)},
                {"items", items},
                {"amount", amount},
                {"payment_method", "card"}}
        .dump();
}

struct Load {
    std::uint64_t accepted = 0, refused = 0, errors = 0;
};

// One client: POSTs an order, waits for the answer, POSTs the next, until
// `end`; on 429 waits as Retry-After says (1 s).
asio::awaitable<void> client(int port, int id, steady::time_point end, Load& load) {
    auto ex = co_await asio::this_coro::executor;
    tcp::socket socket(ex);
    boost::beast::flat_buffer buffer;
    asio::steady_timer pause(ex);
    int n = id;
    while (steady::now() < end) {
        try {
            if (!socket.is_open()) {
                co_await socket.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                                            static_cast<unsigned short>(port)),
                                              asio::use_awaitable);
            }
            http::request<http::string_body> req{http::verb::post, "/api/orders", 11};
            req.set(http::field::host, "127.0.0.1");
            req.set(http::field::content_type, "application/json");
            req.keep_alive(true);
            req.body() = order_body(n);
            n += kClients;
            req.prepare_payload();
            co_await http::async_write(socket, req, asio::use_awaitable);
            http::response<http::string_body> res;
            co_await http::async_read(socket, buffer, res, asio::use_awaitable);
            if (res.result_int() == 202) {
                ++load.accepted;
            } else if (res.result_int() == 429) {
                ++load.refused;
                pause.expires_after(1s);
                co_await pause.async_wait(asio::use_awaitable);
            } else {
                ++load.errors;
            }
            if (!res.keep_alive()) socket.close();
        } catch (const std::exception&) {
            ++load.errors;
            boost::system::error_code ignored;
            socket.close(ignored);
        }
        if (load.errors > 1000) co_return;  // the service is gone: the benchmark says so
    }
}

Load place_orders(int port, steady::time_point end) {
    Load load;
    asio::io_context ioc(1);
    for (int i = 0; i < kClients; ++i) asio::co_spawn(ioc, client(port, i, end, load), asio::detached);
    ioc.run();
    return load;
}

bool wait_ready(int port, Services& services) {
    const auto until = steady::now() + 60s;
    while (steady::now() < until && services.alive()) {
        try {
            asio::io_context ioc;
            tcp::socket socket(ioc);
            socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
            http::request<http::string_body> req{http::verb::get, "/api/orders/00000000-0000-7000-8000-000000000000", 11};
            req.set(http::field::host, "127.0.0.1");
            http::write(socket, req);
            boost::beast::flat_buffer buffer;
            http::response<http::string_body> res;
            http::read(socket, buffer, res);
            if (res.result_int() == 404) return true;
        } catch (const std::exception&) {
        }
        std::this_thread::sleep_for(100ms);
    }
    return false;
}

std::string unique_tag() {
    return std::to_string(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
}

// The whole flow in `mode`, reported into `state`.
void run_orders(benchmark::State& state, const std::string& mode, int redis_db) {
    if (!pg_usable(state)) return;
    if (!std::getenv("BOONG_BENCH_REDIS_HOST") || !std::getenv("BOONG_BENCH_REDIS_PORT")) {
        state.SkipWithError("BOONG_BENCH_REDIS_HOST/PORT are not set (scripts/bench.sh sets them)");
        return;
    }
    const std::string table = "bench_orders_" + mode + "_" + unique_tag();
    const int port = free_port();
    pqxx::connection c(pg_dsn());
    const auto server_now = [&] {
        pqxx::nontransaction tx(c);
        return tx.exec1("SELECT clock_timestamp()::text")[0].as<std::string>();
    };
    const auto count = [&](const std::string& where, const std::string& from, const std::string& to) {
        pqxx::nontransaction tx(c);
        return tx.exec_params1("SELECT count(*) FROM " + table + " WHERE " + where +
                                   " AND stored_at >= $1::timestamptz AND stored_at < $2::timestamptz",
                               from, to)[0]
            .as<double>();
    };
    const std::string final_types = "type IN ('OrderConfirmed', 'OrderCancelled')";
    Load load;
    double seconds = 0, completed = 0, accepted = 0, events = 0, p50 = 0, p99 = 0, drain = 0;
    std::int64_t unfinished = 0;
    {
        Services services(mode, table, port, redis_db);
        if (!wait_ready(port, services)) {
            state.SkipWithError("the order service did not answer within 60 s");
            return;
        }
        for (auto _ : state) {
            const auto start = steady::now();
            std::string from, to;
            std::thread placing([&] { load = place_orders(port, start + kWarmUp + kMeasure); });
            std::this_thread::sleep_until(start + kWarmUp);
            from = server_now();
            std::this_thread::sleep_until(start + kWarmUp + kMeasure);
            to = server_now();
            placing.join();
            {
                // The window as the server's clock saw it: the same clock as stored_at.
                pqxx::nontransaction tx(c);
                seconds = tx.exec_params1("SELECT extract(epoch FROM $2::timestamptz - $1::timestamptz)", from, to)[0]
                              .as<double>();
            }
            completed = count(final_types, from, to);
            accepted = count("type = 'OrderCreated'", from, to);
            events = count("true", from, to);
            pqxx::nontransaction tx(c);
            const auto row = tx.exec_params1(
                "SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY d), 0),"
                " coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY d), 0) FROM ("
                " SELECT extract(epoch FROM f.stored_at - c.stored_at) * 1000 AS d FROM " +
                    table + " f JOIN " + table +
                    " c ON c.stream_id = f.stream_id AND c.type = 'OrderCreated'"
                    " WHERE f." + final_types +
                    " AND f.stored_at >= $1::timestamptz AND f.stored_at < $2::timestamptz) AS t",
                from, to);
            p50 = row[0].as<double>();
            p99 = row[1].as<double>();
            // Every accepted order ends: how long until the backlog is gone.
            const auto stopped = steady::now();
            for (;;) {
                const auto r = tx.exec1("SELECT (SELECT count(*) FROM " + table +
                                        " WHERE type = 'OrderCreated') - (SELECT count(*) FROM " + table + " WHERE " +
                                        final_types + ")");
                unfinished = r[0].as<std::int64_t>();
                if (unfinished <= 0 || steady::now() - stopped > kDrainLimit || !services.alive()) break;
                std::this_thread::sleep_for(200ms);
            }
            drain = std::chrono::duration<double>(steady::now() - stopped).count();
        }
        if (!services.alive()) state.SkipWithError("a service exited during the run");
    }
    if (unfinished > 0) state.SkipWithError("orders were still not final after the drain limit");
    if (load.errors > 0) state.SkipWithError("requests failed (not 202 or 429)");
    report(state, "completed_per_s", completed / seconds, "BOONG_BENCH_BASELINE_APPEND_CONCURRENT");
    state.counters["accepted_per_s"] = accepted / seconds;
    state.counters["events_per_s"] = events / seconds;
    state.counters["completion_p50_ms"] = p50;
    state.counters["completion_p99_ms"] = p99;
    state.counters["drain_s"] = drain;
    state.counters["refused_429"] = static_cast<double>(load.refused);
    pqxx::nontransaction tx(c);
    tx.exec("DROP TABLE IF EXISTS " + table + " CASCADE");
}

void choreography_orders(benchmark::State& state) { run_orders(state, "events", 1); }
void saga_orders(benchmark::State& state) { run_orders(state, "saga", 2); }

// The pgbench baseline's table, made through the store (its exact shape).
int prepare() {
    asio::io_context ioc;
    boong::PostgresStoreConfig cfg;
    cfg.connection = pg_dsn();
    cfg.table_name = "bench_pgbench";
    cfg.snapshot_table_name = "bench_pgbench_snapshots";
    boong::PostgresEventStore store(ioc.get_executor(), cfg);
    store.open();
    pqxx::connection c(pg_dsn());
    pqxx::nontransaction tx(c);
    tx.exec("CREATE SEQUENCE IF NOT EXISTS bench_pgbench_seq");
    std::cout << "bench_choreography: prepared bench_pgbench\n";
    return 0;
}

}  // namespace

BENCHMARK(choreography_orders)->Name("choreography_orders")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(saga_orders)->Name("saga_orders")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) { return boong::bench::pg_main("bench_choreography", argc, argv, prepare); }
