// The TransactionalStore concept: an EventStore whose appends can join a
// transaction of the caller's, with the caller's own writes and an inbox
// record, so that a handler's effect, the events it emits and "this message
// was processed" commit or roll back together (EventBus, Inbox).
#pragma once

#include <boong/event_store.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace boong {

namespace detail {
// A body for the concept's check of async_transact.
template <class Tx>
struct transact_probe {
    int operator()(Tx&) const { return 0; }
};
}  // namespace detail

// With Tx = S::transaction_type:
//  - async_transact(store, body, token) (found by ADL) -> what body(Tx&)
//      returns: runs body in one transaction and commits it; a body that
//      throws rolls everything back and its exception is the completion's.
//  - append_in(tx, stream, expected, events) -> AppendResult
//      async_append inside the transaction (same checks and errors). It must
//      be the transaction's first write.
//  - read_stream_in(tx, stream, from_version, max_count) -> vector<RecordedEvent>
//      The stream as the transaction sees it.
//  - processed_in(tx, consumer, message_id) -> bool
//      Whether the inbox of `consumer` holds `message_id` (committed).
//  - record_processed_in(tx, consumer, message_id) -> bool
//      Records it (after the transaction's append, if any); false when it is
//      recorded already: then the transaction must roll back (a twin
//      delivery processed the message meanwhile).
// Consumer names and message ids have 1..255 bytes (errc::invalid_argument).
template <class S>
concept TransactionalStore =
    EventStore<S> && requires(S& s, typename S::transaction_type& tx, std::string str, ExpectedVersion expected,
                              std::vector<EventData> events, std::int64_t from, std::size_t max_count) {
        { s.append_in(tx, str, expected, events) } -> std::same_as<AppendResult>;
        { s.read_stream_in(tx, str, from, max_count) } -> std::same_as<std::vector<RecordedEvent>>;
        { s.processed_in(tx, str, str) } -> std::same_as<bool>;
        { s.record_processed_in(tx, str, str) } -> std::same_as<bool>;
        { async_transact(s, detail::transact_probe<typename S::transaction_type>{}, boost::asio::use_awaitable) }
            -> std::same_as<boost::asio::awaitable<int>>;
    };

}  // namespace boong
