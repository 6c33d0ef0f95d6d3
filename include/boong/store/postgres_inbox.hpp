// The inbox: idempotent consumers on PostgreSQL (target Boong::postgres).
//
// A handler whose effect is a write to PostgreSQL records the message it
// processed in the same transaction as the effect. A redelivered message (the
// broker delivers at least once) finds its id recorded and has no second
// effect; a handler that failed rolled back both, so the redelivery does it.
//
//   boong::PostgresInbox inbox(store, "payment-service");
//   co_await broker.async_consume(opts, [&](const boong::Delivery& d) -> asio::awaitable<void> {
//       auto pay = [&](pqxx::transaction_base& tx) {
//           tx.exec_params("INSERT INTO payments (order_id, amount) VALUES ($1, $2)", ...);
//       };
//       co_await inbox.async_process(d, std::move(pay), asio::use_awaitable);
//   }, asio::use_awaitable);
#pragma once

#include <boong/broker.hpp>
#include <boong/store/postgres_transaction.hpp>

#include <pqxx/transaction>

#include <string>
#include <utility>

namespace boong {

class PostgresInbox {
public:
    // `consumer` names the handler (usually its consumer group): each
    // consumer has its own record of what it processed. The store must be
    // open and outlive the inbox. Throws Error(errc::invalid_argument) for an
    // empty or over-long name.
    PostgresInbox(PostgresEventStore& store, std::string consumer) : store_(store), consumer_(std::move(consumer)) {
        if (consumer_.empty() || consumer_.size() > 255) {
            throw Error(errc::invalid_argument, "an inbox consumer name must have 1..255 characters");
        }
        sql_ = "INSERT INTO " + store_.tables().inbox +
               " (consumer, message_id) VALUES ($1, $2) ON CONFLICT (consumer, message_id) DO NOTHING";
    }

    const std::string& consumer() const noexcept { return consumer_; }

    // Runs `body(tx)` and records `message_id` in one transaction, unless the
    // id is recorded already: then the body does not run. Completes with
    // true when the body ran (and committed), false for a duplicate. Two
    // deliveries of one id at once: the second waits for the first to commit
    // (then it is a duplicate) or roll back (then it runs).
    template <class Body, class Token>
    auto async_process(std::string message_id, Body body, Token&& token) {
        if (message_id.empty() || message_id.size() > 255) {
            throw Error(errc::invalid_argument, "inbox " + consumer_ + ": a message id must have 1..255 characters");
        }
        return async_transact(
            store_,
            [sql = sql_, consumer = consumer_, id = std::move(message_id),
             body = std::move(body)](pqxx::transaction_base& tx) mutable {
                if (tx.exec_params(sql, consumer, id).affected_rows() == 0) return false;
                body(tx);
                return true;
            },
            std::forward<Token>(token));
    }

    // The same, keyed by the delivered event's id: stable across redeliveries
    // and republications (the broker's message id is not).
    template <class Body, class Token>
    auto async_process(const Delivery& delivery, Body body, Token&& token) {
        return async_process(delivery.event.event_id, std::move(body), std::forward<Token>(token));
    }

private:
    PostgresEventStore& store_;
    std::string consumer_;
    std::string sql_;
};

}  // namespace boong
