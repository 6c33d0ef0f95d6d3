// The order saga of the chaos test: reserve items, charge payment, confirm.
// Its fake services record every attempt and every effect in PostgreSQL, the
// effect keyed by the step's idempotency key, so the checker can prove what
// ran where, and that each effect happened once.
#pragma once

#include <boong/config.hpp>
#include <boong/saga.hpp>
#include <boong/postgres/transaction.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

namespace chaos {

struct OrderData {
    int n = 0;  // the saga's number: decides which failures it meets
};
inline void to_json(boong::json& j, const OrderData& d) { j = boong::json{{"n", d.n}}; }
inline void from_json(const boong::json& j, OrderData& d) { j.at("n").get_to(d.n); }

// What saga n meets (the checker expects the outcomes this implies).
inline bool declined(int n) { return n % 10 == 3; }         // charge is refused: compensated
inline bool unconfirmable(int n) { return n % 10 == 7; }    // confirm is refused: compensated
inline bool flaky_reserve(int n) { return n % 5 == 1; }     // reserve fails once, then succeeds
inline bool flaky_charge(int n) { return n % 7 == 2; }      // charge fails once, then succeeds
inline bool completes(int n) { return !declined(n) && !unconfirmable(n); }

// The broker the relay publishes to: "redis" or "rabbitmq" at host:port.
// RabbitMQ's credentials come from the test script's environment, and the
// topic the relay publishes to (`saga`, the streams' category) has the group
// `chaos` declared, so that every event is kept until the checker reads it.
inline boong::MessageBrokerConfig broker_config(const std::string& type, const std::string& at) {
    const auto endpoint = boong::parse_endpoint(at);
    if (!endpoint) throw std::runtime_error("expected HOST:PORT, got " + at);
    boong::MessageBrokerConfig c;
    if (type == "redis") {
        c.type = boong::MessageBrokerConfig::Type::redis_streams;
        c.redis.host = endpoint->host;
        c.redis.port = endpoint->port;
        c.redis.command_timeout = std::chrono::seconds(10);
    } else if (type == "rabbitmq") {
        c.type = boong::MessageBrokerConfig::Type::rabbitmq;
        c.rabbitmq.host = endpoint->host;
        c.rabbitmq.port = endpoint->port;
        const char* user = std::getenv("BOONG_TEST_RABBITMQ_USER");
        c.rabbitmq.username = user ? user : "guest";
        c.rabbitmq.password_env = "BOONG_TEST_RABBITMQ_PASSWORD";
        c.rabbitmq.groups = {{"saga", {"chaos"}}};
    } else {
        throw std::runtime_error("unknown broker " + type + " (redis or rabbitmq)");
    }
    return c;
}

struct Tables {
    std::string effects;   // one row per applied effect: (key UNIQUE, saga, step, kind, pid, seq)
    std::string attempts;  // one row per attempt: (saga, step, kind, pid, started_at, finished_at)
    std::string kills;     // one row per SIGKILL: (pid, killed_at)
    // Every attempt's end, written before the database is asked (it may be
    // down, or the process killed while it waits): "id timestamp" lines in
    // <ends_dir>/<pid>, which the driver applies before it checks.
    std::string ends_dir;

    explicit Tables(const std::string& base)
        : effects(base + "_effects"), attempts(base + "_attempts"), kills(base + "_kills"),
          ends_dir((std::filesystem::temp_directory_path() / (base + "_ends")).string()) {}

    std::string create_sql() const {
        return "CREATE TABLE IF NOT EXISTS " + effects +
               " (key text PRIMARY KEY, saga text NOT NULL, step text NOT NULL, kind text NOT NULL,"
               " pid int NOT NULL, seq bigserial, at timestamptz NOT NULL DEFAULT clock_timestamp());"
               "CREATE TABLE IF NOT EXISTS " + attempts +
               " (id bigserial PRIMARY KEY, saga text NOT NULL, step text NOT NULL, kind text NOT NULL,"
               " pid int NOT NULL, started_at timestamptz NOT NULL, finished_at timestamptz);"
               "CREATE TABLE IF NOT EXISTS " + kills + " (pid int NOT NULL, killed_at timestamptz NOT NULL)";
    }
};

class Services {
public:
    static constexpr std::string_view name = "chaos_order";

    Services(boong::PostgresEventStore& store, Tables tables) : store_(store), tables_(std::move(tables)) {}

    boost::asio::awaitable<void> reserve(boong::StepContext<OrderData>& c) { return perform(c, false); }
    boost::asio::awaitable<void> release(boong::StepContext<OrderData>& c) { return perform(c, true); }
    boost::asio::awaitable<void> charge(boong::StepContext<OrderData>& c) { return perform(c, false); }
    boost::asio::awaitable<void> refund(boong::StepContext<OrderData>& c) { return perform(c, true); }
    boost::asio::awaitable<void> confirm(boong::StepContext<OrderData>& c) { return perform(c, false); }

private:
    boost::asio::awaitable<void> perform(boong::StepContext<OrderData>& c, bool compensating) {
        namespace asio = boost::asio;
        const int n = c.data().n;
        const std::string step(c.step());
        const std::string kind = compensating ? "undo" : "do";
        const std::string saga(c.saga_id());
        // BOONG_CHAOS_SABOTAGE=effects makes effects non-idempotent, to see
        // the checker fail (a check that cannot fail proves nothing).
        static const bool sabotage = [] {
            const char* v = std::getenv("BOONG_CHAOS_SABOTAGE");
            return v && std::string(v) == "effects";
        }();
        const std::string key = sabotage ? c.idempotency_key() + ":" + boong::IdGenerator().next() : c.idempotency_key();
        const int pid = static_cast<int>(::getpid());
        if (!compensating) {  // refusals happen at once, before any effect
            if (step == "reserve" && flaky_reserve(n) && c.attempt() == 1) throw std::runtime_error("inventory timed out");
            if (step == "charge" && flaky_charge(n) && c.attempt() == 1) throw std::runtime_error("payment gateway 503");
            if (step == "charge" && declined(n)) throw boong::Rejection("payment declined");
            if (step == "confirm" && unconfirmable(n)) throw boong::Rejection("order cannot be confirmed");
        }
        // The attempt is on record before its effect, so a kill at any later
        // instant leaves its trace; times are this machine's clock (the
        // database's too: it runs here). The id is chosen here, not by the
        // database: when the start's commit is lost (the server went down
        // meanwhile), the row may be there all the same, and its end must
        // still be recorded (below), or it would look as if it ran until the
        // process ended.
        const long long attempt_id = std::uniform_int_distribution<long long>(1, 1LL << 62)(rng_);
        const std::string begin =
            "INSERT INTO " + tables_.attempts +
            " (id, saga, step, kind, pid, started_at) VALUES ($1, $2, $3, $4, $5, $6::timestamptz)";
        const std::string started = boong::format_timestamp(boong::Clock::now());
        // Bodies are named locals: g++ 12 destroys a lambda temporary inside a
        // co_await expression twice (docs/durability.md, "Compilers").
        auto record_start = [begin, attempt_id, saga, step, kind, pid, started](pqxx::transaction_base& tx) {
            tx.exec_params(begin, attempt_id, saga, step, kind, pid, started);
        };
        std::exception_ptr failure;
        bool begun = false;
        try {
            co_await boong::async_transact(store_, std::move(record_start), asio::use_awaitable);
            begun = true;
        } catch (...) {
            failure = std::current_exception();
        }
        try {
            if (!begun) std::rethrow_exception(failure);
            const std::string effect = "INSERT INTO " + tables_.effects +
                                       " (key, saga, step, kind, pid) VALUES ($1, $2, $3, $4, $5)"
                                       " ON CONFLICT (key) DO NOTHING";
            auto apply = [effect, key, saga, step, kind, pid](pqxx::transaction_base& tx) {
                tx.exec_params(effect, key, saga, step, kind, pid);
            };
            co_await boong::async_transact(store_, std::move(apply), asio::use_awaitable);
            // The service's own work: long enough for kills to land mid-step.
            asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(work_ms()));
            co_await t.async_wait(asio::use_awaitable);
        } catch (...) {
            failure = std::current_exception();
        }
        // The attempt is over (done, failed or interrupted): say when, first in
        // a file of this process (the driver applies it), then in the
        // database. The file comes first: recording in the database may wait
        // for a restarting server (a step that waited for it here would go on
        // running past its saga's lease), and a kill meanwhile must not lose
        // the end, or the attempt would look as if it ran until the kill.
        const std::string finished = boong::format_timestamp(boong::Clock::now());
        std::filesystem::create_directories(tables_.ends_dir);
        std::ofstream(tables_.ends_dir + "/" + std::to_string(pid), std::ios::app)
            << attempt_id << " " << finished << "\n" << std::flush;
        co_await asio::this_coro::reset_cancellation_state();
        const std::string end = "UPDATE " + tables_.attempts + " SET finished_at = $2::timestamptz WHERE id = $1";
        auto record_end = [end, attempt_id, finished](pqxx::transaction_base& tx) {
            tx.exec_params(end, attempt_id, finished);
        };
        try {
            co_await boong::async_transact(store_, std::move(record_end), asio::use_awaitable);
        } catch (...) {
            // the file has it
        }
        if (failure) std::rethrow_exception(failure);
    }

    int work_ms() { return std::uniform_int_distribution<int>(10, 120)(rng_); }

    boong::PostgresEventStore& store_;
    Tables tables_;
    std::mt19937 rng_{std::random_device{}()};
};

using OrderSaga = boong::Saga<boong::Step<"reserve", &Services::reserve, &Services::release>,
                              boong::Step<"charge", &Services::charge, &Services::refund>,
                              boong::Step<"confirm", &Services::confirm>>;

// Retries generous enough to ride out a database restart.
inline boong::SagaOptions saga_options() {
    boong::SagaOptions o;
    o.defaults.retry = boong::RetryPolicy{12, std::chrono::milliseconds(50), 2.0, std::chrono::milliseconds(1000), 0.2};
    o.defaults.compensation_retry = o.defaults.retry;
    o.defaults.timeout = std::chrono::milliseconds(10000);
    o.defaults.compensation_timeout = std::chrono::milliseconds(10000);
    return o;
}

}  // namespace chaos
