// What an operator's requests on sagas share (saga_migration.hpp,
// saga_retry.hpp): choosing the sagas, reading each, and one append fenced
// by the saga's stream version.
#pragma once

#include <boong/detail/saga_execution.hpp>
#include <boong/error.hpp>
#include <boong/event_store.hpp>
#include <boong/saga_index.hpp>
#include <boong/saga_state.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace boong::detail {

// The sagas of `saga_type` (empty: every type) in `phases` that `keep`
// accepts, by id, at most `limit`.
template <SagaIndex Index, class Keep>
boost::asio::awaitable<std::vector<std::string>> select_sagas(Index& index, std::vector<SagaPhase> phases,
                                                              std::string saga_type, std::size_t limit, Keep keep) {
    std::vector<std::string> ids;
    for (const SagaPhase phase : phases) {
        SagaQuery query;
        query.phase = phase;
        query.saga_type = saga_type;
        query.limit = 1000;
        while (ids.size() < limit) {
            const auto page = co_await index.async_list(query, boost::asio::use_awaitable);
            for (const auto& r : page) {
                if (keep(r) && ids.size() < limit) ids.push_back(r.saga_id);
            }
            if (page.size() < query.limit) break;
            query.after_id = page.back().saga_id;
        }
    }
    co_return ids;
}

// A saga as its events fold, or why it cannot be read ("no such saga").
// Throws when the store cannot be reached.
struct RequestedSaga {
    std::optional<SagaState> state;
    std::string unreadable;
};

template <EventStore Store>
boost::asio::awaitable<RequestedSaga> read_requested(Store& store, const std::string& saga_id) {
    RequestedSaga out;
    try {
        out.state = co_await read_saga(store, saga_id);
    } catch (const Error& e) {
        if (is_unavailable(e.code())) throw;
        out.unreadable = e.code() == make_error_code(errc::not_found) ? "no such saga" : std::string("unreadable: ") + e.what();
    }
    co_return out;
}

// Appends `event` to the saga's stream if it is still at `version`: false
// when it moved meanwhile (another owner, another operator).
template <EventStore Store>
boost::asio::awaitable<bool> append_if_unchanged(Store& store, const std::string& saga_id, std::int64_t version,
                                                 EventData event) {
    std::vector<EventData> events;
    events.push_back(std::move(event));
    bool conflict = false;
    try {
        co_await store.async_append(saga_stream(saga_id), ExpectedVersion::exactly(version), std::move(events),
                                    boost::asio::use_awaitable);
    } catch (const Error& e) {
        if (e.code() != make_error_code(errc::concurrency_conflict)) throw;
        conflict = true;
    }
    co_return !conflict;
}

}  // namespace boong::detail
