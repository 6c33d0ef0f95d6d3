// The outbox of the in-memory store: relay cursors kept in process memory,
// with the PostgreSQL outbox's rules (OutboxCursor), for tests and demos of
// an OutboxRelay without a server. The store's global order is the outbox.
#pragma once

#include <boong/detail/post.hpp>
#include <boong/memory/store.hpp>
#include <boong/outbox_cursor.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace boong {

class MemoryOutbox {
public:
    using executor_type = boost::asio::any_io_executor;

    // The store must outlive the outbox.
    explicit MemoryOutbox(MemoryEventStore& store);
    ~MemoryOutbox();
    MemoryOutbox(const MemoryOutbox&) = delete;
    MemoryOutbox& operator=(const MemoryOutbox&) = delete;

    executor_type get_executor() const { return store_.get_executor(); }

    template <class Token>
    auto async_acquire(std::string relay, std::string owner, milliseconds lease, Token&& token) {
        return detail::async_immediate<std::optional<std::int64_t>>(
            get_executor(), std::forward<Token>(token),
            [this, relay = std::move(relay), owner = std::move(owner), lease] { return acquire(relay, owner, lease); });
    }

    template <class Token>
    auto async_advance(std::string relay, std::string owner, std::int64_t position, milliseconds lease,
                       Token&& token) {
        return detail::async_immediate<bool>(
            get_executor(), std::forward<Token>(token),
            [this, relay = std::move(relay), owner = std::move(owner), position, lease] {
                return advance(relay, owner, position, lease);
            });
    }

    template <class Token>
    auto async_release(std::string relay, std::string owner, Token&& token) {
        return detail::async_immediate<void>(
            get_executor(), std::forward<Token>(token),
            [this, relay = std::move(relay), owner = std::move(owner)] { release(relay, owner); });
    }

    template <class Token>
    auto async_status(std::string relay, Token&& token) {
        return detail::async_immediate<OutboxStatus>(get_executor(), std::forward<Token>(token),
                                                     [this, relay = std::move(relay)] { return status(relay); });
    }

    // Synchronous forms (thread-safe), with the rules of OutboxCursor.
    std::optional<std::int64_t> acquire(const std::string& relay, const std::string& owner, milliseconds lease);
    bool advance(const std::string& relay, const std::string& owner, std::int64_t position, milliseconds lease);
    void release(const std::string& relay, const std::string& owner);
    OutboxStatus status(const std::string& relay) const;

private:
    struct State;
    MemoryEventStore& store_;
    std::unique_ptr<State> state_;
};

static_assert(OutboxCursor<MemoryOutbox>);

}  // namespace boong
