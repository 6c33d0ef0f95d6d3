// The SagaLeases concept: how orchestrators share sagas so that each runs in
// one process at a time (see SagaOrchestrator and docs/durability.md).
#pragma once

#include <boong/event.hpp>
#include <boong/policy.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <concepts>
#include <cstddef>
#include <string>
#include <vector>

namespace boong {

// An owner is "name/incarnation": the orchestrator's configured name (unique
// among live processes, stable across restarts) and a fresh id per process.
//
//  - async_claim(saga_type, owner, lease, max_count) -> vector<string> saga ids
//      Takes up to max_count in-flight sagas (running or compensating) of the
//      type that nobody holds: lease expired, or held by an earlier
//      incarnation of the same name (that process is gone), or never owned
//      and unchanged for a lease. Never waits for, nor takes, a saga another
//      claimant is taking at the same time.
//  - async_renew(owner, lease, running ids) -> vector<string> lost ids
//      Extends the owner's leases; returns those of `running` that another
//      owner holds now (the caller must stop running them).
//  - async_release(owner)
//      Ends the owner's leases now, so others may take its sagas at once
//      (a graceful shutdown).
template <class L>
concept SagaLeases = requires(L& l, std::string s, milliseconds d, std::size_t n, std::vector<std::string> ids) {
    typename L::executor_type;
    { l.async_claim(s, s, d, n, boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<std::vector<std::string>>>;
    { l.async_renew(s, d, ids, boost::asio::use_awaitable) }
        -> std::same_as<boost::asio::awaitable<std::vector<std::string>>>;
    { l.async_release(s, boost::asio::use_awaitable) } -> std::same_as<boost::asio::awaitable<void>>;
};

}  // namespace boong
