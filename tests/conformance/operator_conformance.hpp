// An operator's retry and cancel on any store and saga index: requested as
// events, carried out by whichever orchestrator claims each saga, exactly
// once with several running. A test file defines BOONG_ORCHESTRATOR_WORLDS (see
// orchestrator_conformance.hpp) and includes this header.
#pragma once

#include "support/async.hpp"
#include "support/durable_world.hpp"

#include <boong/saga_cancel.hpp>
#include <boong/saga_orchestrator.hpp>
#include <boong/saga_retry.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

namespace boong::test::operators {

struct PayData {
    int n = 0;
};
inline void to_json(json& j, const PayData& d) { j = json{{"n", d.n}}; }
inline void from_json(const json& j, PayData& d) { d.n = j.at("n").get<int>(); }

// Charges, then cannot confirm; the refund gives up while the gateway is
// down, so each saga fails until an operator retries it.
class Payment {
public:
    static constexpr std::string_view name = "payment";
    bool gateway_down = true;
    std::map<std::string, int> refunds;  // idempotency key -> refunds made with it

    boost::asio::awaitable<void> charge(StepContext<PayData>&) { co_return; }
    boost::asio::awaitable<void> refund(StepContext<PayData>& ctx) {
        if (gateway_down) throw std::runtime_error("payment gateway down");
        ++refunds[ctx.idempotency_key()];
        co_return;
    }
    boost::asio::awaitable<void> confirm(StepContext<PayData>&) {
        throw Rejection("order cannot be confirmed");
        co_return;
    }
};
using PaymentSaga = Saga<Step<"charge", &Payment::charge, &Payment::refund>, Step<"confirm", &Payment::confirm>>;

// Reserves, then waits for a truck that does not come (until cancelled).
class Shipment {
public:
    static constexpr std::string_view name = "shipment";
    std::map<std::string, int> releases;  // saga id -> compensations of reserve
    int unships = 0;
    int waiting = 0;  // ship attempts waiting right now

    boost::asio::awaitable<void> reserve(StepContext<PayData>&) { co_return; }
    boost::asio::awaitable<void> release(StepContext<PayData>& ctx) {
        ++releases[ctx.saga_id()];
        co_return;
    }
    boost::asio::awaitable<void> ship(StepContext<PayData>&) {
        ++waiting;
        boost::asio::steady_timer truck(co_await boost::asio::this_coro::executor, std::chrono::seconds(50));
        try {
            co_await truck.async_wait(boost::asio::use_awaitable);
        } catch (...) {
            --waiting;
            throw;
        }
        --waiting;
    }
    boost::asio::awaitable<void> unship(StepContext<PayData>&) {
        ++unships;
        co_return;
    }
};
using ShipmentSaga =
    Saga<Step<"reserve", &Shipment::reserve, &Shipment::release>, Step<"ship", &Shipment::ship, &Shipment::unship>>;

// Every saga's events of one type.
template <class World>
int count_events(World& d, const std::string& id, std::string_view type, std::string* by = nullptr) {
    const auto events = run_until_done(d.ioc, [&] {
        return d.store.async_read_stream(saga_stream(id), 1, 1000, boost::asio::use_awaitable);
    });
    int n = 0;
    for (const auto& e : events) {
        if (e.event.type != type) continue;
        ++n;
        if (by) *by = e.event.payload.value("by", "");
    }
    return n;
}

}  // namespace boong::test::operators

TEMPLATE_TEST_CASE("operator conformance: a bulk retry of 100 failed sagas, two orchestrators running, compensates "
                   "each exactly once and names the operator",
                   "[durable][operator][conformance]", BOONG_ORCHESTRATOR_WORLDS) {
    using namespace boong::test::operators;
    TestType d;
    using Store = std::remove_reference_t<decltype(d.store)>;
    using Index = std::remove_reference_t<decltype(d.index)>;
    Payment payment;
    std::vector<std::string> ids;
    {
        boong::SagaRunner<PaymentSaga, Store> runner(payment, d.store, boong::test::fast_options(1, 1));
        int failed = 0;
        for (int i = 0; i < 100; ++i) {
            runner.async_run(PayData{i}, boong::RunOptions{}, [&](std::exception_ptr e, auto outcome) {
                if (!e && outcome.status == boong::SagaStatus::failed) ++failed;
                ids.push_back(outcome.saga_id);
            });
        }
        REQUIRE(d.until([&] { return ids.size() == 100; }, std::chrono::seconds(30)));
        REQUIRE(failed == 100);
    }
    CHECK(payment.refunds.empty());
    payment.gateway_down = false;  // fixed: now the operator retries

    boong::SagaOrchestrator<PaymentSaga, Store, Index> one(payment, d.store, d.index, boong::test::fast_options(),
                                                           boong::test::orchestrator("one"));
    boong::SagaOrchestrator<PaymentSaga, Store, Index> two(payment, d.store, d.index, boong::test::fast_options(),
                                                           boong::test::orchestrator("two"));
    one.start();
    two.start();
    // Failed sagas stay failed: nobody claims them until an operator asks.
    d.until([] { return false; }, std::chrono::milliseconds(300));
    CHECK(one.stats().claimed + two.stats().claimed == 0);

    boong::RetryRequest request;
    request.by = "alice@ops";
    request.reason = "payment gateway fixed";
    request.saga_type = "payment";
    request.dry_run = true;
    auto results = boong::test::run_until_done(d.ioc, [&] { return boong::request_retry(d.store, d.index, request); });
    REQUIRE(results.size() == 100);
    for (const auto& r : results) CHECK(r.outcome == boong::RequestOutcome::would_request);
    d.until([] { return false; }, std::chrono::milliseconds(200));
    for (const auto& id : ids) CHECK(d.record(id)->phase == boong::SagaPhase::failed);  // the dry run changed nothing

    request.dry_run = false;
    results = boong::test::run_until_done(d.ioc, [&] { return boong::request_retry(d.store, d.index, request); });
    REQUIRE(results.size() == 100);
    for (const auto& r : results) {
        CHECK(r.outcome == boong::RequestOutcome::requested);
        CHECK(r.phase == boong::SagaPhase::failed);
    }
    REQUIRE(d.until(
        [&] {
            for (const auto& id : ids) {
                if (d.record(id)->phase != boong::SagaPhase::compensated) return false;
            }
            return true;
        },
        std::chrono::seconds(30)));
    for (const auto& id : ids) {
        INFO(id);
        CHECK(payment.refunds[id + ":charge:compensate"] == 1);  // exactly once
        std::string by;
        CHECK(count_events(d, id, boong::saga_event::retry_requested, &by) == 1);
        CHECK(by == "alice@ops");
        CHECK(count_events(d, id, boong::saga_event::resumed) == 1);  // one orchestrator took it
    }
    // Each claimed by one of them (which one is a race: one scan may take them all).
    CHECK(one.stats().claimed + two.stats().claimed == 100);

    // Nothing left to retry; a named saga that is not failed nor blocked is refused.
    CHECK(boong::test::run_until_done(d.ioc, [&] { return boong::request_retry(d.store, d.index, request); }).empty());
    boong::RetryRequest named;
    named.by = "alice@ops";
    named.saga_ids = {ids.front(), "no-such-saga"};
    results = boong::test::run_until_done(d.ioc, [&] { return boong::request_retry(d.store, d.index, named); });
    REQUIRE(results.size() == 2);
    CHECK(results[0].outcome == boong::RequestOutcome::refused);
    CHECK(results[0].reason == "it is compensated: only a failed or blocked saga is retried");
    CHECK(results[1].outcome == boong::RequestOutcome::refused);
    CHECK(results[1].reason == "no such saga");
    boong::RetryRequest anonymous;
    CHECK_THROWS_WITH(boong::test::run_until_done(d.ioc, [&] { return boong::request_retry(d.store, d.index, anonymous); }),
                      Catch::Contains("say who asks"));
    boong::test::run_until_done(d.ioc, [&]() -> boost::asio::awaitable<void> {
        co_await one.stop();
        co_await two.stop();
    });
}

TEMPLATE_TEST_CASE("operator conformance: a cancel of running sagas stops them where they run and compensates each "
                   "exactly once, naming the operator",
                   "[durable][operator][conformance]", BOONG_ORCHESTRATOR_WORLDS) {
    using namespace boong::test::operators;
    TestType d;
    using Store = std::remove_reference_t<decltype(d.store)>;
    using Index = std::remove_reference_t<decltype(d.index)>;
    Shipment shipment;
    boong::SagaOrchestrator<ShipmentSaga, Store, Index> one(shipment, d.store, d.index, boong::test::slow_step_options(),
                                                            boong::test::orchestrator("one"));
    boong::SagaOrchestrator<ShipmentSaga, Store, Index> two(shipment, d.store, d.index, boong::test::slow_step_options(),
                                                            boong::test::orchestrator("two"));
    one.start();
    two.start();
    constexpr int count = 20;
    std::vector<std::string> ids;
    int stopped_in_one = 0;  // runs in `one` that ended without an outcome: it lost them
    for (int i = 0; i < count; ++i) {
        ids.push_back("cancel-" + std::to_string(i));
        boost::asio::co_spawn(d.ioc, one.run(PayData{i}, boong::RunOptions{.saga_id = ids.back()}),
                              [&](std::exception_ptr e, auto) {
                                  if (e) ++stopped_in_one;
                              });
    }
    REQUIRE(d.until([&] { return shipment.waiting == count; }, std::chrono::seconds(30)));

    boong::CancelRequest request;
    request.saga_ids = ids;
    request.saga_ids.push_back("no-such-saga");
    request.by = "bob@ops";
    request.reason = "customer withdrew the order";
    request.dry_run = true;
    auto results = boong::test::run_until_done(d.ioc, [&] { return boong::request_cancel(d.store, request); });
    REQUIRE(results.size() == count + 1);
    for (int i = 0; i < count; ++i) CHECK(results[i].outcome == boong::RequestOutcome::would_request);
    CHECK(results.back().outcome == boong::RequestOutcome::refused);
    CHECK(results.back().reason == "no such saga");
    CHECK(shipment.waiting == count);  // the dry run changed nothing

    request.dry_run = false;
    request.saga_ids.pop_back();
    results = boong::test::run_until_done(d.ioc, [&] { return boong::request_cancel(d.store, request); });
    REQUIRE(results.size() == count);
    for (const auto& r : results) {
        CHECK(r.outcome == boong::RequestOutcome::requested);
        CHECK(r.phase == boong::SagaPhase::running);
    }
    REQUIRE(d.until(
        [&] {
            for (const auto& id : ids) {
                if (d.record(id)->phase != boong::SagaPhase::compensated) return false;
            }
            return true;
        },
        std::chrono::seconds(30)));
    CHECK(d.until([&] { return stopped_in_one == count; }, std::chrono::seconds(10)));
    CHECK(shipment.waiting == 0);
    for (const auto& id : ids) {
        INFO(id);
        const auto record = d.record(id);
        CHECK(record->failure_kind == boong::FailureKind::cancelled);
        CHECK(record->failed_step == "ship");
        CHECK(record->error == "saga cancelled: customer withdrew the order (by bob@ops)");
        CHECK(shipment.releases[id] == 1);  // exactly once
        std::string by;
        CHECK(count_events(d, id, boong::saga_event::cancel_requested, &by) == 1);
        CHECK(by == "bob@ops");
    }
    CHECK(shipment.unships == 0);  // ship never completed (and compensate_uncertain is off)

    // A saga that is not running is refused, with the reason; a request must say who and why.
    boong::CancelRequest again;
    again.saga_ids = {ids.front()};
    again.by = "bob@ops";
    again.reason = "twice";
    results = boong::test::run_until_done(d.ioc, [&] { return boong::request_cancel(d.store, again); });
    REQUIRE(results.size() == 1);
    CHECK(results[0].outcome == boong::RequestOutcome::refused);
    CHECK(results[0].reason == "it is compensated: only a running saga is cancelled");
    again.reason.clear();
    CHECK_THROWS_WITH(boong::test::run_until_done(d.ioc, [&] { return boong::request_cancel(d.store, again); }),
                      Catch::Contains("say why"));
    boong::test::run_until_done(d.ioc, [&]() -> boost::asio::awaitable<void> {
        co_await one.stop();
        co_await two.stop();
    });
}
