// A three-node RabbitMQ cluster loses a node under load (CTest label `chaos`,
// run alone: it stops and kills cluster nodes). The broker is configured with
// the three nodes (`nodes`) listing the victim first, so that both of its
// connections (publisher, consumers) are on the victim and the group's quorum
// queue, declared through the publisher's, has its leader there too. While
// many publishes are in flight and a consumer drains the queue, the victim
// stops cleanly (first case) or is killed with SIGKILL (second case), stays
// down for a while, and starts again. Then:
//   - every message whose publish was confirmed is consumed, at least once
//     (a publish that failed is tried again, as the outbox relay does; only
//     confirmed ones count);
//   - publishes are confirmed, and messages consumed, while the victim is
//     down: publisher and consumer went on through the other nodes;
//   - the queue's leader moved off the victim.
// Duplicates (at-least-once) are allowed and reported, with the longest pause
// in consumption. A third case lists nodes that refuse connections first:
// they are passed over, and when none is left the error names them all.
//
// scripts/test.sh starts the cluster (scripts/lib/servers.sh:
// boong_start_rabbitmq_cluster) and exports BOONG_TEST_RABBITMQ_CLUSTER_*;
// without them the test fails (never skipped).
#include <boong/config.hpp>
#include <boong/error.hpp>
#include <boong/rabbitmq/broker.hpp>

#include "support/async.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using nlohmann::json;

constexpr int kNodes = 3;
constexpr int kPublishers = 64;          // publishes in flight at once
constexpr std::size_t kConcurrency = 64;  // the consumer's handlers in flight

std::string env(const std::string& name) {
    const char* v = std::getenv(name.c_str());
    if (!v || !*v)
        throw std::runtime_error(name +
                                 " is not set: run scripts/test.sh --label chaos, or source scripts/lib/servers.sh "
                                 "and call boong_start_rabbitmq_cluster");
    return v;
}

// The variable's words ("a b c"): one per node.
std::vector<std::string> per_node(const std::string& name) {
    std::istringstream in(env(name));
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    if (out.size() != kNodes)
        throw std::runtime_error(name + " should name " + std::to_string(kNodes) + " nodes, not \"" + env(name) + "\"");
    return out;
}

std::string node_command(const char* what, int node) {
    return env(std::string("BOONG_TEST_RABBITMQ_CLUSTER_") + what + "_" + std::to_string(node));
}

// Runs a shell command on a thread of its own (it blocks for seconds) while
// the io_context goes on; its output, or an exception when it fails.
asio::awaitable<std::string> shell(std::string command) {
    struct State {
        std::atomic<bool> done{false};
        int status = -1;
        std::string out;
    };
    auto state = std::make_shared<State>();
    std::thread([state, command] {
        if (FILE* p = ::popen((command + " 2>&1").c_str(), "r")) {
            char buf[4096];
            for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) state->out.append(buf, n);
            state->status = ::pclose(p);
        }
        state->done = true;
    }).detach();  // holds the state itself: a test that gave up does not wait for it
    while (!state->done) co_await boong::test::sleep_for(20ms);
    if (state->status != 0)
        throw std::runtime_error("`" + command + "` failed (status " + std::to_string(state->status) +
                                 "): " + state->out);
    co_return state->out;
}

// The node (1..3) leading `queue`, asked of node `ask`; 0 when none does.
asio::awaitable<int> queue_leader(int ask, std::string queue) {
    const auto out = co_await shell(node_command("CTL", ask) + " list_queues name leader --formatter json");
    const auto names = per_node("BOONG_TEST_RABBITMQ_CLUSTER_NODES");
    for (const auto& q : json::parse(out)) {
        if (q.value("name", "") != queue) continue;
        const auto leader = q.value("leader", "");
        for (int i = 0; i < kNodes; ++i)
            if (names[i] == leader) co_return i + 1;
    }
    co_return 0;
}

// The broker's configuration as a service's file would give it: the three
// nodes, `first` first.
boong::RabbitMqBrokerConfig cluster_config(int first, const std::string& topic, const std::string& group) {
    const auto host = env("BOONG_TEST_RABBITMQ_CLUSTER_HOST");
    const auto ports = per_node("BOONG_TEST_RABBITMQ_CLUSTER_PORTS");
    json nodes = json::array();
    for (int i = 0; i < kNodes; ++i) nodes.push_back(host + ":" + ports[(first - 1 + i) % kNodes]);
    json groups = json::object();
    groups[topic] = json::array({group});
    json options = json::object();
    options["nodes"] = nodes;
    options["username"] = env("BOONG_TEST_RABBITMQ_CLUSTER_USER");
    env("BOONG_TEST_RABBITMQ_CLUSTER_PASSWORD");
    options["passwordEnv"] = "BOONG_TEST_RABBITMQ_CLUSTER_PASSWORD";
    options["connectTimeout"] = 2000;
    options["publishTimeout"] = 15000;
    options["groups"] = groups;
    json broker = json::object();
    broker["type"] = "rabbitmq";
    broker["options"] = options;
    json file = json::object();
    file["messageBroker"] = broker;
    return boong::parse_config(file, "rabbitmq_cluster_test").message_broker.rabbitmq;
}

boong::EventData numbered(boong::IdGenerator& ids, int n) {
    boong::EventData e;
    e.event_id = ids.next();
    e.type = "ClusterFlow";
    e.payload = json::object();
    e.payload["n"] = n;
    return e;
}

// What happened, kept by the test case (not a coroutine) and touched only on
// the io_context's thread.
struct Flow {
    // Publishing: numbers 0, 1, ... each published until confirmed.
    int next = 0;
    bool stop_publishing = false;
    int publishers = 0;  // running
    std::map<int, SteadyClock::time_point> confirmed;
    int retries = 0;
    std::string last_unavailable;
    std::vector<std::string> errors;  // anything but broker_unavailable: the test fails
    // Consuming.
    std::map<int, int> consumed;  // number -> deliveries
    int deliveries = 0;
    SteadyClock::time_point last_consumed{};
    SteadyClock::duration longest_pause{};
    // The outage: from the moment the victim is down to the moment it is told to start.
    bool down = false;
    int confirmed_while_down = 0;
    int consumed_while_down = 0;
    int leader_before = 0, leader_while_down = 0;

    void on_confirmed(int n) {
        confirmed.emplace(n, SteadyClock::now());
        if (down) ++confirmed_while_down;
    }
    void on_consumed(int n) {
        const auto now = SteadyClock::now();
        if (deliveries > 0 && !stop_publishing) longest_pause = std::max(longest_pause, now - last_consumed);
        last_consumed = now;
        ++deliveries;
        ++consumed[n];
        if (down) ++consumed_while_down;
    }
    std::vector<int> missing() const {
        std::vector<int> out;
        for (const auto& [n, at] : confirmed)
            if (!consumed.count(n)) out.push_back(n);
        return out;
    }
};

asio::awaitable<void> publisher(boong::RabbitMqBroker& broker, std::string topic, Flow& flow) {
    boong::IdGenerator ids;
    while (!flow.stop_publishing && flow.errors.empty()) {
        const int n = flow.next++;
        const auto event = numbered(ids, n);
        for (;;) {
            bool unavailable = false;
            try {
                co_await broker.async_publish(topic, event, asio::use_awaitable);
                flow.on_confirmed(n);
            } catch (const boong::Error& e) {
                if (e.code() != boong::errc::broker_unavailable) {
                    flow.errors.push_back(e.what());
                } else {
                    unavailable = true;
                    flow.last_unavailable = e.what();
                }
            }
            if (!unavailable) break;
            // Not confirmed (it may still have been stored): tried again, as the outbox relay does.
            ++flow.retries;
            co_await boong::test::sleep_for(100ms);
        }
    }
}

enum class Outage { stop, kill };

// The scenario: `victim` (1..3) stops or is killed under load, is down for
// `down_for`, and starts again.
void lose_a_node(int victim, Outage how) {
    const auto run = boong::IdGenerator().next().substr(24);
    const auto topic = "cluster-" + run;
    const std::string group = "g";
    const auto queue = topic + "." + group;
    const int witness = victim % kNodes + 1;  // a node that stays up, for questions
    constexpr auto before = 3s, down_for = 6s, after = 3s;

    Flow flow;
    asio::io_context ioc;
    boong::RabbitMqBroker broker(ioc.get_executor(), cluster_config(victim, topic, group));
    struct Consumer {
        asio::cancellation_signal stop;
        bool done = false;
        std::exception_ptr error;
    };
    Consumer consumer;
    int publishers_done = 0;
    SteadyClock::duration outage{};
    const auto started = SteadyClock::now();

    boong::test::run(
        ioc,
        [&]() -> asio::awaitable<void> {
            // Declares the group's queue through the publisher's connection, on the victim.
            co_await broker.async_open(asio::use_awaitable);
            flow.leader_before = co_await queue_leader(witness, queue);

            boong::ConsumerOptions o;
            o.topic = topic;
            o.group = group;
            o.consumer = "c";
            o.settings.concurrency = kConcurrency;
            boong::MessageHandler handler = [&flow](const boong::Delivery& d) -> asio::awaitable<void> {
                flow.on_consumed(d.event.payload.at("n").get<int>());
                co_return;
            };
            auto on_consumer_end = [&consumer](std::exception_ptr e) {
                consumer.error = e;
                consumer.done = true;
            };
            asio::co_spawn(ioc, broker.async_consume(std::move(o), std::move(handler), asio::use_awaitable),
                           asio::bind_cancellation_slot(consumer.stop.slot(), on_consumer_end));
            for (int i = 0; i < kPublishers; ++i) {
                auto on_publisher_end = [&flow, &publishers_done](std::exception_ptr e) {
                    ++publishers_done;
                    if (!e) return;
                    try {
                        std::rethrow_exception(e);
                    } catch (const std::exception& x) {
                        flow.errors.push_back(x.what());
                    }
                };
                asio::co_spawn(ioc, publisher(broker, topic, flow), on_publisher_end);
            }

            co_await boong::test::sleep_for(before);
            if (flow.confirmed.empty() || flow.consumed.empty())
                throw std::runtime_error("nothing flows through the cluster before the outage");
            const auto stop_command = node_command(how == Outage::stop ? "STOP" : "KILL", victim);
            co_await shell(stop_command);
            const auto down_at = SteadyClock::now();
            flow.down = true;
            co_await boong::test::sleep_for(down_for / 2);
            flow.leader_while_down = co_await queue_leader(witness, queue);
            const auto rest = down_for - (SteadyClock::now() - down_at);
            if (rest > 0s) co_await boong::test::sleep_for(rest);
            flow.down = false;
            outage = SteadyClock::now() - down_at;
            co_await shell(node_command("START", victim));
            co_await boong::test::sleep_for(after);

            flow.stop_publishing = true;
            const auto publishers_stopped = [&] { return publishers_done == kPublishers; };
            while (!publishers_stopped()) co_await boong::test::sleep_for(10ms);
            // Everything confirmed is consumed, or the limit passes (and the checks below fail).
            const auto limit = SteadyClock::now() + 90s;
            while (!flow.missing().empty() && SteadyClock::now() < limit) co_await boong::test::sleep_for(100ms);
            consumer.stop.emit(asio::cancellation_type::terminal);
            const auto consumer_stopped = SteadyClock::now() + 15s;
            while (!consumer.done && SteadyClock::now() < consumer_stopped) co_await boong::test::sleep_for(10ms);
        },
        240s);

    const auto missing = flow.missing();
    const auto duplicates = flow.deliveries - static_cast<int>(flow.consumed.size());
    const auto ms = [](SteadyClock::duration d) {
        return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
    };
    std::ostringstream summary;
    summary << "node " << victim << (how == Outage::stop ? " stopped" : " killed") << " for " << ms(outage)
            << ": " << flow.confirmed.size() << " publishes confirmed (" << flow.confirmed_while_down
            << " while it was down, " << flow.retries << " retried), " << flow.consumed.size() << " consumed in "
            << flow.deliveries << " deliveries (" << flow.consumed_while_down << " while it was down, " << duplicates
            << " duplicates), " << missing.size() << " confirmed and never consumed; longest pause in consumption "
            << ms(flow.longest_pause) << "; queue leader on node " << flow.leader_before << ", then "
            << flow.leader_while_down << "; " << ms(SteadyClock::now() - started) << " in all";
    std::cout << "rabbitmq_cluster_test: " << summary.str() << std::endl;
    INFO(summary.str());
    INFO("last publish that was tried again: " << (flow.last_unavailable.empty() ? "none" : flow.last_unavailable));
    std::string errors;
    for (const auto& e : flow.errors) errors += "\n  " + e;
    INFO("publish errors:" << (errors.empty() ? " none" : errors));
    CHECK(flow.errors.empty());
    CHECK(consumer.done);
    CHECK_FALSE(consumer.error);
    // No confirmed message lost (at least once).
    std::string first_missing;
    for (std::size_t i = 0; i < missing.size() && i < 10; ++i) first_missing += " " + std::to_string(missing[i]);
    INFO("first of the missing:" << first_missing);
    CHECK(missing.empty());
    // Publisher and consumer went on through the other nodes while the victim was down.
    CHECK(flow.confirmed_while_down > 0);
    CHECK(flow.consumed_while_down > 0);
    // The victim held the queue's leader, which moved to a node still up.
    CHECK(flow.leader_before == victim);
    CHECK(flow.leader_while_down != 0);
    CHECK(flow.leader_while_down != victim);
}

}  // namespace

TEST_CASE("rabbitmq cluster: a node stopped under load loses no confirmed message; clients go on elsewhere",
          "[rabbitmq][cluster]") {
    lose_a_node(1, Outage::stop);
}

TEST_CASE("rabbitmq cluster: a node killed under load loses no confirmed message; clients go on elsewhere",
          "[rabbitmq][cluster]") {
    lose_a_node(2, Outage::kill);
}

TEST_CASE("rabbitmq cluster: a node that refuses connections is passed over; with none left, the error names all",
          "[rabbitmq][cluster]") {
    const auto run = boong::IdGenerator().next().substr(24);
    const auto topic = "cluster-" + run;
    const auto host = env("BOONG_TEST_RABBITMQ_CLUSTER_HOST");
    asio::io_context ioc;

    // Nothing listens on ports 1 and 2: the first nodes listed refuse, the third is node 2.
    auto config = cluster_config(2, topic, "g");
    config.nodes.resize(1);
    config.nodes.insert(config.nodes.begin(), {boong::RabbitMqNode{host, 1}, boong::RabbitMqNode{host, 2}});
    config.connect_timeout = std::chrono::milliseconds(1000);
    boong::RabbitMqBroker broker(ioc.get_executor(), config);
    const auto ports = per_node("BOONG_TEST_RABBITMQ_CLUSTER_PORTS");
    CHECK(broker.endpoint() == "rabbitmq at " + host + ":1, " + host + ":2, " + host + ":" + ports[1]);
    std::string id;
    boong::IdGenerator ids;
    boong::test::run(ioc, [&]() -> asio::awaitable<void> {
        co_await broker.async_open(asio::use_awaitable);
        const auto event = numbered(ids, 1);
        id = co_await broker.async_publish(topic, event, asio::use_awaitable);
    });
    CHECK_FALSE(id.empty());

    // None answers: the error names them all, within the connect timeout.
    config.nodes.pop_back();
    boong::RabbitMqBroker nowhere(ioc.get_executor(), config);
    std::optional<boong::error_code> code;
    std::string what;
    const auto start = SteadyClock::now();
    boong::test::run(ioc, [&]() -> asio::awaitable<void> {
        try {
            co_await nowhere.async_open(asio::use_awaitable);
        } catch (const boong::Error& e) {
            code = e.code();
            what = e.what();
        }
    });
    const auto took = SteadyClock::now() - start;
    REQUIRE(code.has_value());
    CHECK(*code == boong::errc::broker_unavailable);
    CHECK_THAT(what, Catch::StartsWith("rabbitmq at " + host + ":1, " + host + ":2: not reachable within 1000 ms"));
    CHECK(took < 3s);
}
