// Durable execution against a real PostgreSQL (scripts/test.sh exports
// BOONG_TEST_PG_DSN): the saga table, leases and takeovers, fencing of a
// stale owner, deadlines that pass while no process is alive, the outbox
// relay and the inbox. The multi-process kill -9 proof is tests/chaos.
#include "support/async.hpp"
#include "support/postgres.hpp"
#include "support/scripted_saga.hpp"
#include "support/durable_world.hpp"

#include <boong/memory/broker.hpp>
#include <boong/outbox_relay.hpp>
#include <boong/saga_orchestrator.hpp>
#include <boong/postgres/store.hpp>
#include <boong/postgres/inbox.hpp>
#include <boong/postgres/outbox.hpp>
#include <boong/postgres/sagas.hpp>

#include <pqxx/pqxx>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boong::test::FourSteps;
using boong::test::ScriptedSaga;
using boong::test::TestData;
using boong::test::sleep_for;
using Act = boong::test::Act;

using boong::test::test_dsn;

std::string fresh_table(std::string_view base) {
    static const std::string run_id = boong::IdGenerator().next().substr(24, 12);
    static int n = 0;
    return std::string(base) + "_" + run_id + "_" + std::to_string(++n);
}

// Orchestrators and relays keep working in the background until a test
// stops them: the io_context is not idle after each step.
template <class Make>
auto run(asio::io_context& ioc, Make&& make) {
    return boong::test::run_until_done(ioc, std::forward<Make>(make));
}

template <class F>
boong::error_code code_of(F&& f) {
    try {
        f();
    } catch (const boost::system::system_error& e) {
        return e.code();
    }
    return {};
}

// A store on its own table: the sagas of one test are invisible to the others.
struct Durable {
    asio::io_context ioc;
    std::string table;
    boong::PostgresEventStore store;
    boong::PostgresSagaIndex index{store};

    explicit Durable(std::string_view base) : table(fresh_table(base)), store(ioc.get_executor(), config(table)) {
        store.open();
    }
    static boong::PostgresStoreConfig config(const std::string& table) {
        boong::PostgresStoreConfig c;
        c.connection = test_dsn();
        c.table_name = table;
        c.snapshot_table_name = table + "_snapshots";
        c.pool_size = 4;
        return c;
    }
    std::optional<boong::SagaRecord> record(const std::string& id) {
        return run(ioc, [&] { return index.async_find(id, asio::use_awaitable); });
    }
    std::vector<boong::RecordedEvent> stream(const std::string& id) {
        return run(ioc, [&] { return store.async_read_stream(boong::saga_stream(id), 1, 1000, asio::use_awaitable); });
    }
    void sql(const std::string& statement) {
        pqxx::connection c(test_dsn());
        pqxx::nontransaction tx(c);
        tx.exec(statement);
    }
    // Runs the io_context until `done()` or `limit` passes.
    bool until(const std::function<bool()>& done, std::chrono::milliseconds limit = 15s) {
        return boong::test::run_until(ioc, done, limit);
    }
};

using Orchestrator = boong::SagaOrchestrator<FourSteps, boong::PostgresEventStore, boong::PostgresSagaIndex>;
using Runner = boong::SagaRunner<FourSteps, boong::PostgresEventStore>;
using boong::test::orchestrator;
using boong::test::slow_step_options;
using boong::test::start_and_abandon;

// The orchestrator scenarios' world: a store on a table of its own.
struct PostgresWorld : Durable {
    PostgresWorld() : Durable("dur_orch") {}
};

}  // namespace

#define BOONG_ORCHESTRATOR_WORLDS PostgresWorld
#include "conformance/orchestrator_conformance.hpp"
#include "conformance/versioning_conformance.hpp"
#include "conformance/operator_conformance.hpp"

TEST_CASE("durable: the saga table follows every saga's phase, failure and owner", "[durable]") {
    Durable d("dur_table");
    ScriptedSaga def;
    def.plans["c"].actions = {Act::reject};
    Orchestrator orch(def, d.store, d.index, boong::test::fast_options(), orchestrator("table-test"));
    auto outcome = run(d.ioc, [&] { return orch.run(TestData{}); });
    REQUIRE(outcome.status == boong::SagaStatus::compensated);
    auto r = d.record(outcome.saga_id);
    REQUIRE(r);
    CHECK(r->saga_type == "scripted");
    CHECK(r->phase == boong::SagaPhase::compensated);
    CHECK(r->failed_step == "c");
    CHECK(r->failure_kind == boong::FailureKind::rejected);
    CHECK_THAT(r->error, Catch::Contains("c rejected"));
    CHECK(r->owner.empty());  // a terminal saga belongs to nobody
    CHECK(r->version == outcome.version);

    // While it runs, it is the orchestrator's, under a lease.
    def.plans.clear();
    def.calls.clear();
    def.plans["b"].actions = {Act::slow_ok};
    def.plans["b"].slow = 300ms;
    std::string id = boong::IdGenerator().next();
    bool done = false;
    boong::RunOptions o;
    o.saga_id = id;
    orch.runner().async_run(TestData{}, o, [&](std::exception_ptr, auto) { done = true; });
    REQUIRE(d.until([&] { return std::find(def.calls.begin(), def.calls.end(), "b#1") != def.calls.end(); }));
    auto live = d.record(id);
    REQUIRE(live);
    CHECK(live->phase == boong::SagaPhase::running);
    CHECK(live->owner == orch.owner());
    REQUIRE(live->lease_until);
    CHECK(*live->lease_until > boong::Clock::now());
    REQUIRE(d.until([&] { return done; }));
    CHECK(d.record(id)->phase == boong::SagaPhase::completed);

    auto counts = run(d.ioc, [&] { return d.index.async_count_by_phase(asio::use_awaitable); });
    std::map<boong::SagaPhase, std::int64_t> by_phase(counts.begin(), counts.end());
    CHECK(by_phase[boong::SagaPhase::completed] == 1);
    CHECK(by_phase[boong::SagaPhase::compensated] == 1);
}

TEST_CASE("durable: a stale owner cannot record anything once another owner took its saga", "[durable]") {
    Durable d("dur_fence");
    ScriptedSaga stale_def;
    stale_def.plans["b"].actions = {Act::slow_ok};
    stale_def.plans["b"].slow = 1500ms;
    boong::RunnerOptions stale_opts;
    stale_opts.owner = "stale/1";
    stale_opts.lease = 60s;
    Runner stale(stale_def, d.store, slow_step_options(), stale_opts);
    std::string id = boong::IdGenerator().next();
    boong::RunOptions o;
    o.saga_id = id;
    std::exception_ptr stale_error;
    bool stale_done = false;
    stale.async_run(TestData{}, o, [&](std::exception_ptr e, auto) {
        stale_error = e;
        stale_done = true;
    });
    REQUIRE(d.until([&] { return !stale_def.calls.empty() && stale_def.calls.back() == "b#1"; }));
    auto lost = run(d.ioc, [&] {
        return d.index.async_renew("stale/1", 60s, std::vector<std::string>{id}, asio::use_awaitable);
    });
    CHECK(lost.empty());  // its own
    // The stale owner stalls (a long GC pause, a frozen VM): its lease runs out.
    d.sql("UPDATE " + d.store.tables().sagas + " SET lease_until = now() - interval '1 second' WHERE saga_id = '" +
          id + "'");
    ScriptedSaga fresh_def;
    Orchestrator fresh(fresh_def, d.store, d.index, slow_step_options(), orchestrator("fresh"));
    fresh.start();
    REQUIRE(d.until([&] { return stale_done && d.record(id)->phase == boong::SagaPhase::completed; }));
    REQUIRE(stale_error);
    CHECK(code_of([&] { std::rethrow_exception(stale_error); }) == boong::errc::concurrency_conflict);
    lost = run(d.ioc, [&] {
        return d.index.async_renew("stale/1", 60s, std::vector<std::string>{id}, asio::use_awaitable);
    });
    CHECK(lost.empty());  // finished: nobody's
    // Each step completed once in the stream, whoever ran it.
    std::map<std::string, int> completed;
    for (const auto& e : d.stream(id)) {
        if (e.event.type == boong::saga_event::step_completed) ++completed[e.event.payload.at("step").get<std::string>()];
    }
    CHECK(completed == std::map<std::string, int>{{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}});
    run(d.ioc, [&] { return fresh.stop(); });
}

TEST_CASE("durable: a deadline that passed while no process was alive compensates the saga", "[durable]") {
    Durable d("dur_deadline");
    ScriptedSaga def;
    def.plans["b"].actions = {Act::hang};
    boong::RunnerOptions opts;
    opts.owner = "gone/1";
    opts.lease = 300ms;
    Runner gone(def, d.store, slow_step_options(), opts);
    boong::RunOptions o;
    o.timeout = 10s;
    const std::string id = start_and_abandon(d, gone, def, o);
    // Move the recorded deadline into the past, as if 10 s went by with no process alive.
    const auto& events = d.store.tables().events;
    boong::test::rewrite_history(events, "UPDATE " + events + " SET payload = jsonb_set(payload, '{deadline}', '\"" +
                                             boong::format_timestamp(boong::Clock::now() - 1s) +
                                             "\"') WHERE stream_id = 'saga-" + id + "' AND version = 1");
    ScriptedSaga later_def;
    Orchestrator later(later_def, d.store, d.index, slow_step_options(), orchestrator("later"));
    later.start();
    REQUIRE(d.until([&] {
        auto r = d.record(id);
        return r && r->phase == boong::SagaPhase::compensated;
    }));
    auto r = d.record(id);
    CHECK(r->failure_kind == boong::FailureKind::deadline);
    CHECK(later_def.calls == std::vector<std::string>{"~a#1"});  // b never completed: only a is undone
    run(d.ioc, [&] { return later.stop(); });
}

TEST_CASE("durable: operators list sagas by phase and find the stuck ones", "[durable]") {
    Durable d("dur_ops");
    ScriptedSaga def;
    def.plans["c"].actions = {Act::reject};
    def.plans["b"].compensations = {Act::reject};  // compensation gives up: failed
    Runner runner(def, d.store, boong::test::fast_options());
    auto failed = run(d.ioc, [&] { return runner.run(TestData{}); });
    REQUIRE(failed.status == boong::SagaStatus::failed);
    def.plans.clear();
    auto ok = run(d.ioc, [&] { return runner.run(TestData{}); });
    REQUIRE(ok.status == boong::SagaStatus::completed);

    boong::SagaQuery q;
    q.phase = boong::SagaPhase::failed;
    auto failed_list = run(d.ioc, [&] { return d.index.async_list(q, asio::use_awaitable); });
    REQUIRE(failed_list.size() == 1);
    CHECK(failed_list[0].saga_id == failed.saga_id);
    CHECK(failed_list[0].failed_step == "c");
    CHECK(failed_list[0].failed_compensation == "b");
    CHECK_THAT(failed_list[0].compensation_error, Catch::Contains("b rejected"));
    q.phase.reset();
    CHECK(run(d.ioc, [&] { return d.index.async_list(q, asio::use_awaitable); }).size() == 2);
    q.limit = 0;
    CHECK(code_of([&] { run(d.ioc, [&] { return d.index.async_list(q, asio::use_awaitable); }); }) ==
          boong::errc::invalid_argument);

    auto stuck = run(d.ioc, [&] { return d.index.async_stuck(60s, 100, asio::use_awaitable); });
    REQUIRE(stuck.size() == 1);
    CHECK(stuck[0].saga_id == failed.saga_id);
}

namespace {

// A broker that records what reaches it, in order, and can be told to fail.
struct RecordingBroker {
    using executor_type = asio::any_io_executor;
    explicit RecordingBroker(asio::any_io_executor e) : ex(std::move(e)) {}
    asio::any_io_executor ex;
    std::vector<boong::EventData> published;
    std::vector<std::string> topics;
    int fail_next = 0;
    executor_type get_executor() const { return ex; }
    template <class Token>
    auto async_publish(std::string topic, boong::EventData event, Token&& token) {
        return asio::async_initiate<Token, void(std::exception_ptr, std::string)>(
            [this](auto handler, std::string t, boong::EventData e) {
                std::exception_ptr error;
                if (fail_next > 0) {
                    --fail_next;
                    error = std::make_exception_ptr(boong::Error(boong::errc::broker_unavailable, "broker down"));
                } else {
                    topics.push_back(t);
                    published.push_back(std::move(e));
                }
                auto ex2 = asio::get_associated_executor(handler, ex);
                asio::post(ex2, [h = std::move(handler), error, n = published.size()]() mutable {
                    std::move(h)(error, std::to_string(n));
                });
            },
            token, std::move(topic), std::move(event));
    }
    template <class Token>
    auto async_consume(boong::ConsumerOptions, boong::MessageHandler, Token&& token) {
        return asio::async_initiate<Token, void(std::exception_ptr)>(
            [](auto handler) { std::move(handler)(std::exception_ptr{}); }, token);
    }
};
static_assert(boong::Broker<RecordingBroker>);

using Relay = boong::OutboxRelay<boong::PostgresEventStore, boong::PostgresOutbox, RecordingBroker>;

}  // namespace

TEST_CASE("durable: the outbox relay publishes every stored event once, in order, and resumes from its cursor",
          "[durable][outbox]") {
    Durable d("dur_outbox");
    boong::PostgresOutbox outbox(d.store);
    RecordingBroker broker(d.ioc.get_executor());
    constexpr int streams = 10, per_stream = 50;
    run(d.ioc, [&]() -> asio::awaitable<void> {
        for (int v = 0; v < per_stream; ++v) {
            for (int s = 0; s < streams; ++s) {
                std::vector<boong::EventData> events(1);
                events[0].event_id = boong::IdGenerator().next();
                events[0].type = "Happened";
                events[0].payload = boong::json{{"n", v}};
                co_await d.store.async_append("order-" + std::to_string(s), boong::ExpectedVersion::any(),
                                              std::move(events), asio::use_awaitable);
            }
        }
    });
    boong::OutboxRelayOptions opts;
    opts.relay = "test";
    opts.owner = "relay-a/1";
    opts.batch_size = 64;
    opts.lease = 2s;
    broker.fail_next = 0;
    {
        Relay relay(d.store, outbox, broker, opts);
        Relay rival(d.store, outbox, broker, [&] {
            auto o = opts;
            o.owner = "relay-b/1";
            return o;
        }());
        relay.start();
        REQUIRE(d.until([&] { return broker.published.size() >= streams * per_stream; }));
        rival.start();
        d.until([] { return false; }, 300ms);
        CHECK(rival.stats().acquired == 0);  // one relay of a name publishes at a time
        run(d.ioc, [&]() -> asio::awaitable<void> {
            co_await rival.stop();
            co_await relay.stop();
        });
    }
    REQUIRE(broker.published.size() == streams * per_stream);
    std::map<std::string, std::int64_t> last_version;
    for (std::size_t i = 0; i < broker.published.size(); ++i) {
        const auto& m = broker.published[i].metadata.extra;
        CHECK(broker.topics[i] == "order");
        const auto stream = m.at("stream_id").get<std::string>();
        const auto version = m.at("stream_version").get<std::int64_t>();
        CHECK(version == last_version[stream] + 1);  // per-stream order
        last_version[stream] = version;
        if (i > 0) {
            CHECK(m.at("position").get<std::int64_t>() > broker.published[i - 1].metadata.extra.at("position").get<std::int64_t>());
        }
    }
    auto status = run(d.ioc, [&] { return outbox.async_status("test", asio::use_awaitable); });
    CHECK(status.pending == 0);
    CHECK(status.position == broker.published.back().metadata.extra.at("position").get<std::int64_t>());

    // A new relay after a restart (a new incarnation of relay-a) publishes only
    // what came after the cursor; a failing broker delays, never loses.
    run(d.ioc, [&]() -> asio::awaitable<void> {
        std::vector<boong::EventData> events(3);
        for (auto& e : events) {
            e.event_id = boong::IdGenerator().next();
            e.type = "Late";
            e.payload = boong::json::object();
        }
        co_await d.store.async_append("order-late", boong::ExpectedVersion::no_stream(), std::move(events),
                                      asio::use_awaitable);
    });
    broker.published.clear();
    broker.topics.clear();
    broker.fail_next = 2;
    opts.owner = "relay-a/2";
    Relay again(d.store, outbox, broker, opts);
    again.start();
    REQUIRE(d.until([&] { return again.stats().position >= status.position + 3; }));
    run(d.ioc, [&] { return again.stop(); });
    REQUIRE(broker.published.size() >= 3);
    std::vector<std::string> types;
    for (const auto& e : broker.published) types.push_back(e.type);
    CHECK(std::count(types.begin(), types.end(), "Late") == static_cast<long>(broker.published.size()));
    CHECK(again.stats().failures >= 1);
}

TEST_CASE("durable: the inbox applies a message's effect once, however often it is delivered", "[durable][inbox]") {
    Durable d("dur_inbox");
    const std::string effects = d.table + "_effects";
    d.sql("CREATE TABLE " + effects + " (id text, n int)");
    boong::PostgresInbox inbox(d.store, "payments");
    auto deliver = [&](std::string id, bool fail) {
        return run(d.ioc, [&] {
            return inbox.async_process(
                id,
                [effects, id, fail](pqxx::transaction_base& tx) {
                    tx.exec_params("INSERT INTO " + effects + " VALUES ($1, 1)", id);
                    if (fail) throw std::runtime_error("handler failed after writing");
                },
                asio::use_awaitable);
        });
    };
    CHECK(deliver("m1", false));
    CHECK_FALSE(deliver("m1", false));  // redelivered: no second effect
    CHECK_THROWS_WITH(deliver("m2", true), Catch::Contains("handler failed"));
    CHECK(deliver("m2", false));  // the failed attempt rolled back both the effect and the record
    boong::PostgresInbox other(d.store, "inventory");
    CHECK(run(d.ioc, [&] {
        return other.async_process("m1", [](pqxx::transaction_base&) {}, asio::use_awaitable);
    }));  // each consumer has its own inbox
    pqxx::connection c(test_dsn());
    pqxx::nontransaction tx(c);
    CHECK(tx.exec1("SELECT count(*) FROM " + effects + " WHERE id = 'm1'")[0].as<int>() == 1);
    CHECK(tx.exec1("SELECT count(*) FROM " + effects + " WHERE id = 'm2'")[0].as<int>() == 1);
    CHECK_THROWS_AS(boong::PostgresInbox(d.store, ""), boong::Error);
}
