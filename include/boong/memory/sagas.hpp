// The saga index of the in-memory store (SagaIndex): what PostgresSagaIndex
// keeps in a table beside the events, kept here in process memory and caught
// up from the store's global order (saga-<id> streams, their phase events)
// whenever it is asked. For tests and demos of a SagaOrchestrator without a
// server; the rules are those of saga_leases.hpp and saga_index.hpp.
#pragma once

#include <boong/detail/post.hpp>
#include <boong/memory/store.hpp>
#include <boong/saga_index.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace boong {

class MemorySagaIndex {
public:
    using executor_type = boost::asio::any_io_executor;

    // The store must outlive the index.
    explicit MemorySagaIndex(MemoryEventStore& store);
    ~MemorySagaIndex();
    MemorySagaIndex(const MemorySagaIndex&) = delete;
    MemorySagaIndex& operator=(const MemorySagaIndex&) = delete;

    executor_type get_executor() const { return store_.get_executor(); }

    template <class Token>
    auto async_claim(SagaClaim request, std::string owner, milliseconds lease, std::size_t max_count, Token&& token) {
        return detail::async_immediate<std::vector<std::string>>(
            get_executor(), std::forward<Token>(token),
            [this, c = std::move(request), o = std::move(owner), lease, max_count] {
                return claim(c, o, lease, max_count);
            });
    }

    template <class Token>
    auto async_claim_orphans(std::string owner, milliseconds lease, milliseconds idle, std::size_t max_count,
                             Token&& token) {
        return detail::async_immediate<std::vector<std::string>>(
            get_executor(), std::forward<Token>(token),
            [this, o = std::move(owner), lease, idle, max_count] { return claim_orphans(o, lease, idle, max_count); });
    }

    template <class Token>
    auto async_renew(std::string owner, milliseconds lease, std::vector<std::string> running, Token&& token) {
        return detail::async_immediate<std::vector<std::string>>(
            get_executor(), std::forward<Token>(token),
            [this, o = std::move(owner), lease, r = std::move(running)] { return renew(o, lease, r); });
    }

    template <class Token>
    auto async_release(std::string owner, Token&& token) {
        return detail::async_immediate<void>(get_executor(), std::forward<Token>(token),
                                             [this, o = std::move(owner)] { release(o); });
    }

    template <class Token>
    auto async_list(SagaQuery query, Token&& token) {
        return detail::async_immediate<std::vector<SagaRecord>>(get_executor(), std::forward<Token>(token),
                                                                [this, q = std::move(query)] { return list(q); });
    }

    template <class Token>
    auto async_stuck(milliseconds idle, std::size_t limit, Token&& token) {
        return detail::async_immediate<std::vector<SagaRecord>>(get_executor(), std::forward<Token>(token),
                                                                [this, idle, limit] { return stuck(idle, limit); });
    }

    template <class Token>
    auto async_find(std::string saga_id, Token&& token) {
        return detail::async_immediate<std::optional<SagaRecord>>(
            get_executor(), std::forward<Token>(token), [this, id = std::move(saga_id)] { return find(id); });
    }

    template <class Token>
    auto async_count_by_phase(Token&& token) {
        return detail::async_immediate<std::vector<std::pair<SagaPhase, std::int64_t>>>(
            get_executor(), std::forward<Token>(token), [this] { return count_by_phase(); });
    }

    template <class Token>
    auto async_count_definitions(std::string saga_type, Token&& token) {
        return detail::async_immediate<std::vector<DefinitionCount>>(
            get_executor(), std::forward<Token>(token),
            [this, t = std::move(saga_type)] { return count_definitions(t); });
    }

    // Synchronous forms (thread-safe).
    std::vector<std::string> claim(const SagaClaim& request, const std::string& owner, milliseconds lease,
                                   std::size_t max_count);
    std::vector<std::string> claim_orphans(const std::string& owner, milliseconds lease, milliseconds idle,
                                           std::size_t max_count);
    std::vector<std::string> renew(const std::string& owner, milliseconds lease, const std::vector<std::string>& running);
    void release(const std::string& owner);
    std::vector<SagaRecord> list(const SagaQuery& query);
    std::vector<SagaRecord> stuck(milliseconds idle, std::size_t limit);
    std::optional<SagaRecord> find(const std::string& saga_id);
    std::vector<std::pair<SagaPhase, std::int64_t>> count_by_phase();
    std::vector<DefinitionCount> count_definitions(const std::string& saga_type);

private:
    struct State;
    // Locks the index after applying what the store holds beyond it.
    std::unique_lock<std::mutex> catch_up();

    MemoryEventStore& store_;
    std::unique_ptr<State> state_;
};

static_assert(SagaIndex<MemorySagaIndex>);

}  // namespace boong
