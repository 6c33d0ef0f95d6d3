// 10,000 sagas at once on one io_context, each ending as its data says it must.
#include "support/async.hpp"

#include <boong/saga_runner.hpp>
#include <boong/memory/store.hpp>

#include <boost/asio/steady_timer.hpp>

#include <catch2/catch.hpp>

using namespace boong;
using namespace std::chrono_literals;
using boost::asio::awaitable;

namespace {

// fail_at: 0 = succeed; k = step k rejects; -k = compensation of step k fails for good.
struct Order {
    int fail_at = 0;
    int done = 0;
};
void to_json(json& j, const Order& o) { j = json{{"fail_at", o.fail_at}, {"done", o.done}}; }
void from_json(const json& j, Order& o) {
    j.at("fail_at").get_to(o.fail_at);
    j.at("done").get_to(o.done);
}

class Shop {
public:
    static constexpr std::string_view name = "shop";
    std::size_t actions = 0, compensations = 0;

    awaitable<void> step(StepContext<Order>& ctx, int k) {
        ++actions;
        // A real await so that the sagas interleave.
        boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, 1ms);
        co_await t.async_wait(boost::asio::use_awaitable);
        if (ctx.data().fail_at == k) throw Rejection("no");
        if (ctx.data().fail_at == -k) throw Rejection("last step refuses, so the one before must fail to undo");
        ctx.data().done = k;
    }
    awaitable<void> undo(StepContext<Order>& ctx, int k) {
        ++compensations;
        if (ctx.data().fail_at == -(k + 1)) throw std::runtime_error("cannot undo");
        co_return;
    }
    awaitable<void> s1(StepContext<Order>& c) { return step(c, 1); }
    awaitable<void> u1(StepContext<Order>& c) { return undo(c, 1); }
    awaitable<void> s2(StepContext<Order>& c) { return step(c, 2); }
    awaitable<void> u2(StepContext<Order>& c) { return undo(c, 2); }
    awaitable<void> s3(StepContext<Order>& c) { return step(c, 3); }
};

using ShopSaga = Saga<Step<"s1", &Shop::s1, &Shop::u1>, Step<"s2", &Shop::s2, &Shop::u2>, Step<"s3", &Shop::s3>>;

}  // namespace

TEST_CASE("10,000 concurrent sagas on one io_context all reach the right outcome", "[saga][scale]") {
    boost::asio::io_context ioc(1);
    MemoryEventStore store(ioc.get_executor());
    Shop shop;
    SagaOptions options;
    options.defaults.retry = RetryPolicy{1, 1ms, 1.0, 1ms, 0.0};
    options.defaults.compensation_retry = RetryPolicy{2, 1ms, 1.0, 1ms, 0.0};
    SagaRunner<ShopSaga, MemoryEventStore> runner(shop, store, options);

    constexpr int n = 10000;
    const int plans[] = {0, 0, 1, 2, 3, -3};  // completed x2, compensated x3, failed x1
    std::vector<std::optional<SagaOutcome<Order>>> outcomes(n);
    std::vector<std::exception_ptr> errors(n);
    int finished = 0;
    std::size_t peak_running = 0;
    for (int i = 0; i < n; ++i) {
        runner.async_run(Order{plans[i % 6], 0}, {.saga_id = "saga-" + std::to_string(i)},
                         [&, i](std::exception_ptr e, SagaOutcome<Order> o) {
                             errors[i] = e;
                             outcomes[i] = std::move(o);
                             ++finished;
                         });
    }
    // All of them are in flight at once before the loop starts.
    peak_running = runner.running();
    const auto start = std::chrono::steady_clock::now();
    while (finished < n && std::chrono::steady_clock::now() - start < 120s) ioc.run_for(100ms);
    REQUIRE(finished == n);
    CHECK(peak_running == n);
    CHECK(runner.running() == 0);

    int completed = 0, compensated = 0, failed = 0;
    for (int i = 0; i < n; ++i) {
        REQUIRE_FALSE(errors[i]);
        const auto& o = *outcomes[i];
        switch (plans[i % 6]) {
            case 0:
                REQUIRE(o.status == SagaStatus::completed);
                REQUIRE(o.data.done == 3);
                ++completed;
                break;
            case 1:
                REQUIRE(o.status == SagaStatus::compensated);
                REQUIRE(o.compensated_steps.empty());
                ++compensated;
                break;
            case 2:
                REQUIRE(o.status == SagaStatus::compensated);
                REQUIRE(o.compensated_steps == std::vector<std::string>{"s1"});
                ++compensated;
                break;
            case 3:
                REQUIRE(o.status == SagaStatus::compensated);
                REQUIRE(o.compensated_steps == std::vector<std::string>{"s2", "s1"});
                ++compensated;
                break;
            default:
                REQUIRE(o.status == SagaStatus::failed);
                REQUIRE(o.failed_compensation == "s2");
                REQUIRE(o.compensated_steps.empty());
                ++failed;
        }
        REQUIRE(store.stream_version(saga_stream("saga-" + std::to_string(i))) == o.version);
    }
    CHECK(completed + compensated + failed == n);
    CHECK(failed == n / 6);
}
