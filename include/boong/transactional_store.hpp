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
#include <exception>
#include <optional>
#include <string>
#include <vector>

namespace boong {

// One append of append_many_in.
struct StreamAppend {
    std::string stream;
    ExpectedVersion expected = ExpectedVersion::any();
    std::vector<EventData> events;
};

// What became of one append of append_many_in: its result, or the error that
// kept all of it out (a ConcurrencyConflict, errc::duplicate_event,
// errc::invalid_argument), exactly one of the two.
struct StreamAppendOutcome {
    std::optional<AppendResult> result;
    std::exception_ptr error;
};

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
//  - append_many_in(tx, appends) -> vector<StreamAppendOutcome>, one per append
//      Several appends to distinct streams as one write, the transaction's
//      first (so reactions of several deliveries share a transaction). Each
//      has its own verdict: one that conflicts writes nothing and fails none
//      of the others. Two appends to one stream: errc::invalid_argument.
//  - read_stream_in(tx, stream, from_version, max_count) -> vector<RecordedEvent>
//      The stream as the transaction sees it.
//  - read_streams_in(tx, streams) -> vector<vector<RecordedEvent>>, one per name
//      Several whole streams as the transaction sees them, in one round trip
//      (a stream named twice is answered twice; none: empty).
//  - processed_in(tx, consumer, message_id) -> bool
//      Whether the inbox of `consumer` holds `message_id` (committed).
//  - record_processed_in(tx, consumer, message_id) -> bool
//      Records it (after the transaction's append, if any); false when it is
//      recorded already: then the transaction must roll back (a twin
//      delivery processed the message meanwhile).
//  - processed_many_in(tx, consumer, message_ids) -> vector<bool>
//  - record_processed_many_in(tx, consumer, message_ids) -> vector<bool>
//      The two above for several messages in one round trip, one answer per
//      id in order.
// Consumer names and message ids have 1..255 bytes (errc::invalid_argument).
template <class S>
concept TransactionalStore =
    EventStore<S> && requires(S& s, typename S::transaction_type& tx, std::string str, ExpectedVersion expected,
                              std::vector<EventData> events, std::int64_t from, std::size_t max_count) {
        { s.append_in(tx, str, expected, events) } -> std::same_as<AppendResult>;
        { s.append_many_in(tx, std::vector<StreamAppend>{}) } -> std::same_as<std::vector<StreamAppendOutcome>>;
        { s.read_stream_in(tx, str, from, max_count) } -> std::same_as<std::vector<RecordedEvent>>;
        { s.read_streams_in(tx, std::vector<std::string>{}) } -> std::same_as<std::vector<std::vector<RecordedEvent>>>;
        { s.processed_in(tx, str, str) } -> std::same_as<bool>;
        { s.record_processed_in(tx, str, str) } -> std::same_as<bool>;
        { s.processed_many_in(tx, str, std::vector<std::string>{}) } -> std::same_as<std::vector<bool>>;
        { s.record_processed_many_in(tx, str, std::vector<std::string>{}) } -> std::same_as<std::vector<bool>>;
        { async_transact(s, detail::transact_probe<typename S::transaction_type>{}, boost::asio::use_awaitable) }
            -> std::same_as<boost::asio::awaitable<int>>;
    };

}  // namespace boong
