// The SagaLeases concept: how orchestrators share sagas so that each runs in
// one process at a time (see SagaOrchestrator and docs/durability.md).
#pragma once

#include <boong/event.hpp>
#include <boong/policy.hpp>
#include <boong/saga_state.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <concepts>
#include <cstddef>
#include <string>
#include <vector>

namespace boong {

// What a claimant takes: in-flight sagas of its type, and the blocked ones
// recorded on a definition it serves (it unblocks them).
struct SagaClaim {
    std::string saga_type;
    std::vector<SagaDefinition> definitions;  // matched as definition_mismatch() does
};

// An owner is "name/incarnation": the orchestrator's configured name (unique
// among live processes, stable across restarts) and a fresh id per process.
//
//  - async_claim(claim, owner, lease, max_count) -> vector<string> saga ids
//      Takes up to max_count sagas of claim.saga_type that nobody holds:
//      in-flight ones (running or compensating) whose lease expired, or held
//      by an earlier incarnation of the same name (that process is gone), or
//      never owned and unchanged for a lease; and blocked ones recorded on one
//      of claim.definitions. Never waits for, nor takes, a saga another
//      claimant is taking at the same time.
//  - async_claim_orphans(owner, lease, idle, max_count) -> vector<string> ids
//      Takes up to max_count in-flight sagas of any type that nobody has held
//      for `idle`: lease expired that long ago, or never owned and unchanged
//      that long. Their type's orchestrators would have taken them by then;
//      the caller blocks the ones it cannot run (docs/versioning.md).
//  - async_renew(owner, lease, running ids) -> vector<string> lost ids
//      Extends the owner's leases on `running` only (a saga it holds but does
//      not run expires, so it never looks attended); returns those of
//      `running` that another owner holds now (the caller must stop them).
//  - async_release(owner)
//      Ends the owner's leases now, so others may take its sagas at once
//      (a graceful shutdown).
template <class L>
concept SagaLeases = requires(L& l, SagaClaim c, std::string s, milliseconds d, std::size_t n,
                              std::vector<std::string> ids) {
    typename L::executor_type;
    { l.async_claim(c, s, d, n, boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<std::vector<std::string>>>;
    { l.async_claim_orphans(s, d, d, n, boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<std::vector<std::string>>>;
    { l.async_renew(s, d, ids, boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<std::vector<std::string>>>;
    { l.async_release(s, boost::asio::use_awaitable) } -> std::same_as<boost::asio::awaitable<void>>;
};

}  // namespace boong
