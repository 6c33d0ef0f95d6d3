// Small pieces the saga table, the outbox and the inbox share: running a
// body through the store's pool with a typed result, and checking owners.
#pragma once

#include <boong/detail/erased_handler.hpp>
#include <boong/store/postgres.hpp>

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

// Owners of leases are "name/incarnation" (see saga_leases.hpp).
inline void check_owner(const std::string& owner, std::string_view what) {
    const auto slash = owner.find('/');
    if (slash == 0 || slash == std::string::npos || slash + 1 == owner.size() || owner.size() > 255) {
        throw Error(errc::invalid_argument,
                    std::string(what) + " owner '" + owner + "' is not of the form name/incarnation");
    }
}

inline void check_lease(std::chrono::milliseconds lease, std::string_view what) {
    if (lease < std::chrono::milliseconds(1) || lease > std::chrono::hours(24)) {
        throw Error(errc::invalid_argument, std::string(what) + " lease must be between 1 ms and 24 h, got " +
                                                std::to_string(lease.count()) + " ms");
    }
}

}  // namespace boong::pg
