// Subject keys in the store's database (SubjectKeyStore,
// boong/subject_keys.hpp; target Boong::postgres): the table
// `<table>_subject_keys`, each key wrapped by a MasterKey that only the
// services hold, so the table (or a backup of it) opens nothing.
//
//   auto master = std::make_shared<const boong::MasterKey>(boong::MasterKey::from_env("SHOP_MASTER_KEY"));
//   boong::PostgresSubjectKeys keys(store, master);
//   auto key = co_await keys.async_current("c-42", asio::use_awaitable);
//
// Making, rotating and shredding a subject's keys are serialized per subject
// (a transaction advisory lock), so a key made while the subject is shredded
// either comes before the shredding (and is shredded) or is refused.
// A key that does not unwrap (another master key) is Error(errc::invalid_config).
#pragma once

#include <boong/detail/erased_handler.hpp>
#include <boong/postgres/store.hpp>
#include <boong/subject_keys.hpp>

#include <boost/asio/async_result.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace boong {

class PostgresSubjectKeys {
public:
    using executor_type = boost::asio::any_io_executor;

    // The store must be open and outlive this; `master` must not be null.
    PostgresSubjectKeys(PostgresEventStore& store, std::shared_ptr<const MasterKey> master);

    executor_type get_executor() const { return store_.get_executor(); }

    template <class Token>
    auto async_current(std::string subject, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, SubjectKey)>(
            [this](auto handler, std::string s) {
                current_impl(std::move(s), detail::ErasedHandler<SubjectKey>(std::move(handler), get_executor()));
            },
            token, std::move(subject));
    }
    template <class Token>
    auto async_find(std::string subject, std::int32_t version, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, KeyLookup)>(
            [this](auto handler, std::string s, std::int32_t v) {
                find_impl(std::move(s), v, detail::ErasedHandler<KeyLookup>(std::move(handler), get_executor()));
            },
            token, std::move(subject), version);
    }
    template <class Token>
    auto async_rotate(std::string subject, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, SubjectKey)>(
            [this](auto handler, std::string s) {
                rotate_impl(std::move(s), detail::ErasedHandler<SubjectKey>(std::move(handler), get_executor()));
            },
            token, std::move(subject));
    }
    template <class Token>
    auto async_shred(std::string subject, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::int64_t)>(
            [this](auto handler, std::string s) {
                shred_impl(std::move(s), detail::ErasedHandler<std::int64_t>(std::move(handler), get_executor()));
            },
            token, std::move(subject));
    }

private:
    void current_impl(std::string subject, detail::ErasedHandler<SubjectKey> handler);
    void find_impl(std::string subject, std::int32_t version, detail::ErasedHandler<KeyLookup> handler);
    void rotate_impl(std::string subject, detail::ErasedHandler<SubjectKey> handler);
    void shred_impl(std::string subject, detail::ErasedHandler<std::int64_t> handler);

    PostgresEventStore& store_;
    std::shared_ptr<const MasterKey> master_;
};

static_assert(SubjectKeyStore<PostgresSubjectKeys>);

}  // namespace boong
