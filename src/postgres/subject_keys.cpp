#include "transact.hpp"  // before rows.hpp: libpqxx 6 headers need <pqxx/transaction> first
#include "rows.hpp"

#include <boong/postgres/subject_keys.hpp>

#include <boong/error.hpp>

#include <pqxx/result>
#include <pqxx/transaction>

#include <utility>

namespace boong {

namespace {

[[noreturn]] void refuse_shredded(const std::string& subject) {
    throw Error(errc::rejected,
                "field encryption: subject '" + subject + "' was shredded: nothing new is encrypted for it");
}

// One subject's key changes, one at a time: the lock is per table and
// subject, held to the end of the transaction.
void lock_subject(pqxx::transaction_base& tx, const std::string& table, const std::string& subject) {
    tx.exec_params("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended($1 || '/' || $2, 0))", table,
                   subject);
}

// The subject's newest version and its wrapped key; version 0 (the
// tombstone) when shredded; nullopt when it has none.
std::optional<std::pair<std::int32_t, std::string>> newest(pqxx::transaction_base& tx, const std::string& table,
                                                           const std::string& subject) {
    const auto rows = tx.exec_params("SELECT version, wrapped FROM " + table +
                                         " WHERE subject = $1 ORDER BY version = 0 DESC, version DESC LIMIT 1",
                                     subject);
    if (rows.empty()) return std::nullopt;
    const auto version = rows[0][0].as<std::int32_t>();
    if (version == 0 || rows[0][1].is_null()) return std::pair<std::int32_t, std::string>{0, ""};
    return std::pair<std::int32_t, std::string>{version, rows[0][1].as<std::string>()};
}

SubjectKey make_version(pqxx::transaction_base& tx, const std::string& table, const MasterKey& master,
                        const std::string& subject, std::int32_t version) {
    auto key = SubjectKey::generate(subject, version);
    tx.exec_params("INSERT INTO " + table + " (subject, version, wrapped) VALUES ($1, $2, $3)", subject, version,
                   master.wrap(key));
    return key;
}

// Completes `handler` with the error when `subject` is not a subject name.
template <class T>
bool valid(const std::string& subject, detail::ErasedHandler<T>& handler) {
    try {
        detail::validate_subject(subject);
        return true;
    } catch (...) {
        handler.complete(std::current_exception());
        return false;
    }
}

}  // namespace

PostgresSubjectKeys::PostgresSubjectKeys(PostgresEventStore& store, std::shared_ptr<const MasterKey> master)
    : store_(store), master_(std::move(master)) {
    if (!master_) throw Error(errc::invalid_config, "PostgresSubjectKeys: no master key");
}

void PostgresSubjectKeys::current_impl(std::string subject, detail::ErasedHandler<SubjectKey> handler) {
    if (!valid(subject, handler)) return;
    pg::run_transaction<SubjectKey>(
        store_, "the key of subject '" + subject + "'", Durability::durable,
        [table = store_.tables().subject_keys, master = master_, subject](pqxx::transaction_base& tx) {
            // Most calls find the key: no lock for them.
            auto found = newest(tx, table, subject);
            if (found && found->first == 0) refuse_shredded(subject);
            if (found) return master->unwrap(subject, found->first, found->second);
            lock_subject(tx, table, subject);
            found = newest(tx, table, subject);  // made or shredded meanwhile?
            if (found && found->first == 0) refuse_shredded(subject);
            if (found) return master->unwrap(subject, found->first, found->second);
            return make_version(tx, table, *master, subject, 1);
        },
        std::move(handler));
}

void PostgresSubjectKeys::find_impl(std::string subject, std::int32_t version,
                                    detail::ErasedHandler<KeyLookup> handler) {
    if (!valid(subject, handler)) return;
    pg::run_transaction<KeyLookup>(
        store_, "the key of subject '" + subject + "' version " + std::to_string(version), Durability::relaxed,
        [table = store_.tables().subject_keys, master = master_, subject, version](pqxx::transaction_base& tx) {
            if (version < 1) return KeyLookup::unknown();
            const auto rows = tx.exec_params("SELECT version, wrapped FROM " + table +
                                                 " WHERE subject = $1 AND version IN (0, $2) ORDER BY version",
                                             subject, version);
            if (rows.empty()) return KeyLookup::unknown();
            if (rows[0][0].as<std::int32_t>() == 0 || rows[0][1].is_null()) return KeyLookup::shredded();
            return KeyLookup::found(master->unwrap(subject, version, rows[0][1].as<std::string>()));
        },
        std::move(handler));
}

void PostgresSubjectKeys::rotate_impl(std::string subject, detail::ErasedHandler<SubjectKey> handler) {
    if (!valid(subject, handler)) return;
    pg::run_transaction<SubjectKey>(
        store_, "rotating the key of subject '" + subject + "'", Durability::durable,
        [table = store_.tables().subject_keys, master = master_, subject](pqxx::transaction_base& tx) {
            lock_subject(tx, table, subject);
            const auto found = newest(tx, table, subject);
            if (found && found->first == 0) refuse_shredded(subject);
            return make_version(tx, table, *master, subject, found ? found->first + 1 : 1);
        },
        std::move(handler));
}

void PostgresSubjectKeys::shred_impl(std::string subject, detail::ErasedHandler<std::int64_t> handler) {
    if (!valid(subject, handler)) return;
    pg::run_transaction<std::int64_t>(
        store_, "shredding the keys of subject '" + subject + "'", Durability::durable,
        [table = store_.tables().subject_keys, subject](pqxx::transaction_base& tx) {
            lock_subject(tx, table, subject);
            const auto deleted = tx.exec_params("UPDATE " + table +
                                                    " SET wrapped = NULL, shredded_at = now()"
                                                    " WHERE subject = $1 AND wrapped IS NOT NULL",
                                                subject)
                                     .affected_rows();
            tx.exec_params("INSERT INTO " + table +
                               " (subject, version, wrapped, shredded_at) VALUES ($1, 0, NULL, now())"
                               " ON CONFLICT (subject, version) DO NOTHING",
                           subject);
            return static_cast<std::int64_t>(deleted);
        },
        std::move(handler));
}

}  // namespace boong
