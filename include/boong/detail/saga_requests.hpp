// What an operator's requests on sagas share (saga_migration.hpp,
// saga_retry.hpp): choosing the sagas, and for each one reading it, deciding,
// and one append fenced by the saga's stream version.
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

// What an operator's request does to one saga, as the caller decides it from
// the saga's state: the event to append, or why not.
struct SagaDecision {
    std::string refusal;  // not empty: the saga is left as it is, for this reason
    EventData event{};
};

enum class Applied { appended, dry_run, refused, conflict };

struct AppliedRequest {
    Applied applied = Applied::refused;
    std::string reason;  // refused or conflict: why
};

// One saga of an operator's request: reads it, asks `decide(state)` for its
// decision, and appends the event at the saga's stream version unless this is
// a dry run, so that it cannot race an orchestrator or another operator.
// Throws when the store cannot be reached.
template <EventStore Store, class Decide>
boost::asio::awaitable<AppliedRequest> apply_to_saga(Store& store, const std::string& saga_id, bool dry_run,
                                                     Decide& decide) {
    std::optional<SagaState> state;
    std::string unreadable;
    try {
        state = co_await read_saga(store, saga_id);
    } catch (const Error& e) {
        if (is_unavailable(e.code()) || e.code() == make_error_code(errc::transaction_aborted)) throw;
        unreadable =
            e.code() == make_error_code(errc::not_found) ? "no such saga" : std::string("unreadable: ") + e.what();
    }
    if (!state) co_return AppliedRequest{Applied::refused, std::move(unreadable)};
    SagaDecision decision = decide(*state);
    if (!decision.refusal.empty()) co_return AppliedRequest{Applied::refused, std::move(decision.refusal)};
    if (dry_run) co_return AppliedRequest{Applied::dry_run, {}};
    std::vector<EventData> events;
    events.push_back(std::move(decision.event));
    bool conflict = false;
    try {
        co_await store.async_append(saga_stream(saga_id), ExpectedVersion::exactly(state->version), std::move(events),
                                    boost::asio::use_awaitable);
    } catch (const Error& e) {
        if (e.code() != make_error_code(errc::concurrency_conflict)) throw;
        conflict = true;
    }
    if (conflict) {
        co_return AppliedRequest{Applied::conflict, "it changed meanwhile (another orchestrator or operator moved it)"};
    }
    co_return AppliedRequest{Applied::appended, {}};
}

}  // namespace boong::detail
