// The SagaIndex concept: where operators (and the `boong` CLI) find sagas by
// phase, and the stuck ones. Every model is also a SagaLeases, kept in step
// with the sagas' events by the store (see docs/durability.md).
#pragma once

#include <boong/saga_leases.hpp>
#include <boong/saga_state.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace boong {

// One saga as an index has it.
struct SagaRecord {
    std::string saga_id;
    std::string saga_type;
    std::int64_t definition_version = 1;  // the definition it started on (SagaDefinition)
    std::string fingerprint;              // empty: not recorded
    SagaPhase phase = SagaPhase::running;
    std::int64_t version = 0;  // of its latest phase event
    std::string blocked_reason;  // phase blocked: why
    std::string failed_step;   // the step whose failure started compensation
    FailureKind failure_kind = FailureKind::none;
    std::string error;
    std::string failed_compensation;  // phase failed: the compensation that gave up
    std::string compensation_error;
    std::optional<Clock::time_point> deadline;
    Clock::time_point started_at{};
    Clock::time_point updated_at{};
    std::string owner;  // "name/incarnation" of the orchestrator running it; empty: none
    std::optional<Clock::time_point> lease_until;
};

// How many sagas of one definition are in one phase.
struct DefinitionCount {
    std::string saga_type;
    std::int64_t definition_version = 1;
    std::string fingerprint;
    SagaPhase phase = SagaPhase::running;
    std::int64_t count = 0;
};

struct SagaQuery {
    std::optional<SagaPhase> phase;  // none: every phase
    std::string saga_type;           // empty: every type
    std::string after_id;            // paging: only ids greater than this
    std::size_t limit = 100;         // 1..10000
};

// Besides SagaLeases:
//  - async_list(query) -> vector<SagaRecord>: the sagas matching it, by id.
//  - async_stuck(idle, limit) -> vector<SagaRecord>: sagas that need
//      attention, oldest change first: failed ones (a compensation gave up),
//      blocked ones, and in-flight ones nobody runs (lease expired, or never
//      owned and unchanged for `idle`).
//  - async_find(saga_id) -> optional<SagaRecord>
//  - async_count_by_phase() -> vector<pair<SagaPhase, count>>: the phases
//      that have sagas, in SagaPhase order (for metrics).
//  - async_count_definitions(saga_type) -> vector<DefinitionCount>: the
//      sagas not completed nor compensated (in flight, blocked, failed) of
//      the type (empty: every type), by type, version, fingerprint and
//      phase: whether a definition still has sagas, before it is retired.
// A limit outside 1..10000 is errc::invalid_argument.
template <class I>
concept SagaIndex = SagaLeases<I> && requires(I& i, SagaQuery q, milliseconds d, std::size_t n, std::string s) {
    { i.async_list(q, boost::asio::use_awaitable) } -> std::same_as<boost::asio::awaitable<std::vector<SagaRecord>>>;
    { i.async_stuck(d, n, boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<std::vector<SagaRecord>>>;
    { i.async_find(s, boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<std::optional<SagaRecord>>>;
    { i.async_count_by_phase(boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<std::vector<std::pair<SagaPhase, std::int64_t>>>>;
    { i.async_count_definitions(s, boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<std::vector<DefinitionCount>>>;
};

}  // namespace boong
