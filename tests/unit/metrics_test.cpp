// Boong::prometheus: sagas on the in-memory store and a consumer on the
// in-memory broker, observed by a PrometheusObserver; the registry's text is
// checked sample by sample and by `promtool check metrics`.
#include "support/async.hpp"
#include "support/events.hpp"
#include "support/scripted_saga.hpp"

#include <boong/memory/broker.hpp>
#include <boong/memory/store.hpp>
#include <boong/prometheus/metrics.hpp>
#include <boong/saga_runner.hpp>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

using namespace boong;
using namespace boong::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

std::string scrape(prometheus::Registry& registry) {
    return prometheus::TextSerializer().Serialize(registry.Collect());
}

// "name{labels}" -> value, for every sample of the exposition text.
std::map<std::string, double> samples(const std::string& text) {
    std::map<std::string, double> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#') continue;
        const auto space = line.rfind(' ');
        REQUIRE(space != std::string::npos);
        out[line.substr(0, space)] = std::stod(line.substr(space + 1));
    }
    return out;
}

double value(const std::map<std::string, double>& all, const std::string& sample) {
    const auto it = all.find(sample);
    if (it == all.end()) FAIL("no sample " << sample);
    return it->second;
}

// The label names used by every sample (prometheus-cpp writes them name="value", comma-separated).
std::set<std::string> label_names(const std::map<std::string, double>& all) {
    std::set<std::string> names;
    for (const auto& [sample, v] : all) {
        const auto open = sample.find('{');
        if (open == std::string::npos) continue;
        std::size_t at = open + 1;
        while (at < sample.size() && sample[at] != '}') {
            const auto eq = sample.find('=', at);
            names.insert(sample.substr(at, eq - at));
            const auto close = sample.find('"', sample.find('"', eq) + 1);
            at = close + 1;
            if (at < sample.size() && sample[at] == ',') ++at;
        }
    }
    return names;
}

struct CommandResult {
    int status = -1;
    std::string output;
};

// Runs `command` through the shell, its stdout and stderr captured.
CommandResult run_command(const std::string& command) {
    CommandResult r;
    FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
    if (pipe == nullptr) return r;
    std::array<char, 512> buffer{};
    while (const std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe)) r.output.append(buffer.data(), n);
    const int status = ::pclose(pipe);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

// promtool's complaints about `text` (empty: none). A missing promtool fails
// the test: scripts/deps.sh installs it (Debian's prometheus package).
std::string promtool_complaints(const std::string& text) {
    if (run_command("command -v promtool").status != 0) {
        FAIL("promtool not found: install Debian's prometheus package (scripts/deps.sh does)");
    }
    const auto path = std::filesystem::temp_directory_path() / ("boong-metrics-" + std::to_string(::getpid()) + ".prom");
    std::ofstream(path) << text;
    const auto r = run_command("promtool check metrics < '" + path.string() + "'");
    std::filesystem::remove(path);
    if (r.status != 0 || !r.output.empty()) return "exit " + std::to_string(r.status) + ": " + r.output;
    return {};
}

// Throws from everything it is told.
class ThrowingObserver : public Observer {
public:
    void saga_started(std::string_view) override { throw std::runtime_error("observer broke"); }
    void saga_ended(std::string_view, SagaStatus, std::chrono::nanoseconds) override {
        throw std::runtime_error("observer broke");
    }
    void step_attempted(std::string_view, std::string_view, bool, std::string_view, std::chrono::nanoseconds) override {
        throw std::runtime_error("observer broke");
    }
};

}  // namespace

TEST_CASE("metrics: sagas, steps, retries and messages are counted; promtool accepts the text", "[metrics]") {
    prometheus::Registry registry;
    auto observer = std::make_shared<PrometheusObserver>(registry);

    asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    def.plans["b"].actions = {Act::fail, Act::ok};  // one retry, then done
    SagaRunner<FourSteps, MemoryEventStore> runner(def, store, fast_options(), RunnerOptions{.observer = observer});
    std::vector<std::string> saga_ids;

    run(ioc, [&]() -> asio::awaitable<void> {
        auto completed = co_await runner.run(TestData{});
        CHECK(completed.status == SagaStatus::completed);
        def.plans["b"].actions = {Act::ok};
        def.plans["c"].actions = {Act::reject};  // a, b compensated
        auto compensated = co_await runner.run(TestData{});
        CHECK(compensated.status == SagaStatus::compensated);
        def.plans["c"].actions = {Act::ok};
        def.plans["a"].compensations = {Act::fail};  // its compensation gives up: failed
        def.plans["d"].actions = {Act::reject};
        auto failed = co_await runner.run(TestData{});
        CHECK(failed.status == SagaStatus::failed);
        saga_ids = {completed.saga_id, compensated.saga_id, failed.saga_id};
    });

    // A consumer: one message handled, one failing once then handled, one rejected (dead-lettered).
    MemoryBroker broker(ioc.get_executor());
    IdGenerator ids;
    ConsumerOptions options;
    options.topic = "orders";
    options.group = "billing";
    options.consumer = "c1";
    options.settings.visibility_timeout = 50ms;
    options.settings.observer = observer;
    int handled = 0;
    asio::cancellation_signal stop;
    bool stopped = false;
    asio::co_spawn(ioc,
                   broker.async_consume(
                       options,
                       [&](const Delivery& d) -> asio::awaitable<void> {
                           if (d.event.type == "Bad") throw Rejection("a bad order");
                           if (d.event.type == "Flaky" && d.delivery_count == 1) throw std::runtime_error("flaky");
                           ++handled;
                           co_return;
                       },
                       asio::use_awaitable),
                   asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr) { stopped = true; }));
    run_until_done(ioc, [&]() -> asio::awaitable<void> {
        for (const char* type : {"Good", "Flaky", "Bad"}) {
            co_await broker.async_publish("orders", make_event(ids, type), asio::use_awaitable);
        }
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while ((handled < 2 || broker.read_topic("orders.dlq").empty()) && std::chrono::steady_clock::now() < deadline)
            co_await sleep_for(5ms);
    });
    stop.emit(asio::cancellation_type::terminal);
    run_until_done(ioc, [&]() -> asio::awaitable<void> {
        while (!stopped) co_await sleep_for(5ms);
    });
    REQUIRE(handled == 2);

    const std::string text = scrape(registry);
    INFO(text);
    const auto all = samples(text);
    const std::string saga = "saga_type=\"scripted\"";
    CHECK(value(all, "boong_sagas_started_total{" + saga + "}") == 3);
    CHECK(value(all, "boong_sagas_ended_total{outcome=\"completed\"," + saga + "}") == 1);
    CHECK(value(all, "boong_sagas_ended_total{outcome=\"compensated\"," + saga + "}") == 1);
    CHECK(value(all, "boong_sagas_ended_total{outcome=\"failed\"," + saga + "}") == 1);
    CHECK(value(all, "boong_saga_duration_seconds_count{outcome=\"compensated\"," + saga + "}") == 1);
    CHECK(value(all, "boong_sagas_in_flight{" + saga + "}") == 0);
    CHECK(value(all, "boong_step_retries_total{phase=\"action\"," + saga + ",step=\"b\"}") == 1);
    // a's compensation: 3 attempts (fast_options), 2 retried, then it gave up.
    CHECK(value(all, "boong_step_retries_total{phase=\"compensation\"," + saga + ",step=\"a\"}") == 2);
    CHECK(value(all, "boong_step_duration_seconds_count{outcome=\"failed\",phase=\"action\"," + saga +
                         ",step=\"b\"}") == 1);
    CHECK(value(all, "boong_step_duration_seconds_count{outcome=\"completed\",phase=\"action\"," + saga +
                         ",step=\"a\"}") == 3);
    CHECK(value(all, "boong_step_duration_seconds_count{outcome=\"rejected\",phase=\"action\"," + saga +
                         ",step=\"c\"}") == 1);
    CHECK(value(all, "boong_step_duration_seconds_count{outcome=\"completed\",phase=\"compensation\"," + saga +
                         ",step=\"b\"}") == 2);
    CHECK(value(all, "boong_step_duration_seconds_count{outcome=\"failed\",phase=\"compensation\"," + saga +
                         ",step=\"a\"}") == 3);

    const std::string consumer = "group=\"billing\",";
    CHECK(value(all, "boong_messages_total{" + consumer + "outcome=\"handled\",topic=\"orders\"}") == 2);
    CHECK(value(all, "boong_messages_total{" + consumer + "outcome=\"failed\",topic=\"orders\"}") == 1);
    CHECK(value(all, "boong_messages_total{" + consumer + "outcome=\"dead_lettered\",topic=\"orders\"}") == 1);
    CHECK(value(all, "boong_messages_dead_lettered_total{" + consumer + "reason=\"rejected\",topic=\"orders\"}") == 1);
    CHECK(value(all, "boong_messages_redelivered_total{" + consumer + "topic=\"orders\"}") == 1);
    CHECK(value(all, "boong_message_handler_duration_seconds_count{" + consumer +
                         "outcome=\"handled\",topic=\"orders\"}") == 2);

    // Labels name kinds of things, never instances.
    const std::set<std::string> allowed{"saga_type", "step", "phase", "outcome", "topic", "group", "reason", "le"};
    for (const auto& name : label_names(all)) {
        INFO(name);
        CHECK(allowed.count(name) == 1);
    }
    for (const auto& id : saga_ids) CHECK(text.find(id) == std::string::npos);

    CHECK(promtool_complaints(text).empty());
}

TEST_CASE("metrics: an observer that throws changes nothing in the saga", "[metrics]") {
    asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    ScriptedSaga def;
    SagaRunner<FourSteps, MemoryEventStore> runner(def, store, fast_options(),
                                                    RunnerOptions{.observer = std::make_shared<ThrowingObserver>()});
    const auto outcome = run(ioc, [&]() -> asio::awaitable<SagaOutcome<TestData>> { co_return co_await runner.run(TestData{}); });
    CHECK(outcome.status == SagaStatus::completed);
}

TEST_CASE("metrics: every family appears once something happened, the orchestrator's and the store's too",
          "[metrics]") {
    prometheus::Registry registry;
    PrometheusObserver observer(registry);
    // prometheus-cpp writes a family once it holds a series.
    CHECK(scrape(registry).find("boong_sagas_started_total") == std::string::npos);
    observer.saga_started("scripted");
    observer.saga_ended("scripted", SagaStatus::completed, 20ms);
    observer.saga_resumed("scripted");
    observer.saga_interrupted("scripted");
    observer.step_attempted("scripted", "a", false, "completed", 1ms);
    observer.step_retried("scripted", "a", true);
    observer.saga_claimed("scripted", 3);
    observer.saga_lost("scripted");
    observer.orchestrator_fenced("scripted");
    observer.lease_renewal_failed("scripted");
    observer.saga_blocked("scripted");
    observer.message_handled("orders", "billing", "handled", 1ms);
    observer.message_redelivered("orders", "billing");
    observer.message_dead_lettered("orders", "billing", "undecodable");
    observer.consumer_paused("orders", "billing", true);
    observer.consumer_backlog("orders", "billing", 3, 40, 2500ms);
    observer.published("orders", false, 2ms);
    observer.outbox_lag(7, 1500ms);
    observer.appended(12, 3ms);
    observer.pool_waited(1ms);
    const std::string text = scrape(registry);
    for (const char* family :
         {"boong_sagas_started_total", "boong_sagas_ended_total", "boong_sagas_interrupted_total",
          "boong_saga_duration_seconds", "boong_step_duration_seconds", "boong_step_retries_total",
          "boong_sagas_in_flight", "boong_orchestrator_claims_total", "boong_orchestrator_lost_sagas_total",
          "boong_orchestrator_self_fencing_total", "boong_orchestrator_renewal_failures_total",
          "boong_sagas_blocked_total", "boong_outbox_lag_events", "boong_outbox_lag_seconds", "boong_messages_total",
          "boong_messages_redelivered_total", "boong_message_handler_duration_seconds",
          "boong_messages_dead_lettered_total", "boong_consumer_paused", "boong_consumer_pending_messages",
          "boong_consumer_lag_messages", "boong_consumer_oldest_pending_seconds", "boong_store_append_duration_seconds",
          "boong_store_group_commit_events", "boong_store_pool_wait_seconds", "boong_publish_duration_seconds",
          "boong_publish_errors_total"}) {
        INFO(family);
        CHECK(text.find(std::string("# TYPE ") + family + " ") != std::string::npos);
    }
    const auto all = samples(text);
    CHECK(value(all, "boong_sagas_in_flight{saga_type=\"scripted\"}") == 0);
    CHECK(value(all, "boong_orchestrator_claims_total{saga_type=\"scripted\"}") == 3);
    CHECK(value(all, "boong_consumer_paused{group=\"billing\",topic=\"orders\"}") == 1);
    CHECK(value(all, "boong_consumer_pending_messages{group=\"billing\",topic=\"orders\"}") == 3);
    CHECK(value(all, "boong_consumer_lag_messages{group=\"billing\",topic=\"orders\"}") == 40);
    CHECK(value(all, "boong_consumer_oldest_pending_seconds{group=\"billing\",topic=\"orders\"}") == 2.5);
    CHECK(value(all, "boong_publish_errors_total{topic=\"orders\"}") == 1);
    CHECK(value(all, "boong_publish_duration_seconds_count{topic=\"orders\"}") == 1);
    CHECK(value(all, "boong_outbox_lag_events") == 7);
    CHECK(value(all, "boong_outbox_lag_seconds") == 1.5);
    CHECK(value(all, "boong_store_group_commit_events_sum") == 12);
    CHECK(promtool_complaints(text).empty());
    // A second observer on the same registry shares its families (prometheus-cpp merges them).
    PrometheusObserver second(registry);
    second.saga_claimed("scripted", 2);
    CHECK(value(samples(scrape(registry)), "boong_orchestrator_claims_total{saga_type=\"scripted\"}") == 5);
}

TEST_CASE("metrics: a backlog the broker cannot tell is absent, not zero", "[metrics]") {
    prometheus::Registry registry;
    PrometheusObserver observer(registry);
    const std::string pending = "boong_consumer_pending_messages{group=\"billing\",topic=\"orders\"}";
    const std::string lag = "boong_consumer_lag_messages{group=\"billing\",topic=\"orders\"}";
    const std::string oldest = "boong_consumer_oldest_pending_seconds{group=\"billing\",topic=\"orders\"}";
    observer.consumer_backlog("orders", "billing", 2, 5, 1s);
    auto all = samples(scrape(registry));
    CHECK(all.count(pending) == 1);
    CHECK(value(all, oldest) == 1);
    // As RabbitMQ reports it: lag only.
    observer.consumer_backlog("orders", "billing", std::nullopt, 0, std::nullopt);
    all = samples(scrape(registry));
    CHECK(all.count(pending) == 0);
    CHECK(all.count(oldest) == 0);
    CHECK(value(all, lag) == 0);
    // Another group keeps its own series.
    observer.consumer_backlog("orders", "shipping", 0, 1, 0ns);
    all = samples(scrape(registry));
    CHECK(value(all, "boong_consumer_oldest_pending_seconds{group=\"shipping\",topic=\"orders\"}") == 0);
    CHECK(all.count(pending) == 0);
    CHECK(promtool_complaints(scrape(registry)).empty());
}

TEST_CASE("metrics: a consumer paused by an outage shows in boong_consumer_paused until the dependency answers",
          "[metrics]") {
    prometheus::Registry registry;
    auto observer = std::make_shared<PrometheusObserver>(registry);
    asio::io_context ioc;
    MemoryBroker broker(ioc.get_executor());
    IdGenerator ids;
    ConsumerOptions options;
    options.topic = "orders";
    options.group = "shipping";
    options.consumer = "c1";
    options.settings.outage_backoff = RetryPolicy{1, 10ms, 2.0, 50ms, 0.0};
    options.settings.observer = observer;
    const std::string paused = "boong_consumer_paused{group=\"shipping\",topic=\"orders\"}";
    int tries = 0;
    bool handled = false, stopped = false;
    double most_paused = 0;
    asio::cancellation_signal stop;
    asio::co_spawn(ioc,
                   broker.async_consume(
                       options,
                       [&](const Delivery&) -> asio::awaitable<void> {
                           if (++tries <= 2) throw Unavailable("the warehouse does not answer");
                           handled = true;
                           co_return;
                       },
                       asio::use_awaitable),
                   asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr) { stopped = true; }));
    run_until_done(ioc, [&]() -> asio::awaitable<void> {
        co_await broker.async_publish("orders", make_event(ids, "Ship"), asio::use_awaitable);
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!handled && std::chrono::steady_clock::now() < deadline) {
            const auto all = samples(scrape(registry));
            if (const auto it = all.find(paused); it != all.end()) most_paused = std::max(most_paused, it->second);
            co_await sleep_for(1ms);
        }
    });
    stop.emit(asio::cancellation_type::terminal);
    run_until_done(ioc, [&]() -> asio::awaitable<void> {
        while (!stopped) co_await sleep_for(5ms);
    });
    REQUIRE(handled);
    const auto all = samples(scrape(registry));
    CHECK(most_paused == 1);
    CHECK(value(all, paused) == 0);
    CHECK(value(all, "boong_messages_total{group=\"shipping\",outcome=\"unavailable\",topic=\"orders\"}") == 2);
    CHECK(value(all, "boong_messages_total{group=\"shipping\",outcome=\"handled\",topic=\"orders\"}") == 1);
    // Held through the outage, not delivered again: no redelivery counted.
    CHECK(all.count("boong_messages_redelivered_total{group=\"shipping\",topic=\"orders\"}") == 0);
}
