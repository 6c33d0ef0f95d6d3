// The EventStore concept: the system of record for every saga transition and
// domain event.
#pragma once

#include <boong/event.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace boong {

// Limits every store enforces, so that what one backend accepts the others accept too.
inline constexpr std::size_t max_stream_id_length = 255;
inline constexpr std::size_t max_event_type_length = 255;
inline constexpr std::size_t max_events_per_append = 10000;

// An EventStore keeps streams of events. Every operation completes with a
// std::exception_ptr first (a boong::Error subclass on failure), so coroutine
// users get an exception carrying the full diagnostic.
//
//  - async_append(stream, expected, events, token) -> AppendResult
//      Atomic. If the stream is not at `expected`, fails with
//      ConcurrencyConflict (errc::concurrency_conflict) naming the stream and
//      both versions, and writes nothing. Appending again events whose ids are
//      already stored, in the same stream and order, succeeds without storing
//      them twice (a retry after a lost reply); reusing an event id otherwise is
//      errc::duplicate_event. Bad input is errc::invalid_argument.
//  - async_read_stream(stream, from_version, max_count, token) -> vector<RecordedEvent>
//      Events with version >= from_version, in version order, at most max_count.
//      An unknown stream reads as empty.
//  - async_read_all(from_position, max_count, token) -> vector<RecordedEvent>
//      Events with position >= from_position in global order, at most
//      max_count. A reader that has read up to position P never later finds a
//      new event below P.
//  - async_save_snapshot(snapshot, token) / async_load_snapshot(stream, token)
//      The latest snapshot per stream; saving an older version than the one
//      kept is ignored.
template <class S>
concept EventStore = requires(S& s, std::string stream, ExpectedVersion expected, std::vector<EventData> events,
                              std::int64_t from, std::size_t max_count, Snapshot snapshot) {
    typename S::executor_type;
    { s.get_executor() } -> std::convertible_to<typename S::executor_type>;
    { s.async_append(stream, expected, events, boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<AppendResult>>;
    { s.async_read_stream(stream, from, max_count, boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<std::vector<RecordedEvent>>>;
    { s.async_read_all(from, max_count, boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<std::vector<RecordedEvent>>>;
    { s.async_save_snapshot(snapshot, boost::asio::use_awaitable) } -> std::same_as<boost::asio::awaitable<void>>;
    { s.async_load_snapshot(stream, boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<std::optional<Snapshot>>>;
};

}  // namespace boong
