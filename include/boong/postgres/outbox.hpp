// The outbox of the PostgreSQL store (target Boong::postgres).
//
// The events table is the outbox: an event is pending publication from the
// moment the transaction that appended it commits, so storing an event and
// scheduling its publication can never diverge (there is no second write to
// forget). What a relay needs to remember is how far it has published: one
// cursor per relay name in the outbox table, with a lease so that of several
// processes running a relay of that name exactly one publishes at a time.
// read_all's gap-free order (docs/postgres.md) means a cursor never skips an
// event committed late. See OutboxRelay and docs/durability.md.
#pragma once

#include <boong/detail/erased_handler.hpp>
#include <boong/outbox_cursor.hpp>
#include <boong/postgres/store.hpp>

#include <boost/asio/async_result.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace boong {

class PostgresOutbox {
public:
    using executor_type = boost::asio::any_io_executor;

    // The store must be open and outlive the outbox.
    explicit PostgresOutbox(PostgresEventStore& store) : store_(store) {}

    executor_type get_executor() const { return store_.get_executor(); }

    // Takes the cursor of `relay` for `owner` ("name/incarnation") when nobody
    // else holds it (its lease expired, or an earlier incarnation of the same
    // name held it), creating it at position 0 the first time. Completes with
    // the position to publish after, or nullopt when another owner holds it.
    template <class Token>
    auto async_acquire(std::string relay, std::string owner, milliseconds lease, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::optional<std::int64_t>)>(
            [this](auto handler, std::string r, std::string o, milliseconds l) {
                acquire_impl(std::move(r), std::move(o), l,
                             detail::ErasedHandler<std::optional<std::int64_t>>(std::move(handler), get_executor()));
            },
            token, std::move(relay), std::move(owner), lease);
    }

    // Records that every event up to `position` is published and extends the
    // lease. Completes with false when `owner` no longer holds the cursor
    // (then nothing is written, and the caller must stop publishing).
    template <class Token>
    auto async_advance(std::string relay, std::string owner, std::int64_t position, milliseconds lease,
                       Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, bool)>(
            [this](auto handler, std::string r, std::string o, std::int64_t p, milliseconds l) {
                advance_impl(std::move(r), std::move(o), p, l,
                             detail::ErasedHandler<bool>(std::move(handler), get_executor()));
            },
            token, std::move(relay), std::move(owner), position, lease);
    }

    // Ends `owner`'s lease now, so another relay can take over at once.
    template <class Token>
    auto async_release(std::string relay, std::string owner, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr)>(
            [this](auto handler, std::string r, std::string o) {
                release_impl(std::move(r), std::move(o), detail::ErasedHandler<void>(std::move(handler), get_executor()));
            },
            token, std::move(relay), std::move(owner));
    }

    // For operators and tests: where `relay` stands (position 0 and no owner
    // when it never ran).
    template <class Token>
    auto async_status(std::string relay, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, OutboxStatus)>(
            [this](auto handler, std::string r) {
                status_impl(std::move(r), detail::ErasedHandler<OutboxStatus>(std::move(handler), get_executor()));
            },
            token, std::move(relay));
    }

private:
    void acquire_impl(std::string relay, std::string owner, milliseconds lease,
                      detail::ErasedHandler<std::optional<std::int64_t>> handler);
    void advance_impl(std::string relay, std::string owner, std::int64_t position, milliseconds lease,
                      detail::ErasedHandler<bool> handler);
    void release_impl(std::string relay, std::string owner, detail::ErasedHandler<void> handler);
    void status_impl(std::string relay, detail::ErasedHandler<OutboxStatus> handler);

    PostgresEventStore& store_;
};

static_assert(OutboxCursor<PostgresOutbox>);

}  // namespace boong
