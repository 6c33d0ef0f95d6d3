// The same business flow as an orchestrated saga (order_service --mode saga):
// one coordinator calls each service's state in turn, and undoes what was
// done when a step is refused, instead of services reacting to each other's
// events.
//
//   reserve_items (compensation: release_items)
//   -> charge_payment (compensation: refund_payment)
//   -> confirm_order
//
// The steps talk to the inventory's stock table and the payment's payments
// table directly (boong::async_transact), each effect keyed by the order so a
// retried or resumed step never applies it twice. A refusal is a
// boong::Rejection: the saga compensates what completed, and the order
// service records OrderCancelled with the refusal as the reason.
#pragma once

#include "common.hpp"

#include <boong/saga.hpp>
#include <boong/saga_orchestrator.hpp>
#include <boong/postgres/sagas.hpp>
#include <boong/postgres/transaction.hpp>

namespace shop {

struct OrderSagaData {
    OrderCreated order;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OrderSagaData, order)

class OrderSagaSteps {
public:
    static constexpr std::string_view name = "order_services";

    OrderSagaSteps(boong::PostgresEventStore& store, const Options& o)
        : store_(store), stock_(stock_table(o)), payments_(payments_table(o)), reservations_(o.table + "_reservations") {}

    void create_tables(pqxx::transaction_base& tx, const Options& o) {
        create_stock_table(tx, o);
        create_payments_table(tx, o);
        tx.exec("CREATE TABLE IF NOT EXISTS " + reservations_ +
                " (order_id text PRIMARY KEY, items jsonb NOT NULL,"
                " status text NOT NULL CHECK (status IN ('reserved', 'released')))");
    }

    asio::awaitable<void> reserve_items(boong::StepContext<OrderSagaData>& ctx) {
        const OrderCreated o = ctx.data().order;
        auto reserve = [this, o](pqxx::transaction_base& tx) -> std::string {
            if (!tx.exec_params("SELECT 1 FROM " + reservations_ + " WHERE order_id = $1", o.order_id).empty()) {
                return {};  // done by an earlier attempt
            }
            std::map<std::string, std::int64_t> by_sku;  // sorted: rows locked in one order
            for (const auto& i : o.items) by_sku[i.sku] += i.quantity;
            for (const auto& [sku, q] : by_sku) {
                const auto n = tx.exec_params("UPDATE " + stock_ +
                                                  " SET available = available - $2 WHERE sku = $1 AND available >= $2",
                                              sku, q)
                                   .affected_rows();
                if (n == 0) return "sku '" + sku + "': " + std::to_string(q) + " requested, not in stock";
            }
            tx.exec_params("INSERT INTO " + reservations_ + " (order_id, items, status) VALUES ($1, $2::jsonb, 'reserved')",
                           o.order_id, boong::json(o.items).dump());
            return {};
        };
        // A refusal rolls the partial decrements back with the transaction:
        // the body returns it rather than throwing, and we throw here.
        const std::string refused = co_await boong::async_transact(store_, std::move(reserve), asio::use_awaitable);
        if (!refused.empty()) throw boong::Rejection("items not available: " + refused);
    }

    asio::awaitable<void> release_items(boong::StepContext<OrderSagaData>& ctx) {
        const std::string order_id = ctx.data().order.order_id;
        auto release = [this, order_id](pqxx::transaction_base& tx) {
            const auto row = tx.exec_params("UPDATE " + reservations_ +
                                                " SET status = 'released' WHERE order_id = $1 AND status = 'reserved'"
                                                " RETURNING items::text",
                                            order_id);
            if (row.empty()) return;  // never reserved, or released already
            for (const auto& i : boong::json::parse(row[0][0].as<std::string>()).get<std::vector<Item>>()) {
                tx.exec_params("UPDATE " + stock_ + " SET available = available + $2 WHERE sku = $1", i.sku,
                               i.quantity);
            }
        };
        co_await boong::async_transact(store_, std::move(release), asio::use_awaitable);
    }

    asio::awaitable<void> charge_payment(boong::StepContext<OrderSagaData>& ctx) {
        const OrderCreated o = ctx.data().order;
        if (o.amount_cents > kPaymentLimitCents) {
            throw boong::Rejection("payment declined: amount " + money(o.amount_cents) + " is over the limit of " +
                                   money(kPaymentLimitCents));
        }
        auto charge = [this, o](pqxx::transaction_base& tx) {
            tx.exec_params("INSERT INTO " + payments_ +
                               " (order_id, customer, amount_cents, status) VALUES ($1, $2, $3, 'charged')"
                               " ON CONFLICT (order_id) DO NOTHING",
                           o.order_id, o.customer, o.amount_cents);
        };
        co_await boong::async_transact(store_, std::move(charge), asio::use_awaitable);
    }

    asio::awaitable<void> refund_payment(boong::StepContext<OrderSagaData>& ctx) {
        const std::string order_id = ctx.data().order.order_id;
        auto refund = [this, order_id](pqxx::transaction_base& tx) {
            tx.exec_params("UPDATE " + payments_ +
                               " SET status = 'refunded', updated_at = now() WHERE order_id = $1 AND status = 'charged'",
                           order_id);
        };
        co_await boong::async_transact(store_, std::move(refund), asio::use_awaitable);
    }

    // Records the decision in the order's stream (right after OrderCreated:
    // a second attempt finds it there).
    asio::awaitable<void> confirm_order(boong::StepContext<OrderSagaData>& ctx) {
        const std::string order_id = ctx.data().order.order_id;
        OrderConfirmed confirmed{order_id};
        std::string correlation = ctx.correlation_id();
        co_await record(order_id, std::move(confirmed), std::move(correlation));
    }

    // Appends the order's decision as its version 2 (after OrderCreated);
    // already there (a retry, a resumed saga): nothing.
    template <class E>
    asio::awaitable<void> record(std::string order_id, E decision, std::string correlation_id) {
        boong::EventMetadata m;
        m.correlation_id = std::move(correlation_id);
        std::vector<boong::EventData> events;
        events.push_back(boong::EventRegistry::encode(decision, std::move(m)));
        const auto after_created = boong::ExpectedVersion::exactly(1);
        std::string stream = order_stream(order_id);
        bool conflict = false;
        try {
            co_await store_.async_append(std::move(stream), after_created, std::move(events), asio::use_awaitable);
        } catch (const boong::Error& e) {
            if (e.code() != boong::make_error_code(boong::errc::concurrency_conflict)) throw;
            conflict = true;
        }
        if (conflict) spdlog::debug("order {}: decision already recorded", order_id);
    }

private:
    boong::PostgresEventStore& store_;
    std::string stock_, payments_, reservations_;
};

using OrderSaga = boong::Saga<boong::Step<"reserve_items", &OrderSagaSteps::reserve_items, &OrderSagaSteps::release_items>,
                              boong::Step<"charge_payment", &OrderSagaSteps::charge_payment, &OrderSagaSteps::refund_payment>,
                              boong::Step<"confirm_order", &OrderSagaSteps::confirm_order>>;

using OrderOrchestrator = boong::SagaOrchestrator<OrderSaga, boong::PostgresEventStore, boong::PostgresSagaIndex>;

}  // namespace shop
