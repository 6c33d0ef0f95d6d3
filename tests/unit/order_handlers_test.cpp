// The order services' handlers (examples/order_services/handlers.hpp) with no
// server: the memory store, outbox and broker, three event buses as the three
// services, and the services' tables as maps that roll back with the
// transaction. The same handlers run on PostgreSQL and Redis in the
// order_services integration tests.
#include "handlers.hpp"

#include <boong/memory/broker.hpp>
#include <boong/memory/outbox.hpp>
#include <boong/memory/store.hpp>
#include <boong/outbox_relay.hpp>

#include "support/async.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

using Store = boong::MemoryEventStore;
using Tx = Store::Transaction;
using Bus = boong::EventBus<Store, boong::MemoryBroker>;

// The stock table: what the transaction changes is undone if it rolls back.
struct MemoryStock {
    std::map<std::string, std::int64_t> available_by_sku;

    std::optional<std::int64_t> available(Tx&, const std::string& sku) {
        const auto it = available_by_sku.find(sku);
        if (it == available_by_sku.end()) return std::nullopt;
        return it->second;
    }
    bool take(Tx& tx, const std::string& sku, std::int64_t n) {
        const auto it = available_by_sku.find(sku);
        if (it == available_by_sku.end() || it->second < n) return false;
        it->second -= n;
        tx.on_rollback([this, sku, n] { available_by_sku[sku] += n; });
        return true;
    }
    void put_back(Tx& tx, const std::string& sku, std::int64_t n) {
        available_by_sku[sku] += n;
        tx.on_rollback([this, sku, n] { available_by_sku[sku] -= n; });
    }
};

// The payments table: order id -> (amount, "charged" | "refunded").
struct MemoryPayments {
    struct Row {
        std::int64_t amount_cents = 0;
        std::string status;
    };
    std::map<std::string, Row> rows;
    int charges = 0;  // every charge() that committed or not

    void charge(Tx& tx, const std::string& order_id, const std::string&, std::int64_t amount_cents) {
        ++charges;
        // The primary key of the real table: a second charge is an error.
        if (!rows.emplace(order_id, Row{amount_cents, "charged"}).second)
            throw std::runtime_error("order " + order_id + " is charged already");
        tx.on_rollback([this, order_id] { rows.erase(order_id); });
    }
    bool refund(Tx& tx, const std::string& order_id) {
        const auto it = rows.find(order_id);
        if (it == rows.end() || it->second.status != "charged") return false;
        it->second.status = "refunded";
        tx.on_rollback([this, order_id] { rows[order_id].status = "charged"; });
        return true;
    }
};

static_assert(shop::StockTable<MemoryStock, Tx>);
static_assert(shop::PaymentsTable<MemoryPayments, Tx>);

// Every event type of the flow (events.hpp), each published as its own topic.
const std::vector<std::string> kEventTypes{
    "OrderCreated",     "OrderPaid",     "OrderPaymentDeclined", "OrderItemsReserved", "OrderItemsUnavailable",
    "OrderConfirmed",   "OrderCancelled", "PaymentProcessed",    "PaymentFailed",      "PaymentRefunded",
    "PaymentCancelled", "ItemsReserved", "ItemsNotAvailable",    "ItemsReleased",      "ReservationCancelled"};

boong::EventBusOptions bus_options(std::string service) {
    boong::EventBusOptions o;
    o.service = std::move(service);
    o.consumers.concurrency = 8;
    o.consumers.visibility_timeout = 100ms;
    o.consumers.shutdown_grace = 500ms;
    return o;
}

struct Shop {
    asio::io_context ioc;
    Store store{ioc.get_executor()};
    boong::MemoryBroker broker{ioc.get_executor()};
    boong::MemoryOutbox outbox{store};
    boong::EventRegistry registry = shop::make_registry();
    MemoryStock stock;
    MemoryPayments payments;
    std::vector<std::string> unknown_orders;

    Bus order_bus{store, broker, registry, bus_options("order")};
    Bus payment_bus{store, broker, registry, bus_options("payment")};
    Bus inventory_bus{store, broker, registry, bus_options("inventory")};
    shop::OrderHandlers<Bus> order{[this](std::string_view, const std::string& id) { unknown_orders.push_back(id); }};
    shop::PaymentHandlers<Bus, MemoryPayments> payment{payments};
    shop::InventoryHandlers<Bus, MemoryStock> inventory{stock};
    using Relay = boong::OutboxRelay<Store, boong::MemoryOutbox, boong::MemoryBroker>;
    std::unique_ptr<Relay> relay;

    Shop() {
        for (const auto& [sku, n] : shop::seed_stock()) stock.available_by_sku[sku] = n;
        boong::OutboxRelayOptions o;
        o.relay = "bus";
        o.topic = boong::topic_by_type;
        o.poll_interval = 2ms;
        relay = std::make_unique<Relay>(store, outbox, broker, o);
        order.subscribe(order_bus);
        payment.subscribe(payment_bus);
        inventory.subscribe(inventory_bus);
        relay->start();
        order_bus.start();
        payment_bus.start();
        inventory_bus.start();
    }
    ~Shop() {
        boong::test::run_until_done(ioc, [this]() -> asio::awaitable<void> {
            co_await order_bus.stop();
            co_await payment_bus.stop();
            co_await inventory_bus.stop();
            co_await relay->stop();
        });
    }

    void place(const std::string& id, std::vector<shop::Item> items, std::int64_t amount_cents) {
        boong::test::run_until_done(ioc, [&]() -> asio::awaitable<void> {
            shop::OrderCreated e{id, "alice", std::move(items), amount_cents, "card"};
            std::string stream = shop::order_stream(id);
            boong::EventMetadata none;
            co_await order_bus.publish(std::move(stream), e, boong::ExpectedVersion::no_stream(), std::move(none));
        });
    }
    std::vector<std::string> types(const std::string& stream) const {
        std::vector<std::string> t;
        for (const auto& e : store.read_stream(stream, 1, 100)) t.push_back(e.event.type);
        return t;
    }
    bool has(const std::string& stream, std::string_view type) const {
        for (const auto& t : types(stream))
            if (t == type) return true;
        return false;
    }
    bool final(const std::string& id) const {
        return has(shop::order_stream(id), "OrderConfirmed") || has(shop::order_stream(id), "OrderCancelled");
    }
    // Every event published, and every message handled by every group.
    bool quiet() const {
        std::size_t published = 0;
        for (const auto& type : kEventTypes) {
            published += broker.size(type);
            for (const auto& g : broker.consumer_groups(type))
                if (g.pending > 0 || g.lag.value_or(0) > 0) return false;
        }
        return published >= static_cast<std::size_t>(store.last_position());
    }
    // The orders final, and what their decisions cause (refunds, releases) done too.
    [[nodiscard]] bool settle(const std::vector<std::string>& ids) {
        return boong::test::run_until(ioc, [&] {
            for (const auto& id : ids)
                if (!final(id)) return false;
            return quiet();
        }, 10s);
    }
    std::int64_t stock_of(const std::string& sku) const { return stock.available_by_sku.at(sku); }
    std::int64_t seeded(const std::string& sku) const {
        for (const auto& [s, n] : shop::seed_stock())
            if (s == sku) return n;
        return 0;
    }
    int count(const std::string& stream, std::string_view type) const {
        int n = 0;
        for (const auto& t : types(stream)) n += t == type;
        return n;
    }
    bool dead_letters() const {
        for (const auto& type : kEventTypes)
            if (broker.size(boong::dead_letter_topic(type)) > 0) return true;
        return false;
    }
};

}  // namespace

TEST_CASE("order handlers on memory: a paid order with its items is confirmed, charged once, its stock taken",
          "[order-services][memory]") {
    Shop s;
    s.place("o-1", {{"widget", 2}, {"gadget", 1}, {"widget", 1}}, 5000);
    REQUIRE(s.settle({"o-1"}));
    CHECK(s.has("order-o-1", "OrderConfirmed"));
    CHECK_FALSE(s.has("order-o-1", "OrderCancelled"));
    CHECK(s.types("payment-o-1") == std::vector<std::string>{"PaymentProcessed"});
    CHECK(s.types("inventory-o-1") == std::vector<std::string>{"ItemsReserved"});
    CHECK(s.payments.rows.at("o-1").status == "charged");
    CHECK(s.payments.rows.at("o-1").amount_cents == 5000);
    CHECK(s.stock_of("widget") == s.seeded("widget") - 3);  // one line per SKU, merged
    CHECK(s.stock_of("gadget") == s.seeded("gadget") - 1);
    CHECK_FALSE(s.dead_letters());
}

TEST_CASE("order handlers on memory: a declined payment cancels the order and gives its items back",
          "[order-services][memory]") {
    Shop s;
    s.place("big", {{"widget", 4}}, shop::kPaymentLimitCents + 1);
    REQUIRE(s.settle({"big"}));
    CHECK(s.has("order-big", "OrderCancelled"));
    CHECK_FALSE(s.has("order-big", "OrderConfirmed"));
    CHECK(s.types("payment-big") == std::vector<std::string>{"PaymentFailed"});
    // Reserved and released, or never reserved (the failure came first): the stock is whole either way.
    const auto inventory = s.types("inventory-big");
    CHECK((inventory == std::vector<std::string>{"ItemsReserved", "ItemsReleased"} ||
           inventory == std::vector<std::string>{"ReservationCancelled"}));
    CHECK(s.stock_of("widget") == s.seeded("widget"));
    CHECK(s.payments.rows.empty());
    CHECK_FALSE(s.dead_letters());
}

TEST_CASE("order handlers on memory: items not available cancel the order and refund what was charged",
          "[order-services][memory]") {
    Shop s;
    s.place("short", {{"widget", 1}, {"rare", 4}}, 700);
    s.place("unknown", {{"no-such-sku", 1}}, 300);
    REQUIRE(s.settle({"short", "unknown"}));
    for (const std::string id : {"short", "unknown"}) {
        INFO(id);
        CHECK(s.has("order-" + id, "OrderCancelled"));
        CHECK(s.types("inventory-" + id) == std::vector<std::string>{"ItemsNotAvailable"});
        const auto payment = s.types("payment-" + id);
        CHECK((payment == std::vector<std::string>{"PaymentProcessed", "PaymentRefunded"} ||
               payment == std::vector<std::string>{"PaymentCancelled"}));
        if (payment.front() == "PaymentProcessed") CHECK(s.payments.rows.at(id).status == "refunded");
        else CHECK_FALSE(s.payments.rows.count(id));
    }
    // Nothing taken: the whole order is refused when one line is short.
    CHECK(s.stock_of("widget") == s.seeded("widget"));
    CHECK(s.stock_of("rare") == s.seeded("rare"));
    const auto reason = s.store.read_stream("inventory-unknown", 1, 1).at(0).event.payload.get<shop::ItemsNotAvailable>();
    CHECK(reason.reason == "unknown sku 'no-such-sku'");
    CHECK_FALSE(s.dead_letters());
}

TEST_CASE("order handlers on memory: orders racing for the last units; exactly the stock is sold",
          "[order-services][memory]") {
    Shop s;
    std::vector<std::string> ids;
    for (int i = 0; i < 8; ++i) {
        ids.push_back("r-" + std::to_string(i));
        s.place(ids.back(), {{"rare", 1}}, 100);
    }
    REQUIRE(s.settle(ids));
    int confirmed = 0, cancelled = 0;
    for (const auto& id : ids) {
        confirmed += s.has("order-" + id, "OrderConfirmed");
        cancelled += s.has("order-" + id, "OrderCancelled");
        // Decided exactly once, whatever the order the outcomes came in.
        CHECK(s.count("order-" + id, "OrderConfirmed") + s.count("order-" + id, "OrderCancelled") == 1);
    }
    CHECK(confirmed == s.seeded("rare"));
    CHECK(cancelled == 8 - s.seeded("rare"));
    CHECK(s.stock_of("rare") == 0);
    int charged = 0;
    for (const auto& [id, row] : s.payments.rows) charged += row.status == "charged";
    CHECK(charged == confirmed);
    CHECK_FALSE(s.dead_letters());
}

TEST_CASE("order handlers on memory: every message delivered again has no second effect",
          "[order-services][memory]") {
    Shop s;
    s.place("o-1", {{"widget", 2}}, 5000);
    s.place("big", {{"gadget", 1}}, shop::kPaymentLimitCents + 1);
    REQUIRE(s.settle({"o-1", "big"}));
    const auto widget = s.stock_of("widget"), gadget = s.stock_of("gadget");
    const auto rows = s.payments.rows.size();
    const auto order_events = s.types("order-o-1").size() + s.types("order-big").size();

    // Publish every message once more, as a broker redelivering after a lost ack would.
    std::size_t again = 0;
    boong::test::run_until_done(s.ioc, [&]() -> asio::awaitable<void> {
        for (const auto* topic : {"OrderCreated", "PaymentProcessed", "PaymentFailed", "ItemsReserved",
                                  "ItemsReleased", "ReservationCancelled"}) {
            for (auto& d : s.broker.read_topic(topic)) {
                ++again;
                co_await s.broker.async_publish(topic, std::move(d.event), asio::use_awaitable);
            }
        }
    });
    REQUIRE(again >= 5);
    REQUIRE(s.settle({"o-1", "big"}));
    CHECK(s.stock_of("widget") == widget);
    CHECK(s.stock_of("gadget") == gadget);
    CHECK(s.payments.rows.size() == rows);
    CHECK(s.payments.charges == 1);  // the handler never even tried a second charge (the inbox has it)
    CHECK(s.types("order-o-1").size() + s.types("order-big").size() == order_events);
    CHECK_FALSE(s.dead_letters());
}

TEST_CASE("order handlers on memory: an outcome for an order never placed is reported, and changes nothing",
          "[order-services][memory]") {
    Shop s;
    boong::test::run_until_done(s.ioc, [&]() -> asio::awaitable<void> {
        shop::PaymentProcessed ghost{"ghost", "pay-ghost", 100};
        std::string stream = shop::payment_stream("ghost");
        boong::EventMetadata none;
        co_await s.payment_bus.publish(std::move(stream), ghost, boong::ExpectedVersion::no_stream(), std::move(none));
    });
    REQUIRE(boong::test::run_until(s.ioc, [&] { return !s.unknown_orders.empty(); }, 10s));
    CHECK(s.unknown_orders == std::vector<std::string>{"ghost"});
    CHECK(s.types("order-ghost").empty());
}
