// Running your own SQL on the event store's connections, off the event loop:
// the building block of the inbox (boong/postgres/inbox.hpp) and of
// services that keep their state beside their events.
//
//   auto reserve = [sku](pqxx::transaction_base& tx) {
//       return tx.exec_params("UPDATE stock SET reserved = reserved + 1 WHERE sku = $1", sku).affected_rows();
//   };
//   auto n = co_await boong::async_transact(store, std::move(reserve), asio::use_awaitable);
//
// (The body is a named local: g++ 12 destroys a lambda temporary written
// inside a co_await expression twice.)
//
// The body runs on one of the store's worker threads, inside a transaction
// that commits when it returns: it may block, and must not touch objects the
// caller's executor uses without synchronization.
#pragma once

#include <boong/detail/post.hpp>
#include <boong/postgres/store.hpp>
#include <boong/transactional_store.hpp>

#include <pqxx/transaction>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>

#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace boong {

// Completes with what `body(pqxx::transaction_base&)` returns (a value type,
// default-constructible), or with the exception that rolled it back.
// Cancellation (the token's slot) aborts it while it waits for a connection
// (operation_aborted, nothing ran); once running, it finishes.
template <class Body, class Token>
auto async_transact(PostgresEventStore& store, Body body, Durability durability, Token&& token) {
    using R = std::invoke_result_t<Body&, pqxx::transaction_base&>;
    static_assert(std::is_void_v<R> || std::is_default_constructible_v<R>,
                  "async_transact: the body's result must be default-constructible (or void)");
    return boost::asio::async_initiate<Token, typename detail::completion<R>::signature>(
        [&store, durability](auto handler, Body b) {
            auto shared_body = std::make_shared<Body>(std::move(b));
            if constexpr (std::is_void_v<R>) {
                store.transact("transaction", durability,
                               [shared_body](pqxx::transaction_base& tx) { (*shared_body)(tx); },
                               detail::ErasedHandler<void>(std::move(handler), store.get_executor()));
            } else {
                auto result = std::make_shared<std::optional<R>>();
                // The wrapper keeps the caller's executor and cancellation slot:
                // cancelled before a worker takes it, the transaction never runs.
                auto ex = boost::asio::get_associated_executor(handler, store.get_executor());
                auto slot = boost::asio::get_associated_cancellation_slot(handler);
                auto done = boost::asio::bind_cancellation_slot(
                    slot, boost::asio::bind_executor(ex, [h = std::move(handler), result](std::exception_ptr e) mutable {
                        R value{};
                        if (!e && *result) value = std::move(**result);
                        std::move(h)(std::move(e), std::move(value));
                    }));
                store.transact(
                    "transaction", durability,
                    [shared_body, result](pqxx::transaction_base& tx) { result->emplace((*shared_body)(tx)); },
                    detail::ErasedHandler<void>(std::move(done), store.get_executor()));
            }
        },
        token, std::move(body));
}

template <class Body, class Token>
auto async_transact(PostgresEventStore& store, Body body, Token&& token) {
    return async_transact(store, std::move(body), Durability::durable, std::forward<Token>(token));
}

static_assert(TransactionalStore<PostgresEventStore>);

}  // namespace boong
