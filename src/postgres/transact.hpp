// Small pieces the saga table, the outbox and the inbox share: running a
// body through the store's pool with a typed result, and checking owners.
#pragma once

#include <boong/detail/erased_handler.hpp>
#include <boong/postgres/store.hpp>

#include <pqxx/transaction>

#include <memory>
#include <string>
#include <type_traits>
#include <utility>

namespace boong::pg {

// Runs `body(tx) -> T` in a transaction on the store's pool and completes
// `handler` with its result or its exception.
template <class T, class Body>
void run_transaction(PostgresEventStore& store, std::string what, Durability durability, Body body,
                     detail::ErasedHandler<T> handler) {
    auto result = std::make_shared<detail::value_or_nothing<T>>();
    auto h = std::make_shared<detail::ErasedHandler<T>>(std::move(handler));
    store.transact(
        std::move(what), durability,
        [result, body = std::move(body)](pqxx::transaction_base& tx) mutable {
            if constexpr (std::is_void_v<T>) {
                body(tx);
            } else {
                *result = body(tx);
            }
        },
        detail::ErasedHandler<void>(
            [result, h](std::exception_ptr e) {
                if (e) {
                    h->complete(std::move(e));
                } else {
                    h->complete(nullptr, std::move(*result));
                }
            },
            store.get_executor()));
}

}  // namespace boong::pg
