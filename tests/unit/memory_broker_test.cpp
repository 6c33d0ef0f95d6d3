// MemoryBroker: the Broker conformance suite, plus what only the in-memory
// backend can show (its id format, its inspection functions, thread-safety).
#include <boong/any_broker.hpp>
#include <boong/memory/broker.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

struct MemoryBrokerFixture {
    boost::asio::io_context ioc_;
    boong::MemoryBroker broker_{ioc_.get_executor()};

    boost::asio::io_context& ioc() { return ioc_; }
    boong::MemoryBroker& broker() { return broker_; }
    // Every fixture has its own broker; the counter only keeps two calls apart.
    std::string unique(std::string_view base) { return std::string(base) + "-" + std::to_string(++names_); }
    int names_ = 0;
    std::chrono::milliseconds short_timeout() { return std::chrono::milliseconds(50); }
};

// The same broker behind AnyBroker: the erasure passes the suite too.
struct AnyMemoryBrokerFixture : MemoryBrokerFixture {
    boong::AnyBroker any_{std::make_unique<boong::MemoryBroker>(ioc_.get_executor())};
    boong::AnyBroker& broker() { return any_; }
};

}  // namespace

#define BOONG_BROKER_FIXTURES MemoryBrokerFixture, AnyMemoryBrokerFixture
#include "conformance/broker_conformance.hpp"

namespace {

namespace asio = boost::asio;
namespace bc = boong::test::conformance;
using namespace std::chrono_literals;

}  // namespace

TEST_CASE("memory broker: message ids count from 1-0 per topic; size and read_topic show the log",
          "[broker][memory]") {
    MemoryBrokerFixture fx;
    boong::IdGenerator ids;
    std::vector<std::string> a_ids, b_ids;
    const auto first = bc::make_event(ids, "A", {{"n", 1}});
    const std::string a = "a", b = "b";
    boong::test::run(fx.ioc(), [&]() -> asio::awaitable<void> {
        a_ids.push_back(co_await bc::publish(fx.broker(), a, first));
        a_ids.push_back(co_await bc::publish(fx.broker(), a, bc::numbered_event(ids, "A", 2)));
        b_ids.push_back(co_await bc::publish(fx.broker(), b, bc::numbered_event(ids, "B", 3)));
        a_ids.push_back(co_await bc::publish(fx.broker(), a, bc::numbered_event(ids, "A", 4)));
    });
    CHECK(a_ids == std::vector<std::string>{"1-0", "2-0", "3-0"});
    CHECK(b_ids == std::vector<std::string>{"1-0"});
    CHECK(fx.broker().size("a") == 3);
    CHECK(fx.broker().size("b") == 1);
    CHECK(fx.broker().size("none") == 0);
    const auto log = fx.broker().read_topic("a");
    REQUIRE(log.size() == 3);
    CHECK(log[0].topic == "a");
    CHECK(log[0].message_id == "1-0");
    CHECK(log[0].delivery_count == 0);
    CHECK(log[0].event == first);
    CHECK(log[2].event.payload == boong::json{{"n", 4}});
    CHECK(fx.broker().read_topic("none").empty());
    CHECK(fx.broker().publish("a", bc::make_event(ids, "A", {{"n", 5}})) == "4-0");
}

TEST_CASE("memory broker: publish and consume never complete inside the initiating call", "[broker][memory]") {
    MemoryBrokerFixture fx;
    boong::IdGenerator ids;
    bool completed = false;
    std::string id;
    fx.broker().async_publish("t", bc::make_event(ids, "E", {}), [&](std::exception_ptr e, std::string got) {
        CHECK_FALSE(e);
        id = std::move(got);
        completed = true;
    });
    bool invalid_completed = false;
    fx.broker().async_publish("", bc::make_event(ids, "E", {}), [&](std::exception_ptr e, std::string) {
        CHECK(e);
        invalid_completed = true;
    });
    bool consume_completed = false;
    fx.broker().async_consume(
        bc::consumer_options("t", "g", ""), [](const boong::Delivery&) -> asio::awaitable<void> { co_return; },
        [&](std::exception_ptr e) {
            CHECK(e);
            consume_completed = true;
        });
    CHECK_FALSE(completed);
    CHECK_FALSE(invalid_completed);
    CHECK_FALSE(consume_completed);
    fx.ioc().run_for(5s);  // returns as soon as everything completed
    CHECK(fx.ioc().stopped());
    CHECK(completed);
    CHECK(invalid_completed);
    CHECK(consume_completed);
    CHECK(id == "1-0");
}

TEST_CASE("memory broker: metadata.extra that is not an object is refused", "[broker][memory]") {
    MemoryBrokerFixture fx;
    boong::IdGenerator ids;
    auto e = bc::make_event(ids, "E", {});
    e.metadata.extra = boong::json::array({1, 2});
    try {
        fx.broker().publish("t", e);
        FAIL("publish accepted an array as metadata.extra");
    } catch (const boong::Error& err) {
        CHECK(err.code() == boong::errc::invalid_argument);
    }
    e.metadata.extra = nullptr;  // nothing at all is fine
    CHECK(fx.broker().publish("t", e) == "1-0");
}

TEST_CASE("memory broker: pending_count follows deliveries and acks", "[broker][memory]") {
    MemoryBrokerFixture fx;
    const std::string topic = "t";
    boong::IdGenerator ids;
    std::size_t pending_while_running = 99;
    int calls = 0;
    bool stopped = false;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            co_await bc::publish(fx.broker(), topic, bc::make_event(ids, "Fail", {}));
            co_await bc::publish(fx.broker(), topic, bc::make_event(ids, "Ok", {}));
            auto c = bc::start_consumer(fx, bc::consumer_options("t", "g", "c"),  // default 30 s visibility
                                        [&](const boong::Delivery& d) -> asio::awaitable<void> {
                                            ++calls;
                                            if (d.event.type == "Fail") throw std::runtime_error("nope");
                                            co_return;
                                        });
            co_await bc::until([&] { return calls >= 2; });
            co_await boong::test::sleep_for(10ms);
            pending_while_running = fx.broker().pending_count("t", "g");
            stopped = co_await c->stop();
        },
        10s);
    CHECK(stopped);
    CHECK(calls == 2);
    CHECK(pending_while_running == 1);  // the failed one waits for its visibility timeout; the other is acked
    CHECK(fx.broker().pending_count("t", "g") == 1);  // stopping does not ack it
    CHECK(fx.broker().pending_count("t", "other-group") == 0);
    CHECK(fx.broker().pending_count("nope", "g") == 0);
}

TEST_CASE("memory broker: a message whose last allowed delivery never settled is dead-lettered on reclaim",
          "[broker][memory]") {
    MemoryBrokerFixture fx;
    const std::string topic = "t";
    boong::IdGenerator ids;
    int a_calls = 0, b_calls = 0;
    bool stopped = false;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            co_await bc::publish(fx.broker(), topic, bc::make_event(ids, "E", {}));
            auto o = bc::consumer_options("t", "g", "a");
            o.settings.visibility_timeout = fx.short_timeout();
            o.settings.max_deliveries = 1;
            o.settings.shutdown_grace = 0ms;
            auto a = bc::start_consumer(fx, o, [&](const boong::Delivery&) -> asio::awaitable<void> {
                ++a_calls;
                co_await boong::test::sleep_for(1h);
            });
            co_await bc::until([&] { return a_calls == 1; });
            stopped = co_await a->stop();
            o.consumer = "b";
            auto b = bc::start_consumer(fx, o, [&](const boong::Delivery&) -> asio::awaitable<void> {
                ++b_calls;
                co_return;
            });
            co_await bc::until([&] { return fx.broker().size("t.dlq") > 0; });
            stopped = co_await b->stop() && stopped;
        },
        10s);
    CHECK(stopped);
    CHECK(a_calls == 1);
    CHECK(b_calls == 0);
    CHECK(fx.broker().pending_count("t", "g") == 0);
    const auto dead = fx.broker().read_topic("t.dlq");
    REQUIRE(dead.size() == 1);
    const auto& dl = dead[0].event.metadata.extra.at("dead_letter");
    CHECK(dl.at("delivery_count") == 1);
    CHECK(dl.at("source_message_id") == "1-0");
    CHECK_THAT(dl.at("reason").get<std::string>(), Catch::StartsWith("quarantined: 1 deliveries never settled"));
}

TEST_CASE("memory broker: a stop requested before the consumer ever ran stops it", "[broker][memory]") {
    MemoryBrokerFixture fx;
    bool done = false;
    std::exception_ptr error;
    asio::cancellation_signal signal;
    asio::co_spawn(fx.ioc(),
                   fx.broker().async_consume(bc::consumer_options("t", "g", "c"),
                                             [](const boong::Delivery&) -> asio::awaitable<void> { co_return; },
                                             asio::use_awaitable),
                   asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) {
                       error = e;
                       done = true;
                   }));
    // Emitted before the io_context ever ran the consumer.
    signal.emit(asio::cancellation_type::terminal);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!done && std::chrono::steady_clock::now() < deadline) fx.ioc().run_for(10ms);
    CHECK(done);
    CHECK_FALSE(error);
    fx.ioc().restart();
    fx.ioc().run_for(100ms);
    CHECK(fx.ioc().stopped());  // nothing left behind
}

TEST_CASE("memory broker: a callback consumer stops on its slot, which is cleared before the callback runs",
          "[broker][memory]") {
    MemoryBrokerFixture fx;
    bool done = false, slot_clear = false;
    std::exception_ptr error;
    asio::cancellation_signal signal;
    fx.broker().async_consume(bc::consumer_options("t", "g", "c"),
                              [](const boong::Delivery&) -> asio::awaitable<void> { co_return; },
                              asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) {
                                  error = e;
                                  slot_clear = !signal.slot().has_handler();
                                  done = true;
                              }));
    CHECK(signal.slot().has_handler());  // hooked while running
    fx.ioc().run_for(20ms);
    CHECK_FALSE(done);
    signal.emit(asio::cancellation_type::terminal);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!done && std::chrono::steady_clock::now() < deadline) fx.ioc().run_for(10ms);
    CHECK(done);
    CHECK_FALSE(error);
    CHECK(slot_clear);
    fx.ioc().restart();
    fx.ioc().run_for(100ms);
    CHECK(fx.ioc().stopped());  // nothing left behind
}

TEST_CASE("memory broker: publishing from another thread wakes a consumer", "[broker][memory]") {
    MemoryBrokerFixture fx;
    boong::IdGenerator ids;
    constexpr int per_thread = 100;
    std::vector<std::string> got;
    std::atomic<int> published{0};
    bool stopped = false;
    boong::test::run(
        fx.ioc(),
        [&]() -> asio::awaitable<void> {
            auto c = bc::start_consumer(fx, bc::consumer_options("t", "g", "c"),
                                        [&](const boong::Delivery& d) -> asio::awaitable<void> {
                                            got.push_back(d.message_id);
                                            co_return;
                                        });
            co_await boong::test::sleep_for(20ms);  // the consumer is idle, waiting
            std::vector<std::thread> threads;
            for (int t = 0; t < 2; ++t) {
                threads.emplace_back([&, t] {
                    for (int i = 0; i < per_thread; ++i) {
                        if (t == 0) {
                            fx.broker().publish("t", bc::make_event(ids, "E", {{"i", i}}));
                            published.fetch_add(1);
                        } else {
                            fx.broker().async_publish("t", bc::make_event(ids, "E", {{"i", i}}),
                                                      [&](std::exception_ptr e, std::string) {
                                                          if (!e) published.fetch_add(1);
                                                      });
                        }
                    }
                });
            }
            for (auto& th : threads) th.join();
            co_await bc::until([&] { return got.size() >= 2 * per_thread && published == 2 * per_thread; });
            stopped = co_await c->stop();
        },
        20s);
    CHECK(stopped);
    CHECK(published == 2 * per_thread);
    REQUIRE(got.size() == 2 * per_thread);
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == std::to_string(i + 1) + "-0");
}

TEST_CASE("memory broker: consumers on a multi-threaded io_context handle every message once", "[broker][memory]") {
    asio::io_context ioc(4);
    boong::MemoryBroker broker(ioc.get_executor());
    boong::IdGenerator ids;
    constexpr int consumers = 3, publishers = 2, per_publisher = 300;

    std::mutex m;
    std::vector<std::string> handled;
    std::atomic<int> failures_left{20};  // a few failures, so redelivery runs across threads too
    struct Running {
        explicit Running(asio::io_context& ctx) : strand(asio::make_strand(ctx)) {}
        asio::strand<asio::io_context::executor_type> strand;
        asio::cancellation_signal signal;
        std::atomic<bool> done{false};
        std::exception_ptr error;
    };
    std::vector<std::unique_ptr<Running>> running;
    for (int i = 0; i < consumers; ++i) {
        running.push_back(std::make_unique<Running>(ioc));
        auto& r = *running.back();
        auto o = bc::consumer_options("t", "g", "c" + std::to_string(i));
        o.settings.concurrency = 4;
        o.settings.visibility_timeout = 500ms;  // only the failed ones come back; a slow success must not
        // The awaiting coroutine runs on its own strand, where its signal is emitted too.
        asio::co_spawn(r.strand,
                       broker.async_consume(o,
                                            [&](const boong::Delivery& d) -> asio::awaitable<void> {
                                                co_await boong::test::sleep_for(1ms);
                                                if (d.delivery_count == 1 && failures_left.fetch_sub(1) > 0)
                                                    throw std::runtime_error("once");
                                                std::lock_guard lock(m);
                                                handled.push_back(d.message_id);
                                            },
                                            asio::use_awaitable),
                       asio::bind_cancellation_slot(r.signal.slot(), [&r](std::exception_ptr e) {
                           r.error = e;
                           r.done = true;
                       }));
    }
    std::vector<std::thread> workers;
    for (int i = 0; i < 4; ++i) workers.emplace_back([&] { ioc.run(); });
    std::vector<std::thread> pubs;
    for (int p = 0; p < publishers; ++p) {
        pubs.emplace_back([&] {
            for (int i = 0; i < per_publisher; ++i) broker.publish("t", bc::make_event(ids, "E", {{"i", i}}));
        });
    }
    for (auto& t : pubs) t.join();
    const auto total = static_cast<std::size_t>(publishers * per_publisher);
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    auto handled_count = [&] {
        std::lock_guard lock(m);
        return handled.size();
    };
    while (handled_count() < total && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
    for (auto& r : running) asio::post(r->strand, [&r = *r] { r.signal.emit(asio::cancellation_type::terminal); });
    // With every consumer stopped the io_context runs out of work and the workers return.
    bool all_done = false;
    while (!all_done && std::chrono::steady_clock::now() < deadline + 5s) {
        all_done = std::all_of(running.begin(), running.end(), [](const auto& r) { return r->done.load(); });
        std::this_thread::sleep_for(5ms);
    }
    const bool ran_out = [&] {
        const auto until = std::chrono::steady_clock::now() + 5s;
        while (!ioc.stopped() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
        return ioc.stopped();
    }();
    if (!ran_out) ioc.stop();
    for (auto& t : workers) t.join();

    CHECK(all_done);
    CHECK(ran_out);
    for (const auto& r : running) CHECK_FALSE(r->error);
    std::sort(handled.begin(), handled.end());
    CHECK(handled.size() == total);
    CHECK(std::adjacent_find(handled.begin(), handled.end()) == handled.end());  // no message handled twice
    CHECK(broker.pending_count("t", "g") == 0);
    CHECK(failures_left <= 0);
}
