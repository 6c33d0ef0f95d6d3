// The saga table of the PostgreSQL store (target Boong::postgres): one row per
// saga, kept in step with the saga's events by the store itself (a trigger in
// the appending transaction). Orchestrators claim, renew and release their
// sagas here (SagaLeases); operators list them by phase and find the stuck
// ones. See docs/durability.md.
#pragma once

#include <boong/detail/erased_handler.hpp>
#include <boong/saga_index.hpp>
#include <boong/postgres/store.hpp>

#include <boost/asio/async_result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace boong {

class PostgresSagaIndex {
public:
    using executor_type = boost::asio::any_io_executor;

    // The store must be open and outlive the index.
    explicit PostgresSagaIndex(PostgresEventStore& store) : store_(store) {}

    executor_type get_executor() const { return store_.get_executor(); }

    // ---- SagaLeases: see saga_leases.hpp for what each one promises.
    template <class Token>
    auto async_claim(SagaClaim claim, std::string owner, milliseconds lease, std::size_t max_count, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::vector<std::string>)>(
            [this](auto handler, SagaClaim c, std::string o, milliseconds l, std::size_t n) {
                claim_impl(std::move(c), std::move(o), l, n,
                           detail::ErasedHandler<std::vector<std::string>>(std::move(handler), get_executor()));
            },
            token, std::move(claim), std::move(owner), lease, max_count);
    }

    template <class Token>
    auto async_claim_orphans(std::string owner, milliseconds lease, milliseconds idle, std::size_t max_count,
                             Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::vector<std::string>)>(
            [this](auto handler, std::string o, milliseconds l, milliseconds i, std::size_t n) {
                claim_orphans_impl(std::move(o), l, i, n,
                                   detail::ErasedHandler<std::vector<std::string>>(std::move(handler), get_executor()));
            },
            token, std::move(owner), lease, idle, max_count);
    }

    template <class Token>
    auto async_renew(std::string owner, milliseconds lease, std::vector<std::string> running, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::vector<std::string>)>(
            [this](auto handler, std::string o, milliseconds l, std::vector<std::string> r) {
                renew_impl(std::move(o), l, std::move(r),
                           detail::ErasedHandler<std::vector<std::string>>(std::move(handler), get_executor()));
            },
            token, std::move(owner), lease, std::move(running));
    }

    template <class Token>
    auto async_release(std::string owner, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr)>(
            [this](auto handler, std::string o) {
                release_impl(std::move(o), detail::ErasedHandler<void>(std::move(handler), get_executor()));
            },
            token, std::move(owner));
    }

    // ---- SagaIndex: see saga_index.hpp.
    template <class Token>
    auto async_list(SagaQuery query, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::vector<SagaRecord>)>(
            [this](auto handler, SagaQuery q) {
                list_impl(std::move(q), detail::ErasedHandler<std::vector<SagaRecord>>(std::move(handler), get_executor()));
            },
            token, std::move(query));
    }

    template <class Token>
    auto async_stuck(milliseconds idle, std::size_t limit, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::vector<SagaRecord>)>(
            [this](auto handler, milliseconds i, std::size_t n) {
                stuck_impl(i, n, detail::ErasedHandler<std::vector<SagaRecord>>(std::move(handler), get_executor()));
            },
            token, idle, limit);
    }

    template <class Token>
    auto async_find(std::string saga_id, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::optional<SagaRecord>)>(
            [this](auto handler, std::string id) {
                find_impl(std::move(id),
                          detail::ErasedHandler<std::optional<SagaRecord>>(std::move(handler), get_executor()));
            },
            token, std::move(saga_id));
    }

    template <class Token>
    auto async_count_by_phase(Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::vector<std::pair<SagaPhase, std::int64_t>>)>(
            [this](auto handler) {
                count_impl(detail::ErasedHandler<std::vector<std::pair<SagaPhase, std::int64_t>>>(std::move(handler),
                                                                                                   get_executor()));
            },
            token);
    }

    template <class Token>
    auto async_count_definitions(std::string saga_type, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::vector<DefinitionCount>)>(
            [this](auto handler, std::string t) {
                count_definitions_impl(std::move(t), detail::ErasedHandler<std::vector<DefinitionCount>>(
                                                         std::move(handler), get_executor()));
            },
            token, std::move(saga_type));
    }

private:
    void claim_impl(SagaClaim claim, std::string owner, milliseconds lease, std::size_t max_count,
                    detail::ErasedHandler<std::vector<std::string>> handler);
    void claim_orphans_impl(std::string owner, milliseconds lease, milliseconds idle, std::size_t max_count,
                            detail::ErasedHandler<std::vector<std::string>> handler);
    void renew_impl(std::string owner, milliseconds lease, std::vector<std::string> running,
                    detail::ErasedHandler<std::vector<std::string>> handler);
    void release_impl(std::string owner, detail::ErasedHandler<void> handler);
    void list_impl(SagaQuery query, detail::ErasedHandler<std::vector<SagaRecord>> handler);
    void stuck_impl(milliseconds idle, std::size_t limit, detail::ErasedHandler<std::vector<SagaRecord>> handler);
    void find_impl(std::string saga_id, detail::ErasedHandler<std::optional<SagaRecord>> handler);
    void count_impl(detail::ErasedHandler<std::vector<std::pair<SagaPhase, std::int64_t>>> handler);
    void count_definitions_impl(std::string saga_type, detail::ErasedHandler<std::vector<DefinitionCount>> handler);

    PostgresEventStore& store_;
};

static_assert(SagaIndex<PostgresSagaIndex>);

}  // namespace boong
