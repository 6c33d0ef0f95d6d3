// The OutboxCursor concept: how far an outbox relay has published, with a
// lease so that of several processes running a relay of one name exactly one
// publishes at a time (see OutboxRelay and docs/durability.md).
#pragma once

#include <boong/event.hpp>
#include <boong/policy.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <concepts>
#include <cstdint>
#include <optional>
#include <string>

namespace boong {

// Where a relay stands.
struct OutboxStatus {
    std::string relay;
    std::int64_t position = 0;  // every event at or below it has been published
    std::int64_t pending = 0;   // events stored after it
    std::string owner;          // the relay holding the cursor, if any
    std::optional<Clock::time_point> lease_until;
};

// Owners are "name/incarnation" (make_owner).
//  - async_acquire(relay, owner, lease) -> optional<position>
//      Takes the cursor of `relay` when nobody else holds it (never held, its
//      lease expired, it is already `owner`'s, or an earlier incarnation of
//      the same name held it), creating it at position 0 the first time.
//      Completes with the position to publish after, or nullopt when another
//      owner holds it.
//  - async_advance(relay, owner, position, lease) -> bool
//      Records that every event up to `position` is published (a cursor
//      never moves back) and extends the lease. False when `owner` no longer
//      holds the cursor: then nothing is written, and the caller must stop.
//  - async_release(relay, owner)
//      Ends `owner`'s lease now, so another relay can take over at once.
//  - async_status(relay) -> OutboxStatus
//      Where it stands (position 0 and no owner when it never ran).
// A bad relay name (not 1..255 bytes), owner or lease (1 ms..24 h) is
// errc::invalid_argument.
template <class C>
concept OutboxCursor = requires(C& c, std::string s, milliseconds d, std::int64_t p) {
    { c.async_acquire(s, s, d, boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<std::optional<std::int64_t>>>;
    { c.async_advance(s, s, p, d, boost::asio::use_awaitable) } -> std::same_as<boost::asio::awaitable<bool>>;
    { c.async_release(s, s, boost::asio::use_awaitable) } -> std::same_as<boost::asio::awaitable<void>>;
    { c.async_status(s, boost::asio::use_awaitable) } -> std::same_as<boost::asio::awaitable<OutboxStatus>>;
};

}  // namespace boong
