// The chaos proof of durable execution (CTest label `chaos`): 1,000 order
// sagas across two orchestrator processes (chaos_node) while a killer sends
// SIGKILL to a random one at random moments and restarts it; optionally
// PostgreSQL, Redis or RabbitMQ restarts mid-run (`rabbitmq`: the relay
// publishes to RabbitMQ instead of Redis), or PostgreSQL is down for 20 s
// (`outage`: far longer than the leases, the retry delays and the steps'
// attempts add up to). Then it checks, and fails loudly:
//   - every saga is terminal, with the outcome its failures imply;
//   - each completed saga's effects applied exactly once; each compensated
//     saga's completed steps compensated exactly once, in reverse order;
//   - no step of one saga ran in two processes at once;
//   - the outbox is drained and every stored event reached the broker;
//   - no event is duplicated in the store (one completion per step, one end).
//
//   chaos_test kill|postgres|redis|rabbitmq|outage
//     (env: BOONG_TEST_PG_DSN, BOONG_TEST_REDIS_HOST/PORT, BOONG_TEST_PG_RESTART,
//      BOONG_TEST_REDIS_RESTART, BOONG_TEST_PG_STOP, BOONG_TEST_PG_START; for
//      rabbitmq BOONG_TEST_RABBITMQ_HOST/PORT/USER/PASSWORD/RESTART instead of Redis's)
#include "chaos_saga.hpp"

#include <boong/backends.hpp>
#include <boong/redis/broker.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <pqxx/pqxx>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#ifndef CHAOS_NODE_PATH
#error "CHAOS_NODE_PATH must name the chaos_node executable"
#endif

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kSagas = 1000;
constexpr int kMinKills = 5;
constexpr auto kTimeLimit = 300s;
constexpr auto kOutage = 20s;  // the `outage` scenario: how long PostgreSQL stays down

// Printed as they happen and again at the end, where a truncated log keeps them.
std::vector<std::string> failures;
void check(bool ok, const std::string& what) {
    if (!ok) {
        failures.push_back(what);
        std::cerr << "chaos: FAILED: " << what << "\n";
    }
}

std::string env(const char* name, bool required = true) {
    const char* v = std::getenv(name);
    if ((!v || !*v) && required) {
        std::cerr << "chaos: " << name << " is not set: run through scripts/test.sh\n";
        std::exit(2);
    }
    return v ? v : "";
}

// "exited with status 2", "was killed by signal 11 (Segmentation fault)".
std::string how_it_ended(int status) {
    if (WIFEXITED(status)) return "exited on its own with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + ::strsignal(WTERMSIG(status)) + ")" +
               (WCOREDUMP(status) ? ", core dumped" : "");
    }
    return "ended (status " + std::to_string(status) + ")";
}

struct Node {
    std::string name;
    int first = 0;
    pid_t pid = -1;
    std::optional<Clock::time_point> restart_at;
};

struct Driver {
    std::string dsn = env("BOONG_TEST_PG_DSN");
    std::string scenario;
    std::string broker = scenario == "rabbitmq" ? "rabbitmq" : "redis";
    std::string broker_at = broker == "rabbitmq"
                                ? env("BOONG_TEST_RABBITMQ_HOST") + ":" + env("BOONG_TEST_RABBITMQ_PORT")
                                : env("BOONG_TEST_REDIS_HOST") + ":" + env("BOONG_TEST_REDIS_PORT");
    std::string run_id;
    std::string table;
    chaos::Tables tables;
    std::unique_ptr<pqxx::connection> db;
    std::mt19937 rng{std::random_device{}()};
    std::vector<Node> nodes;
    int kills = 0;

    Driver(std::string s, std::string id)
        : scenario(std::move(s)), run_id(std::move(id)), table("chaos_" + scenario + "_" + run_id), tables(table),
          db(std::make_unique<pqxx::connection>(dsn)) {}

    pqxx::result sql(const std::string& q) {
        pqxx::nontransaction tx(*db);
        return tx.exec(q);
    }
    long long scalar(const std::string& q) { return sql(q)[0][0].as<long long>(); }

    void spawn(Node& n) {
        const std::string count = std::to_string(kSagas / 2), first = std::to_string(n.first);
        std::vector<std::string> args{CHAOS_NODE_PATH, "--dsn",   dsn,   "--broker", broker, "--at",
                                      broker_at,       "--table", table, "--run",    run_id, "--name",
                                      n.name,          "--first", first, "--count",  count};
        const pid_t pid = fork();
        if (pid == 0) {
            std::vector<char*> argv;
            for (auto& s : args) argv.push_back(s.data());
            argv.push_back(nullptr);
            execv(argv[0], argv.data());
            _exit(127);
        }
        n.pid = pid;
        n.restart_at.reset();
    }

    // Records when a process ended: attempts it left unfinished ended then.
    void ended(pid_t pid) { sql("INSERT INTO " + tables.kills + " VALUES (" + std::to_string(pid) + ", clock_timestamp())"); }

    void kill_one() {
        auto& n = nodes[std::uniform_int_distribution<std::size_t>(0, nodes.size() - 1)(rng)];
        if (n.pid <= 0) return;
        ::kill(n.pid, SIGKILL);
        ::waitpid(n.pid, nullptr, 0);
        ended(n.pid);
        ++kills;
        // Half come straight back (and take their sagas back at once); the
        // others stay away past the lease, so the survivor takes them over.
        const bool soon = std::bernoulli_distribution(0.5)(rng);
        std::cout << "chaos: killed " << n.name << " (pid " << n.pid << "), back " << (soon ? "now" : "in 3 s") << "\n";
        n.pid = -1;
        n.restart_at = Clock::now() + (soon ? 0s : 3s);
    }

    void restart_server(const char* var) {
        const std::string cmd = env(var);
        std::cout << "chaos: " << var << "\n";
        const int rc = std::system(cmd.c_str());
        check(rc == 0, std::string(var) + " failed: " + cmd);
    }

    // A RabbitMQ restart takes seconds (~8 s here): it runs beside the loop,
    // so that nodes keep being killed and restarted, and relaying, meanwhile.
    std::thread restarting;
    std::atomic<int> restart_rc{0};
    std::atomic<bool> restart_done{false};
    void restart_server_in_background(const char* var) {
        const std::string cmd = env(var);
        std::cout << "chaos: " << var << " (in the background)\n";
        restarting = std::thread([this, cmd] {
            restart_rc = std::system(cmd.c_str());
            restart_done = true;
        });
    }
    void restart_finished(const char* var) {
        if (!restarting.joinable()) return;
        restarting.join();
        check(restart_rc == 0, std::string(var) + " failed: " + env(var));
    }

    long long terminal() {
        return scalar("SELECT count(*) FROM " + table + "_sagas WHERE phase IN ('completed', 'compensated', 'failed')");
    }
    long long pending() {
        return scalar("SELECT count(*) FROM " + table + " WHERE position > coalesce((SELECT position FROM " + table +
                      "_outbox WHERE relay = 'chaos'), 0)");
    }

    int drive() {
        sql(tables.create_sql());
        nodes = {Node{"node-a", 0, -1, std::nullopt}, Node{"node-b", kSagas / 2, -1, std::nullopt}};
        // The first node creates the schema; the second starts once it exists.
        spawn(nodes[0]);
        for (int i = 0; i < 100 && scalar("SELECT count(*) FROM pg_tables WHERE tablename = '" + table + "_outbox'") == 0; ++i) {
            std::this_thread::sleep_for(100ms);
        }
        spawn(nodes[1]);
        const auto start = Clock::now();
        auto next_kill = start + 1500ms;
        bool server_restarted = scenario == "kill";
        // The `outage` scenario: when PostgreSQL comes back (max: not down).
        Clock::time_point outage_until = Clock::time_point::max();
        for (;;) {
            std::this_thread::sleep_for(100ms);
            const auto now = Clock::now();
            for (auto& n : nodes) {
                if (n.pid < 0 && n.restart_at && now >= *n.restart_at) spawn(n);
                int status = 0;
                if (n.pid > 0 && ::waitpid(n.pid, &status, WNOHANG) == n.pid) {
                    check(false, n.name + " (pid " + std::to_string(n.pid) + ") " + how_it_ended(status));
                    ended(n.pid);
                    n.pid = -1;
                    n.restart_at = now;
                }
            }
            const bool some_node_up = std::any_of(nodes.begin(), nodes.end(), [](const Node& n) { return n.pid > 0; });
            if (!server_restarted && now - start > 4s && some_node_up) {
                if (scenario == "outage") {
                    restart_server("BOONG_TEST_PG_STOP");
                    outage_until = Clock::now() + kOutage;
                } else if (scenario == "rabbitmq") {
                    restart_server_in_background("BOONG_TEST_RABBITMQ_RESTART");
                } else {
                    restart_server(scenario == "postgres" ? "BOONG_TEST_PG_RESTART" : "BOONG_TEST_REDIS_RESTART");
                }
                server_restarted = true;
            }
            if (now >= outage_until) {
                restart_server("BOONG_TEST_PG_START");
                outage_until = Clock::time_point::max();
            }
            long long done = -1, left = -1;
            try {
                done = terminal();
                left = pending();
            } catch (const std::exception&) {
                try {
                    db = std::make_unique<pqxx::connection>(dsn);  // the server restarted under us
                } catch (const std::exception&) {
                    // still down: try again on the next round
                }
                continue;
            }
            const bool finished = done == kSagas && left == 0;
            const bool restart_over = !restarting.joinable() || restart_done;
            if (finished && kills >= kMinKills && restart_over) break;
            // The outage must hit running orchestrators, not ones restarting.
            const bool quiet = scenario == "outage" && (now - start > 2500ms) && (!server_restarted || outage_until != Clock::time_point::max());
            if (now >= next_kill && !quiet && (!finished || kills < kMinKills)) {
                kill_one();
                next_kill = now + std::chrono::milliseconds(std::uniform_int_distribution<int>(700, 2000)(rng));
            }
            if (now - start > kTimeLimit) {
                check(false, "not finished within " + std::to_string(kTimeLimit.count()) + " s: " + std::to_string(done) +
                                 " sagas terminal, " + std::to_string(left) + " events not yet published");
                break;
            }
        }
        restart_finished("BOONG_TEST_RABBITMQ_RESTART");
        const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
        for (auto& n : nodes) {
            if (n.pid > 0) {
                ::kill(n.pid, SIGTERM);
                ::waitpid(n.pid, nullptr, 0);
                ended(n.pid);
            }
        }
        std::cout << "chaos: " << scenario << ": " << kSagas << " sagas in " << seconds << " s with " << kills
                  << " kills\n";
        verify();
        for (const auto& f : failures) std::cout << "chaos: FAILED: " << f << "\n";
        return failures.empty() ? 0 : 1;
    }

    void verify() {
        const std::string prefix = run_id + "-";
        // 1. Every saga is terminal with the outcome its failures imply.
        std::map<int, std::string> phase;
        for (const auto& r : sql("SELECT saga_id, phase FROM " + table + "_sagas")) {
            const std::string id = r[0].as<std::string>();
            if (id.rfind(prefix, 0) == 0) phase[std::stoi(id.substr(prefix.size()))] = r[1].as<std::string>();
        }
        check(phase.size() == kSagas, std::to_string(phase.size()) + " sagas stored, expected " + std::to_string(kSagas));
        int wrong = 0, completed = 0, compensated = 0;
        for (const auto& [n, p] : phase) {
            const std::string want = chaos::completes(n) ? "completed" : "compensated";
            if (p != want && ++wrong <= 5) check(false, "saga " + std::to_string(n) + " is " + p + ", expected " + want);
            completed += p == "completed";
            compensated += p == "compensated";
        }
        check(wrong == 0, std::to_string(wrong) + " sagas with the wrong outcome");

        // 2. Effects: exactly once forward; compensations exactly once, reversed.
        std::map<std::string, std::vector<std::pair<std::string, std::string>>> effects;  // saga -> (kind, step) by seq
        for (const auto& r : sql("SELECT saga, kind, step FROM " + tables.effects + " ORDER BY seq")) {
            effects[r[0].as<std::string>()].emplace_back(r[1].as<std::string>(), r[2].as<std::string>());
        }
        int bad_effects = 0;
        for (int n = 0; n < kSagas; ++n) {
            const auto& got = effects[prefix + std::to_string(n)];
            std::vector<std::pair<std::string, std::string>> want;
            if (chaos::completes(n)) {
                want = {{"do", "reserve"}, {"do", "charge"}, {"do", "confirm"}};
            } else if (chaos::declined(n)) {
                want = {{"do", "reserve"}, {"undo", "reserve"}};
            } else {
                want = {{"do", "reserve"}, {"do", "charge"}, {"undo", "charge"}, {"undo", "reserve"}};
            }
            if (got != want && ++bad_effects <= 5) {
                std::string g;
                for (const auto& [k, s] : got) g += k + ":" + s + " ";
                check(false, "saga " + std::to_string(n) + " effects in order: " + g);
            }
        }
        check(bad_effects == 0, std::to_string(bad_effects) + " sagas whose effects are not exactly once, in order");

        // 3. No step of one saga ran in two processes at once. Every attempt
        // end is in a file too; those the database missed (it was down, or
        // the node was killed while it waited) are taken from there.
        std::size_t ends_from_files = 0;
        if (std::filesystem::exists(tables.ends_dir)) {
            for (const auto& file : std::filesystem::directory_iterator(tables.ends_dir)) {
                std::ifstream in(file.path());
                long long id = 0;
                std::string at;
                while (in >> id >> at) {
                    const auto updated = sql("UPDATE " + tables.attempts + " SET finished_at = '" + at +
                                             "'::timestamptz WHERE id = " + std::to_string(id) +
                                             " AND finished_at IS NULL");
                    ends_from_files += static_cast<std::size_t>(updated.affected_rows());
                }
            }
            std::filesystem::remove_all(tables.ends_dir);
        }
        if (ends_from_files > 0) std::cout << "chaos: " << ends_from_files << " attempt ends taken from files (the database missed them)\n";
        const long long overlaps = scalar(
            "WITH ends AS (SELECT pid, min(killed_at) AS ended FROM " + tables.kills + " GROUP BY pid), "
            "a AS (SELECT t.saga, t.pid, t.step, t.started_at AS s, coalesce(t.finished_at, e.ended, 'infinity') AS f "
            "FROM " + tables.attempts + " t LEFT JOIN ends e ON e.pid = t.pid) "
            "SELECT count(*) FROM a x JOIN a y ON x.saga = y.saga AND x.pid < y.pid AND x.s < y.f AND y.s < x.f");
        check(overlaps == 0, std::to_string(overlaps) + " pairs of attempts of one saga overlapped in two processes");
        if (overlaps > 0) {
            // What overlapped, for whoever reads the log.
            for (const auto& r : sql(
                     "WITH ends AS (SELECT pid, min(killed_at) AS ended FROM " + tables.kills + " GROUP BY pid), "
                     "a AS (SELECT t.saga, t.pid, t.step, t.kind, t.started_at AS s, t.finished_at, "
                     "coalesce(t.finished_at, e.ended, 'infinity') AS f FROM " + tables.attempts +
                     " t LEFT JOIN ends e ON e.pid = t.pid) "
                     "SELECT x.saga, x.pid, x.kind || ':' || x.step, x.s::text, coalesce(x.finished_at::text, 'never'), "
                     "y.pid, y.kind || ':' || y.step, y.s::text, coalesce(y.finished_at::text, 'never') "
                     "FROM a x JOIN a y ON x.saga = y.saga AND x.pid < y.pid AND x.s < y.f AND y.s < x.f LIMIT 5")) {
                std::cout << "chaos: overlap: saga " << r[0].c_str() << ": pid " << r[1].c_str() << " " << r[2].c_str()
                          << " " << r[3].c_str() << " .. " << r[4].c_str() << " / pid " << r[5].c_str() << " "
                          << r[6].c_str() << " " << r[7].c_str() << " .. " << r[8].c_str() << "\n";
            }
        }
        const long long attempts = scalar("SELECT count(*) FROM " + tables.attempts);
        const long long forward = scalar("SELECT count(*) FROM " + tables.effects);
        const long long takeovers = scalar("SELECT count(*) FROM " + table + " WHERE type = 'SagaResumed'");

        // 4. No event twice: one start, one end, one completion per step.
        const long long doubled = scalar(
            "SELECT count(*) FROM (SELECT stream_id, type, payload ->> 'step' FROM " + table +
            " WHERE type IN ('SagaStarted', 'StepCompleted', 'StepCompensated', 'SagaCompleted', 'SagaCompensated',"
            " 'SagaFailed', 'CompensationStarted') GROUP BY 1, 2, 3 HAVING count(*) > 1) d");
        check(doubled == 0, std::to_string(doubled) + " saga transitions recorded twice");
        const long long ends = scalar("SELECT count(*) FROM " + table +
                                      " WHERE type IN ('SagaCompleted', 'SagaCompensated', 'SagaFailed')");
        check(ends == kSagas, std::to_string(ends) + " saga ends stored, expected " + std::to_string(kSagas));

        // 5. The outbox is drained and every stored event reached the broker.
        check(pending() == 0, "the outbox is not drained");
        std::set<std::string> stored;
        for (const auto& r : sql("SELECT event_id::text FROM " + table)) stored.insert(r[0].as<std::string>());
        const auto in_broker = broker == "rabbitmq" ? rabbitmq_event_ids() : redis_event_ids();
        std::size_t missing = 0;
        for (const auto& id : stored) missing += in_broker.count(id) == 0;
        check(missing == 0, std::to_string(missing) + " of " + std::to_string(stored.size()) +
                                " stored events never reached " + broker);

        std::cout << "chaos: " << completed << " completed, " << compensated << " compensated; " << attempts
                  << " step attempts for " << forward << " effects; " << takeovers << " sagas resumed; "
                  << stored.size() << " events stored, " << stored.size() - missing << " of them in " << broker << "; "
                  << kills << " kills\n";
    }

    // The event ids the relay published to RabbitMQ: what the group `chaos`
    // holds, read (and acknowledged) until nothing more arrives for 3 s.
    std::set<std::string> rabbitmq_event_ids() {
        asio::io_context ioc;
        auto rabbit = boong::make_broker(ioc.get_executor(), chaos::broker_config("rabbitmq", broker_at));
        std::set<std::string> ids;
        auto last = Clock::now();
        asio::cancellation_signal stop;
        asio::steady_timer idle(ioc);
        std::function<void()> watch = [&] {
            idle.expires_after(500ms);
            idle.async_wait([&](boost::system::error_code) {
                if (Clock::now() - last > 3s) {
                    stop.emit(asio::cancellation_type::terminal);
                } else {
                    watch();
                }
            });
        };
        auto failed = [](const char* what, std::exception_ptr e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                check(false, std::string(what) + ex.what());
            }
        };
        boong::ConsumerOptions options{"saga", "chaos", "checker", {}};
        options.settings.concurrency = 16;
        boong::MessageHandler handler = [&](const boong::Delivery& d) -> asio::awaitable<void> {
            ids.insert(d.event.event_id);
            last = Clock::now();
            co_return;
        };
        rabbit.async_open([&](std::exception_ptr opened) {
            if (opened) return failed("opening RabbitMQ: ", opened);
            last = Clock::now();
            watch();
            rabbit.async_consume(options, handler, asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr e) {
                                     idle.cancel();
                                     if (e) failed("reading RabbitMQ: ", e);
                                 }));
        });
        ioc.run();
        return ids;
    }

    std::set<std::string> redis_event_ids() {
        asio::io_context ioc;
        boong::RedisBrokerConfig rc;
        rc.host = env("BOONG_TEST_REDIS_HOST");
        rc.port = std::stoi(env("BOONG_TEST_REDIS_PORT"));
        boong::RedisBroker redis(ioc.get_executor(), rc);
        std::set<std::string> ids;
        asio::co_spawn(
            ioc,
            [&]() -> asio::awaitable<void> {
                co_await redis.async_open(asio::use_awaitable);
                std::string from = "-";
                for (;;) {
                    std::vector<std::string> argv{"XRANGE", "saga", from, "+", "COUNT", "5000"};
                    auto reply = co_await redis.async_command(std::move(argv), asio::use_awaitable);
                    if (!reply.is_array() || reply.empty()) break;
                    for (const auto& entry : reply) {
                        const auto& fields = entry[1];
                        // The envelope is one field, `event`, holding a JSON object.
                        for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
                            if (fields[i] == "event")
                                ids.insert(boong::json::parse(fields[i + 1].get<std::string>()).at("event_id")
                                               .get<std::string>());
                        }
                    }
                    from = "(" + reply.back()[0].get<std::string>();
                    if (reply.size() < 5000) break;
                }
            },
            [&](std::exception_ptr e) {
                if (e) {
                    try {
                        std::rethrow_exception(e);
                    } catch (const std::exception& ex) {
                        check(false, std::string("reading Redis: ") + ex.what());
                    }
                }
            });
        ioc.run();
        return ids;
    }
};

}  // namespace

int main(int argc, char** argv) try {
    const std::string scenario = argc > 1 ? argv[1] : "kill";
    if (scenario != "kill" && scenario != "postgres" && scenario != "redis" && scenario != "rabbitmq" &&
        scenario != "outage") {
        std::cerr << "usage: chaos_test kill|postgres|redis|rabbitmq|outage\n";
        return 2;
    }
    Driver d(scenario, boong::IdGenerator().next().substr(24, 8));
    return d.drive();
} catch (const std::exception& e) {
    std::cerr << "chaos: " << e.what() << "\n";
    return 1;
}
