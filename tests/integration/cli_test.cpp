// The `boong` tool, run as a program against the test servers: data seeded
// through the library, the tool's --json output compared exactly (only
// times and ids nobody controls are normalised), its exit statuses, its
// one-line report of an unreachable server, and the audit records of
// dead-letter actions.
#include "support/async.hpp"
#include "support/durable_world.hpp"
#include "support/scripted_saga.hpp"

#include <boong/postgres/outbox.hpp>
#include <boong/postgres/roles.hpp>
#include <boong/postgres/sagas.hpp>
#include <boong/postgres/store.hpp>
#include <boong/redis/broker.hpp>
#if BOONG_CLI_TEST_RABBITMQ
#include <boong/rabbitmq/broker.hpp>
#endif
#include <boong/saga_runner.hpp>

#include "postgres/schema.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using boong::json;
using boong::test::FourSteps;
using boong::test::ScriptedSaga;
using boong::test::TestData;
using Act = boong::test::Act;
using namespace std::chrono_literals;

std::string env_or_fail(const char* name) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') FAIL(std::string(name) + " is not set: run integration tests through scripts/test.sh");
    return v;
}

// ---- running the tool ------------------------------------------------------------

struct Result {
    int status = -1;
    std::string out;
    std::string err;
    json document() const {
        INFO("stdout: " << out << "\nstderr: " << err);
        return json::parse(out);
    }
};

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// The environment the tool runs in: ours without BOONG_* and NO_COLOR, plus `extra`.
std::vector<std::string> tool_environment(const std::vector<std::string>& extra) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view v(*e);
        if (v.starts_with("BOONG_CONFIG=") || v.starts_with("BOONG_PG=") || v.starts_with("BOONG_REDIS") ||
            v.starts_with("BOONG_RABBITMQ=") || v.starts_with("NO_COLOR=")) {
            continue;
        }
        env.emplace_back(v);
    }
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
}

struct Spawned {
    pid_t pid = -1;
    fs::path out, err;
};

Spawned spawn_tool(const std::vector<std::string>& args, const std::vector<std::string>& extra_env) {
    static int n = 0;
    const fs::path dir = fs::temp_directory_path();
    Spawned s;
    s.out = dir / ("boong-cli-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n) + ".out");
    s.err = fs::path(s.out).replace_extension(".err");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, s.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, s.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<std::string> argv_s{BOONG_CLI_PATH};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    auto env_s = tool_environment(extra_env);
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int rc = ::posix_spawn(&s.pid, BOONG_CLI_PATH, &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE(rc == 0);
    return s;
}

Result finish(const Spawned& s) {
    int wstatus = 0;
    REQUIRE(::waitpid(s.pid, &wstatus, 0) == s.pid);
    Result r;
    r.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    r.out = slurp(s.out);
    r.err = slurp(s.err);
    fs::remove(s.out);
    fs::remove(s.err);
    return r;
}

Result boong_tool(const std::vector<std::string>& args, const std::vector<std::string>& extra_env = {}) {
    return finish(spawn_tool(args, extra_env));
}

// Times and ids the test cannot know, replaced by placeholders.
json normalised(json j, const std::vector<std::string>& keys) {
    if (j.is_object()) {
        for (auto& [k, v] : j.items()) {
            if (std::find(keys.begin(), keys.end(), k) != keys.end() && !v.is_null()) {
                v = "<" + k + ">";
            } else {
                v = normalised(v, keys);
            }
        }
    } else if (j.is_array()) {
        for (auto& v : j) v = normalised(v, keys);
    }
    return j;
}

// ---- the world the tool looks at ---------------------------------------------------

std::string fresh_name() {
    static const std::string run_id = boong::IdGenerator().next().substr(24, 12);
    static int n = 0;
    return "cli_" + run_id + "_" + std::to_string(++n);
}

using Runner = boong::SagaRunner<FourSteps, boong::PostgresEventStore>;

// A store on its own table, a topic of its own, and a config file naming both.
struct World {
    asio::io_context ioc;
    std::string table = fresh_name();
    std::string topic = "cli-" + table.substr(4);
    std::string dsn = env_or_fail("BOONG_TEST_PG_DSN");
    std::string redis_host = env_or_fail("BOONG_TEST_REDIS_HOST");
    int redis_port = std::stoi(env_or_fail("BOONG_TEST_REDIS_PORT"));
    fs::path config_file = fs::temp_directory_path() / (table + ".json");
    boong::PostgresEventStore store{ioc.get_executor(), store_config()};
    boong::PostgresSagaIndex index{store};

    World() {
        store.open();
        write_config(config_file, "redis-streams");
    }
    ~World() { fs::remove(config_file); }

    boong::PostgresStoreConfig store_config() const {
        boong::PostgresStoreConfig c;
        c.connection = dsn;
        c.table_name = table;
        c.snapshot_table_name = table + "_snapshots";
        c.pool_size = 2;
        return c;
    }
    boong::RedisBrokerConfig redis_config() const {
        boong::RedisBrokerConfig c;
        c.host = redis_host;
        c.port = redis_port;
        return c;
    }
    void write_config(const fs::path& file, const std::string& broker_type,
                      const std::string& connection = "") const {
        json config = {{"eventStore",
                        {{"type", "postgres"},
                         {"connection", connection.empty() ? dsn : connection},
                         {"tableName", table},
                         {"snapshotTableName", table + "_snapshots"}}},
                       {"messageBroker",
                        {{"type", broker_type}, {"options", {{"host", redis_host}, {"port", redis_port}}}}}};
        std::ofstream(file) << config.dump(2);
    }
    std::vector<std::string> args(std::vector<std::string> a) const {
        a.insert(a.begin(), {"--config", config_file.string()});
        return a;
    }

    // Runs one saga of FourSteps (a, b, c, d) to its end, with `id`.
    boong::SagaStatus run_saga(const std::string& id, ScriptedSaga& definition) {
        Runner runner(definition, store, boong::test::fast_options(1, 1));
        boong::RunOptions options;
        options.saga_id = id;
        auto outcome = boong::test::run_until_done(
            ioc, [&] { return runner.run(TestData{}, options); });
        return outcome.status;
    }

    template <class T>
    T run(asio::awaitable<T> op) {
        return boong::test::run_until_done(ioc, [&]() mutable { return std::move(op); });
    }
};

// Three sagas: one completes, one is compensated (b rejected), one fails
// for good (b rejected, then a's compensation fails).
void seed_sagas(World& w) {
    ScriptedSaga ok;
    REQUIRE(w.run_saga("s1-completes", ok) == boong::SagaStatus::completed);
    ScriptedSaga declined;
    declined.plans["b"].actions = {Act::reject};
    REQUIRE(w.run_saga("s2-compensates", declined) == boong::SagaStatus::compensated);
    ScriptedSaga broken;
    broken.plans["b"].actions = {Act::reject};
    broken.plans["a"].compensations = {Act::fail};
    REQUIRE(w.run_saga("s3-fails", broken) == boong::SagaStatus::failed);
}

}  // namespace

TEST_CASE("boong: usage errors exit 2, help and version exit 0", "[cli]") {
    auto help = boong_tool({"--help"});
    CHECK(help.status == 0);
    CHECK(help.out.find("Exit status: 0 ok, 1 operation failed, 2 usage or configuration error") != std::string::npos);
    CHECK(boong_tool({"sagas", "--help"}).out.find("Exit status") != std::string::npos);
    CHECK(boong_tool({"--version"}).status == 0);

    CHECK(boong_tool({}).status == 2);                          // no command
    CHECK(boong_tool({"sagas"}).status == 2);                   // no subcommand
    CHECK(boong_tool({"nonsense"}).status == 2);
    CHECK(boong_tool({"sagas", "retry"}).status == 2);          // neither ids nor --phase
    CHECK(boong_tool({"sagas", "retry", "x", "--phase", "failed"}).status == 2);  // both
    CHECK(boong_tool({"sagas", "list", "--limit", "0"}).status == 2);
    CHECK(boong_tool({"--redis", "a:1", "--rabbitmq", "b:2", "consumers"}).status == 2);
    auto bad_phase = boong_tool({"--pg", "postgresql://x@127.0.0.1:1/x", "sagas", "list", "--phase", "sleeping"});
    CHECK(bad_phase.status == 2);
    CHECK(bad_phase.err == "boong: --phase: expected running, compensating, completed, compensated, failed or blocked, "
                           "got 'sleeping'\n");
    auto bad_idle = boong_tool({"--pg", "postgresql://x@127.0.0.1:1/x", "sagas", "stuck", "--idle", "30"});
    CHECK(bad_idle.status == 2);
    CHECK(bad_idle.err.find("--idle: expected a duration") != std::string::npos);
    // No store configured at all.
    auto no_store = boong_tool({"sagas", "list"});
    CHECK(no_store.status == 2);
    CHECK(no_store.err.find("no PostgreSQL event store configured") != std::string::npos);
}

TEST_CASE("boong: an unreachable server is one line naming it, exit 3", "[cli]") {
    auto pg = boong_tool({"--pg", "postgresql://boong@127.0.0.1:1/boong", "sagas", "list"});
    CHECK(pg.status == 3);
    CHECK(pg.out.empty());
    CHECK(pg.err == "boong: cannot reach PostgreSQL at 127.0.0.1:1: connection refused\n");

    auto redis = boong_tool({"--redis", "127.0.0.1:1", "dlq", "list", "--topic", "orders"});
    CHECK(redis.status == 3);
    CHECK(redis.err == "boong: cannot reach Redis at 127.0.0.1:1: connection refused\n");

    // The environment names the server when no flag does.
    auto from_env = boong_tool({"schema", "status"}, {"BOONG_PG=postgresql://boong@127.0.0.1:1/boong"});
    CHECK(from_env.status == 3);
    CHECK(from_env.err == "boong: cannot reach PostgreSQL at 127.0.0.1:1: connection refused\n");
}

TEST_CASE("boong sagas: list, stats, stuck and show, as JSON", "[cli]") {
    World w;
    seed_sagas(w);
    const std::vector<std::string> times{"started_at", "updated_at", "at", "duration_ms", "fingerprint"};

    SECTION("list: every saga, by id, and filtered") {
        auto r = boong_tool(w.args({"sagas", "list", "--json"}));
        REQUIRE(r.status == 0);
        auto saga = [](std::string id, std::string phase, json failed_step, json kind, json error, json comp,
                       json comp_error, std::int64_t version) {
            return json{{"saga_id", id}, {"saga_type", "scripted"}, {"definition_version", 1},
                        {"fingerprint", "<fingerprint>"}, {"phase", phase}, {"version", version},
                        {"blocked_reason", nullptr}, {"failed_step", failed_step}, {"failure_kind", kind},
                        {"error", error}, {"failed_compensation", comp}, {"compensation_error", comp_error},
                        {"deadline", nullptr}, {"started_at", "<started_at>"}, {"updated_at", "<updated_at>"},
                        {"owner", nullptr}, {"lease_until", nullptr}};
        };
        const json completes = saga("s1-completes", "completed", nullptr, nullptr, nullptr, nullptr, nullptr, 10);
        const json compensates =
            saga("s2-compensates", "compensated", "b", "rejected", "b rejected", nullptr, nullptr, 9);
        const json fails = saga("s3-fails", "failed", "b", "rejected", "b rejected", "a",
                                "a failed (transient)", 9);
        CHECK(normalised(r.document(), times) == json{{"sagas", {completes, compensates, fails}}});

        auto failed_only = boong_tool(w.args({"sagas", "list", "--phase", "failed", "--json"}));
        CHECK(normalised(failed_only.document(), times) == json{{"sagas", {fails}}});
        auto limited = boong_tool(w.args({"sagas", "list", "--limit", "1", "--json"}));
        CHECK(normalised(limited.document(), times) == json{{"sagas", {completes}}});
        auto future = boong_tool(w.args({"sagas", "list", "--since", "2200-01-01T00:00:00Z", "--json"}));
        CHECK(future.document() == json{{"sagas", json::array()}});
        auto recent = boong_tool(w.args({"sagas", "list", "--since", "-1h", "--json"}));
        CHECK(recent.document()["sagas"].size() == 3);
        auto other_type = boong_tool(w.args({"sagas", "list", "--type", "other", "--json"}));
        CHECK(other_type.document() == json{{"sagas", json::array()}});

        // For people: a table with a header and a row per saga, no colour off a terminal.
        auto table = boong_tool(w.args({"sagas", "list"}));
        CHECK(table.status == 0);
        CHECK(table.out.rfind("SAGA ", 0) == 0);
        CHECK(table.out.find("s3-fails") != std::string::npos);
        CHECK(table.out.find("\033[") == std::string::npos);
    }

    SECTION("stats: counts by type and phase") {
        auto r = boong_tool(w.args({"sagas", "stats", "--json"}));
        REQUIRE(r.status == 0);
        const json expected = {
            {"phases", {{"completed", 1}, {"compensated", 1}, {"failed", 1}}},
            {"types",
             {{{"saga_type", "scripted"}, {"phase", "compensated"}, {"count", 1}},
              {{"saga_type", "scripted"}, {"phase", "completed"}, {"count", 1}},
              {{"saga_type", "scripted"}, {"phase", "failed"}, {"count", 1}}}},
            {"in_flight_definitions",
             {{{"saga_type", "scripted"}, {"definition_version", 1}, {"fingerprint", "<fingerprint>"},
               {"phase", "failed"}, {"count", 1}}}}};
        CHECK(normalised(r.document(), times) == expected);
    }

    SECTION("stuck: the failed saga, and why") {
        auto r = boong_tool(w.args({"sagas", "stuck", "--idle", "10m", "--json"}));
        REQUIRE(r.status == 0);
        const json doc = r.document();
        CHECK(doc["idle_ms"] == 600000);
        REQUIRE(doc["sagas"].size() == 1);
        CHECK(doc["sagas"][0]["saga_id"] == "s3-fails");
        CHECK(doc["sagas"][0]["why"] == "compensation of a gave up: a failed (transient)");
    }

    SECTION("show: the timeline of a compensated saga") {
        auto r = boong_tool(w.args({"sagas", "show", "s2-compensates", "--json"}));
        REQUIRE(r.status == 0);
        auto row = [](std::string kind, std::string name, json attempt, std::string outcome, json failure_kind,
                      json error, json final, bool ended) {
            return json{{"kind", kind}, {"name", name}, {"attempt", attempt}, {"at", "<at>"},
                        {"duration_ms", ended ? json("<duration_ms>") : json(nullptr)}, {"outcome", outcome},
                        {"failure_kind", failure_kind}, {"error", error}, {"final", final},
                        {"outages", json::array()}, {"owner", nullptr}, {"lease_ms", nullptr}};
        };
        const json expected = {
            {"saga",
             {{"saga_id", "s2-compensates"}, {"saga_type", "scripted"}, {"definition_version", 1},
              {"fingerprint", "<fingerprint>"}, {"phase", "compensated"}, {"version", 9},
              {"correlation_id", "s2-compensates"}, {"started_at", "<started_at>"}, {"updated_at", "<updated_at>"},
              {"deadline", nullptr}, {"owner", nullptr}, {"lease_until", nullptr}, {"blocked_reason", nullptr},
              {"completed_steps", {"a"}}, {"compensated_steps", {"a"}},
              {"data", {{"value", 1}, {"trail", {"a"}}}}}},
            {"failure",
             {{"step", "b"}, {"kind", "rejected"}, {"error", "b rejected"}, {"compensation", nullptr},
              {"compensation_error", nullptr}}},
            {"timeline",
             {row("saga", "SagaStarted", nullptr, "running", nullptr, nullptr, nullptr, false),
              row("step", "a", 1, "completed", nullptr, nullptr, nullptr, true),
              row("step", "b", 1, "failed", "rejected", "b rejected", true, true),
              row("saga", "CompensationStarted", nullptr, "compensating", nullptr, "b failed (rejected): b rejected",
                  nullptr, false),
              row("compensation", "a", 1, "compensated", nullptr, nullptr, nullptr, true),
              row("saga", "SagaCompensated", nullptr, "compensated", nullptr, nullptr, nullptr, false)}}};
        CHECK(normalised(r.document(), times) == expected);

        auto people = boong_tool(w.args({"sagas", "show", "s3-fails"}));
        CHECK(people.status == 0);
        CHECK(people.out.find("Failed at   b (rejected): b rejected") != std::string::npos);
        CHECK(people.out.find("Gave up     compensation of a: a failed (transient)") != std::string::npos);
    }

    SECTION("retry: a dry run lists, the retry records who asked in each saga; a saga not failed is refused") {
        auto dry = boong_tool(w.args({"sagas", "retry", "--phase", "failed", "--dry-run", "--as", "alice", "--json"}));
        REQUIRE(dry.status == 0);
        CHECK(dry.document() == json{{"dry_run", true},
                                     {"by", "alice"},
                                     {"results", {{{"saga_id", "s3-fails"}, {"outcome", "would_request"},
                                                   {"reason", nullptr}}}}});
        CHECK(w.run(w.index.async_find("s3-fails", asio::use_awaitable))->phase == boong::SagaPhase::failed);
        auto done = boong_tool(w.args({"sagas", "retry", "s3-fails", "--as", "alice", "--reason", "a fixed", "--json"}));
        REQUIRE(done.status == 0);
        CHECK(done.document()["results"][0]["outcome"] == "requested");
        // Back in flight, free for any orchestrator of its type; the request is in its stream.
        const auto r = w.run(w.index.async_find("s3-fails", asio::use_awaitable));
        CHECK(r->phase == boong::SagaPhase::compensating);
        CHECK(r->owner.empty());
        const auto events = w.run(w.store.async_read_stream("saga-s3-fails", 1, 1000, asio::use_awaitable));
        REQUIRE(events.back().event.type == "SagaRetryRequested");
        CHECK(events.back().event.payload == json{{"phase", "compensating"}, {"by", "alice"}, {"reason", "a fixed"}});
        // A completed saga is not retried: exit 1, and why.
        auto refused = boong_tool(w.args({"sagas", "retry", "s1-completes"}));
        CHECK(refused.status == 1);
        CHECK(refused.out.find("it is completed: only a failed or blocked saga is retried") != std::string::npos);
        CHECK(refused.err == "boong: 1 of 1 sagas not retried\n");
    }

    SECTION("cancel: records who asked and why in the saga and takes it from its owner; a saga not running is "
            "refused") {
        ScriptedSaga waiting;
        waiting.plans["b"].actions = {Act::hang};
        struct Until {
            asio::io_context& ioc;
            bool until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
                return boong::test::run_until(ioc, done, limit);
            }
        } u{w.ioc};
        Runner runner(waiting, w.store, boong::test::slow_step_options());
        boong::RunOptions options;
        options.saga_id = "s4-waits";
        boong::test::start_and_abandon(u, runner, waiting, options);  // a done, b begun

        auto dry = boong_tool(w.args(
            {"sagas", "cancel", "s4-waits", "--reason", "customer withdrew", "--as", "bob", "--dry-run", "--json"}));
        REQUIRE(dry.status == 0);
        CHECK(dry.document() == json{{"dry_run", true},
                                     {"by", "bob"},
                                     {"results", {{{"saga_id", "s4-waits"}, {"outcome", "would_request"},
                                                   {"reason", nullptr}}}}});
        auto events = w.run(w.store.async_read_stream("saga-s4-waits", 1, 1000, asio::use_awaitable));
        CHECK(events.back().event.type == "StepStarted");  // the dry run recorded nothing
        auto done = boong_tool(
            w.args({"sagas", "cancel", "s4-waits", "--reason", "customer withdrew", "--as", "bob", "--json"}));
        REQUIRE(done.status == 0);
        CHECK(done.document()["results"][0]["outcome"] == "requested");
        const auto r = w.run(w.index.async_find("s4-waits", asio::use_awaitable));
        CHECK(r->phase == boong::SagaPhase::running);  // until an orchestrator resumes it and compensates
        CHECK(r->owner.empty());
        events = w.run(w.store.async_read_stream("saga-s4-waits", 1, 1000, asio::use_awaitable));
        REQUIRE(events.back().event.type == "SagaCancelRequested");
        CHECK(events.back().event.payload == json{{"by", "bob"}, {"reason", "customer withdrew"}});
        auto shown = boong_tool(w.args({"sagas", "show", "s4-waits"}));
        CHECK(shown.status == 0);
        CHECK(shown.out.find("by bob: customer withdrew") != std::string::npos);
        // Asked twice: refused, with the first request's reason.
        auto twice = boong_tool(w.args({"sagas", "cancel", "s4-waits", "--reason", "again", "--json"}));
        CHECK(twice.status == 1);
        CHECK(twice.document()["results"][0]["reason"] == "its cancel was already asked for: customer withdrew (by bob)");
        // A reason is required; a completed saga is not cancelled: exit 1, and why.
        CHECK(boong_tool(w.args({"sagas", "cancel", "s4-waits"})).status == 2);
        auto refused = boong_tool(w.args({"sagas", "cancel", "s1-completes", "--reason", "too late"}));
        CHECK(refused.status == 1);
        CHECK(refused.out.find("it is completed: only a running saga is cancelled") != std::string::npos);
        CHECK(refused.err == "boong: 1 of 1 sagas not cancelled\n");
    }

    SECTION("show: an unknown saga is exit 4") {
        auto r = boong_tool(w.args({"sagas", "show", "no-such-saga"}));
        CHECK(r.status == 4);
        CHECK(r.err == "boong: no saga no-such-saga (its stream saga-no-such-saga is empty)\n");
    }
}

TEST_CASE("boong events: show and tail print what the store holds", "[cli]") {
    World w;
    ScriptedSaga ok;
    REQUIRE(w.run_saga("e1", ok) == boong::SagaStatus::completed);
    const auto stream = w.run(w.store.async_read_stream("saga-e1", 1, 1000, asio::use_awaitable));
    const auto all = w.run(w.store.async_read_all(1, 1000, asio::use_awaitable));
    REQUIRE(stream.size() == 10);

    // Exactly the library's own JSON for each event.
    auto show = boong_tool(w.args({"events", "show", "saga-e1", "--json"}));
    REQUIRE(show.status == 0);
    CHECK(show.document() == json{{"stream", "saga-e1"}, {"events", stream}});

    auto from = boong_tool(w.args({"events", "tail", "--from", "3", "--limit", "2", "--json"}));
    REQUIRE(from.status == 0);
    CHECK(from.document() == json{{"events", {all[2], all[3]}}, {"next_position", all[3].position + 1}});

    auto last = boong_tool(w.args({"events", "tail", "--limit", "3", "--type", "StepCompleted", "--json"}));
    REQUIRE(last.status == 0);
    // The last three events are d's StepStarted and StepCompleted, then SagaCompleted.
    CHECK(last.document() == json{{"events", {all[8]}}, {"next_position", all[9].position + 1}});

    auto missing = boong_tool(w.args({"events", "show", "no-such-stream"}));
    CHECK(missing.status == 4);
    CHECK(missing.err == "boong: no events in stream 'no-such-stream'\n");

    // Archived, every event reads the same; a dry run moves nothing.
    std::set<std::string> streams;
    for (const auto& e : all) streams.insert(e.stream_id);
    const auto kept = static_cast<std::int64_t>(streams.size());  // each stream's newest event stays
    const auto archived = static_cast<std::int64_t>(all.size()) - kept;
    CHECK(boong_tool(w.args({"events", "archive"})).status == 2);  // archive what?
    const std::vector<std::string> everything{"events", "archive", "--below-position", "1000000000", "--min-age", "0s",
                                              "--json"};
    auto dry_args = everything;
    dry_args.push_back("--dry-run");
    auto dry = boong_tool(w.args(dry_args));
    REQUIRE(dry.status == 0);
    const json expected{{"dry_run", true},      {"archived", archived},
                        {"kept", kept},         {"transactions", 1},
                        {"held_by_relay", nullptr}, {"reached_position", all.back().position}};
    CHECK(dry.document() == expected);
    auto moved = boong_tool(w.args(everything));
    REQUIRE(moved.status == 0);
    auto done = expected;
    done["dry_run"] = false;
    CHECK(moved.document() == done);
    CHECK(boong_tool(w.args({"events", "show", "saga-e1", "--json"})).document() == show.document());
    CHECK(boong_tool(w.args({"events", "tail", "--from", "3", "--limit", "2", "--json"})).document() ==
          from.document());

    SECTION("tail --follow prints new events until Ctrl-C, then exits 0") {
        auto follower = spawn_tool(w.args({"events", "tail", "--from", "1", "--follow", "--interval", "100ms",
                                           "--type", "SagaCompleted", "--json"}),
                                   {});
        std::this_thread::sleep_for(1500ms);
        ScriptedSaga again;
        REQUIRE(w.run_saga("e2", again) == boong::SagaStatus::completed);
        std::this_thread::sleep_for(1500ms);
        ::kill(follower.pid, SIGINT);
        auto r = finish(follower);
        CHECK(r.status == 0);
        CHECK(r.err.empty());
        // JSON Lines: e1's SagaCompleted, then e2's.
        std::istringstream lines(r.out);
        std::vector<json> seen;
        for (std::string line; std::getline(lines, line);) seen.push_back(json::parse(line));
        REQUIRE(seen.size() == 2);
        CHECK(seen[0]["stream_id"] == "saga-e1");
        CHECK(seen[1]["stream_id"] == "saga-e2");
    }
}

TEST_CASE("boong schema and outbox status", "[cli]") {
    World w;
    auto status = boong_tool(w.args({"schema", "status", "--json"}));
    REQUIRE(status.status == 0);
    json migrations = json::array();
    json pending = json::array();
    for (int v = 1; v <= boong::pg::kSchemaVersion; ++v) {
        migrations.push_back({{"version", v}, {"description", "<description>"}, {"library_version", "<library_version>"},
                              {"applied_at", "<applied_at>"}});
    }
    const std::string endpoint = status.document()["endpoint"];
    CHECK(normalised(status.document(), {"description", "library_version", "applied_at"}) ==
          json{{"endpoint", endpoint}, {"schema", "public"}, {"events_table", "\"public\".\"" + w.table + "\""},
               {"version", boong::pg::kSchemaVersion}, {"library_version", "<library_version>"},
               {"up_to_date", true}, {"pending", pending}, {"migrations", migrations}});
    CHECK(endpoint.ends_with(":25432") == (w.dsn.find(":25432") != std::string::npos));

    auto migrate = boong_tool(w.args({"schema", "migrate", "--json"}));
    REQUIRE(migrate.status == 0);
    CHECK(migrate.document()["migrated_from"] == boong::pg::kSchemaVersion);

    // The GRANTs of least-privilege roles: the library's, for this table, in the schema the server names.
    auto grants = boong_tool(w.args({"schema", "grants", "--application", "svc", "--read-only", "ops", "--json"}));
    REQUIRE(grants.status == 0);
    const auto statements = boong::postgres_grants(w.store_config(), "public", {"svc", "ops"});
    CHECK(grants.document() == json{{"schema", "public"}, {"statements", statements}});
    auto no_role = boong_tool(w.args({"schema", "grants"}));
    CHECK(no_role.status == 2);
    CHECK(no_role.err.find("name an application role") != std::string::npos);

    // A table nobody created: no schema, and looking at it does not create one.
    World other;
    auto missing_cfg = fs::temp_directory_path() / (other.table + "-missing.json");
    {
        json config = {{"eventStore", {{"type", "postgres"}, {"connection", w.dsn}, {"tableName", "cli_never_made"}}}};
        std::ofstream(missing_cfg) << config.dump();
    }
    auto none = boong_tool({"--config", missing_cfg.string(), "sagas", "list"});
    CHECK(none.status == 1);
    CHECK(none.err.find("no schema yet") != std::string::npos);
    auto none_status = boong_tool({"--config", missing_cfg.string(), "schema", "status", "--json"});
    CHECK(none_status.document()["version"] == 0);
    fs::remove(missing_cfg);

    // Outbox: no relay yet, then one holding its cursor.
    CHECK(boong_tool(w.args({"outbox", "status", "--json"})).document() == json{{"relays", json::array()}});
    ScriptedSaga ok;
    REQUIRE(w.run_saga("o1", ok) == boong::SagaStatus::completed);
    boong::PostgresOutbox outbox(w.store);
    REQUIRE(w.run(outbox.async_acquire("orders-relay", "relay-host/1", std::chrono::milliseconds(60000),
                                       asio::use_awaitable)) == 0);
    auto relays = boong_tool(w.args({"outbox", "status", "--json"}));
    REQUIRE(relays.status == 0);
    CHECK(normalised(relays.document(), {"lease_until"}) ==
          json{{"relays",
                {{{"relay", "orders-relay"}, {"position", 0}, {"pending", 10}, {"owner", "relay-host/1"},
                  {"lease_until", "<lease_until>"}, {"lease_expired", false}}}}});
}

namespace {

// Publishes `count` events to w.topic and runs a consumer of group "billing"
// that rejects each, so that each is dead-lettered at once.
std::vector<std::string> seed_dead_letters(World& w, int count) {
    boong::RedisBroker broker(w.ioc.get_executor(), w.redis_config());
    std::vector<std::string> event_ids;
    for (int i = 0; i < count; ++i) {
        boong::EventData e;
        e.event_id = boong::IdGenerator().next();
        e.type = "InvoiceRequested";
        e.payload = {{"n", i}};
        e.metadata.timestamp = boong::Clock::now();
        event_ids.push_back(e.event_id);
        w.run(broker.async_publish(w.topic, e, asio::use_awaitable));
    }
    asio::cancellation_signal stop;
    bool stopped = false;
    boong::ConsumerOptions options{w.topic, "billing", "c1", {}};
    options.settings.max_deliveries = 1;
    broker.async_consume(options,
                         [](const boong::Delivery&) -> asio::awaitable<void> {
                             throw boong::Rejection("no customer for this invoice");
                             co_return;
                         },
                         asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr) { stopped = true; }));
    std::size_t dead = 0;
    REQUIRE(boong::test::run_until(w.ioc, [&] {
        if (dead < static_cast<std::size_t>(count)) {
            dead = boong::test::run_until_done(w.ioc, [&] {
                       return broker.async_dead_letters(w.topic, "", 100, asio::use_awaitable);
                   }).size();
        }
        return dead == static_cast<std::size_t>(count);
    }, 20s));
    stop.emit(asio::cancellation_type::terminal);
    REQUIRE(boong::test::run_until(w.ioc, [&] { return stopped; }, 20s));
    return event_ids;
}

std::vector<boong::DeadLetter> dead_letters(World& w) {
    boong::RedisBroker broker(w.ioc.get_executor(), w.redis_config());
    return w.run(broker.async_dead_letters(w.topic, "", 100, asio::use_awaitable));
}

std::vector<boong::RecordedEvent> audit(World& w) {
    return w.run(w.store.async_read_stream("boong-audit", 1, 100, asio::use_awaitable));
}

}  // namespace

TEST_CASE("boong dlq and consumers on Redis", "[cli]") {
    World w;
    const auto event_ids = seed_dead_letters(w, 3);
    const auto letters = dead_letters(w);
    REQUIRE(letters.size() == 3);

    SECTION("list and show") {
        auto r = boong_tool(w.args({"dlq", "list", "--topic", w.topic, "--json"}));
        REQUIRE(r.status == 0);
        json expected = json::array();
        for (std::size_t i = 0; i < 3; ++i) {
            expected.push_back({{"message_id", letters[i].message_id}, {"source_topic", w.topic},
                                {"source_message_id", letters[i].source_message_id}, {"group", "billing"},
                                {"reason", letters[i].reason}, {"delivery_count", 1}, {"at", "<at>"},
                                {"event_id", event_ids[i]}, {"event_type", "InvoiceRequested"}});
        }
        CHECK(normalised(r.document(), {"at"}) == json{{"topic", w.topic}, {"dead_letters", expected}});
        CHECK(letters[0].reason.find("no customer for this invoice") != std::string::npos);

        auto show = boong_tool(w.args({"dlq", "show", "--topic", w.topic, "--id", letters[1].message_id, "--json"}));
        REQUIRE(show.status == 0);
        const json shown = show.document()["dead_letters"][0];
        CHECK(shown["event"] == json(*letters[1].event));
        CHECK(shown["raw"] == nullptr);

        auto unknown = boong_tool(w.args({"dlq", "show", "--topic", w.topic, "--id", "1-1"}));
        CHECK(unknown.status == 4);
    }

    SECTION("drop without --reason is refused; nothing changes") {
        auto r = boong_tool(w.args({"dlq", "drop", "--topic", w.topic, "--all"}));
        CHECK(r.status == 2);
        CHECK(r.err.find("--reason is required") != std::string::npos);
        CHECK(dead_letters(w).size() == 3);
        CHECK(audit(w).empty());
        // A selection is required, and only one.
        CHECK(boong_tool(w.args({"dlq", "redrive", "--topic", w.topic})).status == 2);
        CHECK(boong_tool(w.args({"dlq", "redrive", "--topic", w.topic, "--all", "--id", "1-1"})).status == 2);
    }

    SECTION("--dry-run lists what would be done, records and changes nothing") {
        auto r = boong_tool(w.args({"dlq", "redrive", "--topic", w.topic, "--all", "--dry-run", "--as", "alice",
                                    "--json"}));
        REQUIRE(r.status == 0);
        CHECK(r.document() == json{{"operation", "redrive"}, {"topic", w.topic}, {"dry_run", true}, {"by", "alice"},
                                   {"reason", nullptr},
                                   {"ids", {letters[0].message_id, letters[1].message_id, letters[2].message_id}},
                                   {"count", nullptr}, {"audit", nullptr}});
        auto drop = boong_tool(w.args({"dlq", "drop", "--topic", w.topic, "--before", "now", "--reason", "junk",
                                       "--dry-run", "--json"}));
        REQUIRE(drop.status == 0);
        CHECK(drop.document()["ids"].size() == 3);
        CHECK(dead_letters(w).size() == 3);
        CHECK(audit(w).empty());
    }

    SECTION("redrive and drop append the audit event naming the operator, then act") {
        auto r = boong_tool(w.args({"dlq", "redrive", "--topic", w.topic, "--id", letters[0].message_id, "--as",
                                    "alice", "--reason", "customer created", "--json"}));
        REQUIRE(r.status == 0);
        auto events = audit(w);
        REQUIRE(events.size() == 1);
        CHECK(events[0].event.type == "DeadLettersRedriven");
        CHECK(normalised(events[0].event.payload, {"at"}) ==
              json{{"by", "alice"}, {"reason", "customer created"}, {"topic", w.topic},
                   {"ids", {letters[0].message_id}}, {"at", "<at>"}});
        CHECK(r.document() == json{{"operation", "redrive"}, {"topic", w.topic}, {"dry_run", false}, {"by", "alice"},
                                   {"reason", "customer created"}, {"ids", {letters[0].message_id}}, {"count", 1},
                                   {"audit", {{"stream", "boong-audit"}, {"version", 1},
                                              {"position", events[0].position}, {"event_id", events[0].event.event_id},
                                              {"type", "DeadLettersRedriven"}}}});
        CHECK(dead_letters(w).size() == 2);

        // The redriven message is in the topic again, not yet read by billing: lag 1.
        auto consumers = boong_tool(w.args({"consumers", "--topic", w.topic, "--json"}));
        REQUIRE(consumers.status == 0);
        CHECK(consumers.document() ==
              json{{"groups", {{{"topic", w.topic}, {"group", "billing"}, {"consumers", 1}, {"pending", 0},
                                {"lag", 1}, {"trimmed", 0}, {"oldest_pending_at", nullptr}}}}});

        // The default operator is user@host.
        auto drop = boong_tool(w.args({"dlq", "drop", "--topic", w.topic, "--all", "--reason", "duplicates", "--json"}),
                               {"USER=carol"});
        REQUIRE(drop.status == 0);
        CHECK(drop.document()["count"] == 2);
        events = audit(w);
        REQUIRE(events.size() == 2);
        CHECK(events[1].event.type == "DeadLettersDropped");
        CHECK(events[1].event.payload["by"].get<std::string>().starts_with("carol@"));
        CHECK(events[1].event.payload["reason"] == "duplicates");
        CHECK(events[1].event.payload["ids"] == json{letters[1].message_id, letters[2].message_id});
        CHECK(dead_letters(w).empty());

        // Nothing left: nothing to do, and nothing recorded.
        auto again = boong_tool(w.args({"dlq", "drop", "--topic", w.topic, "--all", "--reason", "x"}));
        CHECK(again.status == 0);
        CHECK(audit(w).size() == 2);
    }

    SECTION("a memory broker is refused with a clear message") {
        const fs::path memory_cfg = fs::temp_directory_path() / (w.table + "-memory.json");
        w.write_config(memory_cfg, "memory");
        auto r = boong_tool({"--config", memory_cfg.string(), "dlq", "list", "--topic", w.topic});
        CHECK(r.status == 2);
        CHECK(r.err.find("the configured broker is \"memory\"") != std::string::npos);
        // A flag overrides the file: --redis makes it a Redis broker.
        auto flag = boong_tool({"--config", memory_cfg.string(), "--redis",
                                w.redis_host + ":" + std::to_string(w.redis_port), "dlq", "list", "--topic", w.topic,
                                "--json"});
        CHECK(flag.status == 0);
        CHECK(flag.document()["dead_letters"].size() == 3);
        // BOONG_CONFIG names the file when --config does not.
        auto from_env = boong_tool({"dlq", "list", "--topic", w.topic, "--json"},
                                   {"BOONG_CONFIG=" + w.config_file.string()});
        CHECK(from_env.status == 0);
        CHECK(from_env.document()["dead_letters"].size() == 3);
        fs::remove(memory_cfg);
    }
}

#if BOONG_CLI_TEST_RABBITMQ
namespace {

// The test script's RabbitMQ node (BOONG_TEST_RABBITMQ_HOST, _PORT, _USER,
// _PASSWORD); nullopt when it exported none of them.
std::optional<boong::RabbitMqBrokerConfig> rabbitmq_from_environment() {
    auto set = [](const char* name) {
        const char* v = std::getenv(name);
        return v != nullptr && *v != '\0';
    };
    if (!set("BOONG_TEST_RABBITMQ_HOST") && !set("BOONG_TEST_RABBITMQ_PORT")) return std::nullopt;
    boong::RabbitMqBrokerConfig c;
    c.host = env_or_fail("BOONG_TEST_RABBITMQ_HOST");
    c.port = std::stoi(env_or_fail("BOONG_TEST_RABBITMQ_PORT"));
    c.username = env_or_fail("BOONG_TEST_RABBITMQ_USER");
    env_or_fail("BOONG_TEST_RABBITMQ_PASSWORD");
    c.password_env = "BOONG_TEST_RABBITMQ_PASSWORD";
    c.connect_timeout = 3000ms;
    c.publish_timeout = 5000ms;
    return c;
}

// w's store and topic with the RabbitMQ node as the broker: a config file
// naming the node and the topic's group "billing" (RabbitMQ cannot list a
// topic's groups: the tool shows those its config declares).
struct RabbitMqWorld {
    World& w;
    boong::RabbitMqBrokerConfig broker_config;
    fs::path config_file = fs::temp_directory_path() / (w.table + "-rabbitmq.json");

    RabbitMqWorld(World& world, boong::RabbitMqBrokerConfig c) : w(world), broker_config(std::move(c)) {
        json config = {{"eventStore",
                        {{"type", "postgres"},
                         {"connection", w.dsn},
                         {"tableName", w.table},
                         {"snapshotTableName", w.table + "_snapshots"}}},
                       {"messageBroker",
                        {{"type", "rabbitmq"},
                         {"options",
                          {{"host", broker_config.host},
                           {"port", broker_config.port},
                           {"username", broker_config.username},
                           {"passwordEnv", broker_config.password_env},
                           {"groups", {{w.topic, {"billing"}}}}}}}}};
        std::ofstream(config_file) << config.dump(2);
    }
    ~RabbitMqWorld() { fs::remove(config_file); }
    RabbitMqWorld(const RabbitMqWorld&) = delete;
    RabbitMqWorld& operator=(const RabbitMqWorld&) = delete;

    std::vector<std::string> args(std::vector<std::string> a) const {
        a.insert(a.begin(), {"--config", config_file.string()});
        return a;
    }
    std::string endpoint() const { return broker_config.host + ":" + std::to_string(broker_config.port); }

    std::vector<boong::DeadLetter> dead_letters() {
        boong::RabbitMqBroker broker(w.ioc.get_executor(), broker_config);
        return w.run(broker.async_dead_letters(w.topic, "", 100, asio::use_awaitable));
    }
};

// As seed_dead_letters, on RabbitMQ: the group's queue declared first (it
// routes at publish time), `count` events published, each rejected by a
// consumer of "billing", which is then stopped (and its connection closed).
std::vector<std::string> seed_rabbitmq_dead_letters(RabbitMqWorld& r, int count) {
    World& w = r.w;
    boong::RabbitMqBroker broker(w.ioc.get_executor(), r.broker_config);
    w.run(broker.async_declare(w.topic, std::vector<std::string>{"billing"}, asio::use_awaitable));
    std::vector<std::string> event_ids;
    for (int i = 0; i < count; ++i) {
        boong::EventData e;
        e.event_id = boong::IdGenerator().next();
        e.type = "InvoiceRequested";
        e.payload = {{"n", i}};
        e.metadata.timestamp = boong::Clock::now();
        event_ids.push_back(e.event_id);
        w.run(broker.async_publish(w.topic, e, asio::use_awaitable));
    }
    asio::cancellation_signal stop;
    bool stopped = false;
    boong::ConsumerOptions options{w.topic, "billing", "c1", {}};
    options.settings.max_deliveries = 1;
    broker.async_consume(options,
                         [](const boong::Delivery&) -> asio::awaitable<void> {
                             throw boong::Rejection("no customer for this invoice");
                             co_return;
                         },
                         asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr) { stopped = true; }));
    std::size_t dead = 0;
    REQUIRE(boong::test::run_until(w.ioc, [&] {
        if (dead < static_cast<std::size_t>(count)) {
            dead = boong::test::run_until_done(w.ioc, [&] {
                       return broker.async_dead_letters(w.topic, "", 100, asio::use_awaitable);
                   }).size();
        }
        return dead == static_cast<std::size_t>(count);
    }, 20s));
    stop.emit(asio::cancellation_type::terminal);
    REQUIRE(boong::test::run_until(w.ioc, [&] { return stopped; }, 20s));
    return event_ids;
}

}  // namespace

TEST_CASE("boong dlq and consumers on RabbitMQ", "[cli]") {
    const auto broker_config = rabbitmq_from_environment();
    if (!broker_config) {
        WARN("skipped: BOONG_TEST_RABBITMQ_HOST/_PORT/_USER/_PASSWORD are not set (scripts/test.sh exports them)");
        return;
    }
    World w;
    RabbitMqWorld r(w, *broker_config);
    const auto event_ids = seed_rabbitmq_dead_letters(r, 3);
    const auto letters = r.dead_letters();
    REQUIRE(letters.size() == 3);
    // Every event dead-lettered once, each letter with an id of its own (UUIDs, not the topic's message ids).
    std::set<std::string> dead_events;
    for (const auto& d : letters) {
        REQUIRE(d.event);
        dead_events.insert(d.event->event_id);
        CHECK(!d.source_message_id.empty());
        CHECK(d.source_message_id != d.message_id);
    }
    CHECK(dead_events == std::set<std::string>(event_ids.begin(), event_ids.end()));

    SECTION("list and show") {
        auto list = boong_tool(r.args({"dlq", "list", "--topic", w.topic, "--json"}));
        REQUIRE(list.status == 0);
        json expected = json::array();
        for (const auto& d : letters) {
            expected.push_back({{"message_id", d.message_id}, {"source_topic", w.topic},
                                {"source_message_id", d.source_message_id}, {"group", "billing"},
                                {"reason", d.reason}, {"delivery_count", 1}, {"at", "<at>"},
                                {"event_id", d.event->event_id}, {"event_type", "InvoiceRequested"}});
        }
        CHECK(normalised(list.document(), {"at"}) == json{{"topic", w.topic}, {"dead_letters", expected}});
        CHECK(letters[0].reason.find("no customer for this invoice") != std::string::npos);
        // Listing reads the queue and gives it back: nothing is lost by looking.
        CHECK(r.dead_letters().size() == 3);

        auto show = boong_tool(r.args({"dlq", "show", "--topic", w.topic, "--id", letters[1].message_id, "--json"}));
        REQUIRE(show.status == 0);
        const json shown = show.document();
        REQUIRE(shown["dead_letters"].size() == 1);
        CHECK(normalised(shown["dead_letters"][0], {"at"}) ==
              json{{"message_id", letters[1].message_id}, {"source_topic", w.topic},
                   {"source_message_id", letters[1].source_message_id}, {"group", "billing"},
                   {"reason", letters[1].reason}, {"delivery_count", 1}, {"at", "<at>"},
                   {"event_id", letters[1].event->event_id}, {"event_type", "InvoiceRequested"},
                   {"event", json(*letters[1].event)}, {"raw", nullptr}});

        auto unknown = boong_tool(r.args({"dlq", "show", "--topic", w.topic, "--id", boong::IdGenerator().next()}));
        CHECK(unknown.status == 4);
        CHECK(r.dead_letters().size() == 3);
    }

    SECTION("drop without --reason is refused; nothing changes") {
        auto drop = boong_tool(r.args({"dlq", "drop", "--topic", w.topic, "--all"}));
        CHECK(drop.status == 2);
        CHECK(drop.err.find("--reason is required") != std::string::npos);
        CHECK(r.dead_letters().size() == 3);
        CHECK(audit(w).empty());
    }

    SECTION("--dry-run lists what would be done, records and changes nothing") {
        auto redrive = boong_tool(r.args({"dlq", "redrive", "--topic", w.topic, "--all", "--dry-run", "--as", "alice",
                                          "--json"}));
        REQUIRE(redrive.status == 0);
        CHECK(redrive.document() == json{{"operation", "redrive"}, {"topic", w.topic}, {"dry_run", true},
                                         {"by", "alice"}, {"reason", nullptr},
                                         {"ids", {letters[0].message_id, letters[1].message_id, letters[2].message_id}},
                                         {"count", nullptr}, {"audit", nullptr}});
        auto drop = boong_tool(r.args({"dlq", "drop", "--topic", w.topic, "--before", "now", "--reason", "junk",
                                       "--dry-run", "--json"}));
        REQUIRE(drop.status == 0);
        CHECK(drop.document()["ids"].size() == 3);
        CHECK(r.dead_letters().size() == 3);
        CHECK(audit(w).empty());
    }

    SECTION("redrive and drop append the audit event naming the operator, then act; consumers shows the lag") {
        // Before: the group's queue is empty and nobody consumes it. RabbitMQ
        // cannot tell pending (delivered, unacked) or its age: null, never 0.
        const json idle = json{{"groups", {{{"topic", w.topic}, {"group", "billing"}, {"consumers", 0},
                                            {"pending", nullptr}, {"lag", 0}, {"trimmed", nullptr},
                                            {"oldest_pending_at", nullptr}}}}};
        auto before = boong_tool(r.args({"consumers", "--topic", w.topic, "--json"}));
        REQUIRE(before.status == 0);
        CHECK(before.document() == idle);
        // Without --topic: the topics of the config's groups.
        auto configured = boong_tool(r.args({"consumers", "--json"}));
        REQUIRE(configured.status == 0);
        CHECK(configured.document() == idle);

        auto redrive = boong_tool(r.args({"dlq", "redrive", "--topic", w.topic, "--id", letters[0].message_id, "--as",
                                          "alice", "--reason", "customer created", "--json"}));
        REQUIRE(redrive.status == 0);
        auto events = audit(w);
        REQUIRE(events.size() == 1);
        CHECK(events[0].event.type == "DeadLettersRedriven");
        CHECK(normalised(events[0].event.payload, {"at"}) ==
              json{{"by", "alice"}, {"reason", "customer created"}, {"topic", w.topic},
                   {"ids", {letters[0].message_id}}, {"at", "<at>"}});
        CHECK(redrive.document() ==
              json{{"operation", "redrive"}, {"topic", w.topic}, {"dry_run", false}, {"by", "alice"},
                   {"reason", "customer created"}, {"ids", {letters[0].message_id}}, {"count", 1},
                   {"audit", {{"stream", "boong-audit"}, {"version", 1}, {"position", events[0].position},
                              {"event_id", events[0].event.event_id}, {"type", "DeadLettersRedriven"}}}});
        CHECK(r.dead_letters().size() == 2);

        // The redriven message waits in billing's queue, not yet delivered: lag 1.
        auto consumers = boong_tool(r.args({"consumers", "--topic", w.topic, "--json"}));
        REQUIRE(consumers.status == 0);
        CHECK(consumers.document() ==
              json{{"groups", {{{"topic", w.topic}, {"group", "billing"}, {"consumers", 0}, {"pending", nullptr},
                                {"lag", 1}, {"trimmed", nullptr}, {"oldest_pending_at", nullptr}}}}});
        // For people: what is unknown is "?", and the table says why.
        auto table = boong_tool(r.args({"consumers", "--topic", w.topic}));
        REQUIRE(table.status == 0);
        CHECK(table.out.find("RabbitMQ does not show a queue's unacknowledged messages") != std::string::npos);

        // The default operator is user@host.
        auto drop = boong_tool(r.args({"dlq", "drop", "--topic", w.topic, "--all", "--reason", "duplicates", "--json"}),
                               {"USER=carol"});
        REQUIRE(drop.status == 0);
        CHECK(drop.document()["count"] == 2);
        events = audit(w);
        REQUIRE(events.size() == 2);
        CHECK(events[1].event.type == "DeadLettersDropped");
        CHECK(events[1].event.payload["by"].get<std::string>().starts_with("carol@"));
        CHECK(events[1].event.payload["reason"] == "duplicates");
        CHECK(events[1].event.payload["ids"] == json{letters[1].message_id, letters[2].message_id});
        CHECK(r.dead_letters().empty());

        // Nothing left: nothing to do, and nothing recorded.
        auto again = boong_tool(r.args({"dlq", "drop", "--topic", w.topic, "--all", "--reason", "x"}));
        CHECK(again.status == 0);
        CHECK(audit(w).size() == 2);
    }

    SECTION("flags name the node; groups the config does not declare are refused, not shown as none") {
        const std::vector<std::string> flags{"--rabbitmq", r.endpoint(), "--rabbitmq-user", r.broker_config.username};
        const std::vector<std::string> password{"BOONG_RABBITMQ_PASSWORD=" + env_or_fail("BOONG_TEST_RABBITMQ_PASSWORD")};
        auto with = [&](std::vector<std::string> a) {
            a.insert(a.begin(), flags.begin(), flags.end());
            return a;
        };
        auto list = boong_tool(with({"dlq", "list", "--topic", w.topic, "--json"}), password);
        REQUIRE(list.status == 0);
        CHECK(list.document()["dead_letters"].size() == 3);

        auto no_groups = boong_tool(with({"consumers", "--topic", w.topic, "--json"}), password);
        CHECK(no_groups.status == 2);
        CHECK(no_groups.out.empty());
        CHECK(no_groups.err == "boong: RabbitMQ cannot list the consumer groups of a topic: name those of \"" + w.topic +
                                   "\" in the config's messageBroker.options.groups (as the services that consume "
                                   "it do)\n");
        CHECK(boong_tool(with({"consumers"}), password).status == 2);
        // A topic the config file does not name either.
        CHECK(boong_tool(r.args({"consumers", "--topic", w.topic + "-other"})).status == 2);

        auto unreachable = boong_tool({"--rabbitmq", "127.0.0.1:1", "dlq", "list", "--topic", w.topic});
        CHECK(unreachable.status == 3);
        CHECK(unreachable.out.empty());
        CHECK(unreachable.err.starts_with("boong: cannot reach RabbitMQ at 127.0.0.1:1: "));
        CHECK(std::count(unreachable.err.begin(), unreachable.err.end(), '\n') == 1);
        CHECK(r.dead_letters().size() == 3);
    }
}
#endif
