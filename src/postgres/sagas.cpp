// The saga table: leases for orchestrators, queries for operators. Every
// statement runs through the store's pool (PostgresEventStore::transact), so
// none blocks the caller's executor.
#include "transact.hpp"  // before rows.hpp: libpqxx 6 headers need <pqxx/transaction> first
#include "rows.hpp"

#include <boong/postgres/sagas.hpp>

#include <boong/detail/validate.hpp>

#include <pqxx/result>
#include <pqxx/transaction>

#include <algorithm>
#include <memory>
#include <string_view>
#include <tuple>
#include <utility>

namespace boong {
namespace {

constexpr const char* kInFlight = "phase IN ('running', 'compensating')";
// What an owner may hold: in flight, or blocked and claimed to be unblocked.
constexpr const char* kHoldable = "phase IN ('running', 'compensating', 'blocked')";

const std::string& sagas_table(PostgresEventStore& store) { return store.tables().sagas; }

std::string record_columns() {
    return "saga_id, saga_type, phase, version, failed_step, failure_kind, error, failed_compensation, "
           "compensation_error, (extract(epoch FROM deadline) * 1000000)::bigint, "
           "(extract(epoch FROM started_at) * 1000000)::bigint, (extract(epoch FROM updated_at) * 1000000)::bigint, "
           "owner, (extract(epoch FROM lease_until) * 1000000)::bigint, definition_version, fingerprint, "
           "blocked_reason";
}

std::string text(const pqxx::field& f) { return f.is_null() ? std::string() : std::string(f.c_str(), f.size()); }

std::optional<Clock::time_point> maybe_time(const pqxx::field& f) {
    if (f.is_null()) return std::nullopt;
    return pg::from_micros(pg::to_int64(f));
}

SagaRecord to_record(const pqxx::row& row) {
    SagaRecord r;
    r.saga_id = text(row[0]);
    r.saga_type = text(row[1]);
    r.phase = saga_phase_from_string(text(row[2])).value_or(SagaPhase::running);
    r.version = pg::to_int64(row[3]);
    r.failed_step = text(row[4]);
    r.failure_kind = failure_kind_from_string(text(row[5])).value_or(FailureKind::none);
    r.error = text(row[6]);
    r.failed_compensation = text(row[7]);
    r.compensation_error = text(row[8]);
    r.deadline = maybe_time(row[9]);
    r.started_at = pg::from_micros(pg::to_int64(row[10]));
    r.updated_at = pg::from_micros(pg::to_int64(row[11]));
    r.owner = text(row[12]);
    r.lease_until = maybe_time(row[13]);
    r.definition_version = pg::to_int64(row[14]);
    r.fingerprint = text(row[15]);
    r.blocked_reason = text(row[16]);
    return r;
}

std::vector<SagaRecord> to_records(const pqxx::result& rows) {
    std::vector<SagaRecord> out;
    out.reserve(rows.size());
    for (const auto& row : rows) out.push_back(to_record(row));
    return out;
}

std::vector<std::string> to_ids(const pqxx::result& rows) {
    std::vector<std::string> out;
    out.reserve(rows.size());
    for (const auto& row : rows) out.emplace_back(row[0].c_str(), row[0].size());
    return out;
}

// A text[] literal for a parameter (libpqxx 6 has no array parameters).
std::string text_array(const std::vector<std::string>& items) {
    std::string out = "{";
    for (const auto& s : items) {
        if (out.size() > 1) out += ',';
        out += '"';
        for (char c : s) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    return out + '}';
}

// The served definitions as the claim compares them (definition_mismatch's
// rule): `keys` holds "version/fingerprint" for each one with a fingerprint
// and "version/" for each (a saga recorded without one); `any_of` the
// versions served without a fingerprint, which match whatever was recorded.
struct DefinitionKeys {
    std::string keys;
    std::string any_of;
};

DefinitionKeys definition_keys(const std::vector<SagaDefinition>& served) {
    std::vector<std::string> keys, any_of;
    for (const auto& d : served) {
        const auto version = std::to_string(d.version);
        keys.push_back(version + "/");
        if (d.fingerprint.empty()) {
            any_of.push_back(version);
        } else {
            keys.push_back(version + "/" + d.fingerprint);
        }
    }
    return {text_array(keys), text_array(any_of)};
}

// A claim: gives the owner (the placeholder `owner`) up to `limit` of the
// sagas `condition` selects, with a lease of `lease_ms`. Rows another
// transaction holds are skipped, never waited for; never-leased first, then
// the longest expired.
std::string take_sql(const std::string& table, const std::string& condition, std::string_view owner,
                     std::string_view lease_ms, std::string_view limit) {
    return "WITH c AS (SELECT saga_id FROM " + table + " WHERE " + condition +
           " ORDER BY lease_until NULLS FIRST, saga_id LIMIT " + std::string(limit) +
           " FOR UPDATE SKIP LOCKED) UPDATE " + table + " s SET owner = " + std::string(owner) +
           ", lease_until = now() + " + std::string(lease_ms) +
           " * interval '1 millisecond' FROM c WHERE s.saga_id = c.saga_id RETURNING s.saga_id";
}

std::int64_t clamp_limit(std::size_t n) {
    return static_cast<std::int64_t>(std::min<std::size_t>(n, 10000));
}

}  // namespace

void PostgresSagaIndex::claim_impl(SagaClaim claim, std::string owner, milliseconds lease, std::size_t max_count,
                                   detail::ErasedHandler<std::vector<std::string>> handler) {
    std::string table;
    try {
        detail::validate_owner(owner, "saga");
        detail::validate_lease(lease, "a saga");
        if (claim.saga_type.empty()) throw Error(errc::invalid_argument, "claim: the saga type is empty");
        table = sagas_table(store_);
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    if (max_count == 0) {
        handler.complete(nullptr, {});
        return;
    }
    // SKIP LOCKED: rows another claimant (or an append) holds right now are
    // left to it. An earlier incarnation's sagas are free at once: the name
    // is unique among live processes, so that process is gone. Sagas nobody
    // ever owned (plain SagaRunners) are taken only after a lease of quiet.
    // A blocked saga is free at once (SagaBlocked let it go) to a claimant
    // that serves its definition, unless another took it since: it stays
    // blocked until that one's SagaResumed.
    std::string sql = take_sql(table,
                               "saga_type = $1 AND ((" + std::string(kInFlight) +
                                   " AND (lease_until < now()"
                                   " OR (owner IS NULL AND lease_until IS NULL"
                                   " AND updated_at < now() - $4 * interval '1 millisecond')"
                                   " OR (split_part(owner, '/', 1) = split_part($2, '/', 1) AND owner <> $2)))"
                                   " OR (phase = 'blocked'"
                                   " AND ((definition_version || '/' || coalesce(fingerprint, '')) = ANY($5::text[])"
                                   " OR definition_version::text = ANY($6::text[]))"
                                   " AND (lease_until IS NULL OR lease_until < now()"
                                   " OR (split_part(owner, '/', 1) = split_part($2, '/', 1) AND owner <> $2))))",
                               "$2", "$4", "$3");
    auto served = definition_keys(claim.definitions);
    pg::run_transaction<std::vector<std::string>>(
        store_, "claim sagas of type " + claim.saga_type, Durability::relaxed,
        [sql = std::move(sql), saga_type = std::move(claim.saga_type), owner = std::move(owner),
         n = clamp_limit(max_count), ms = static_cast<std::int64_t>(lease.count()),
         served = std::move(served)](pqxx::transaction_base& tx) {
            return to_ids(tx.exec_params(sql, saga_type, owner, n, ms, served.keys, served.any_of));
        },
        std::move(handler));
}

void PostgresSagaIndex::claim_orphans_impl(std::string owner, milliseconds lease, milliseconds idle,
                                           std::size_t max_count,
                                           detail::ErasedHandler<std::vector<std::string>> handler) {
    std::string table;
    try {
        detail::validate_owner(owner, "saga");
        detail::validate_lease(lease, "a saga");
        if (idle.count() < 0) throw Error(errc::invalid_argument, "claim_orphans: idle must not be negative");
        table = sagas_table(store_);
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    if (max_count == 0) {
        handler.complete(nullptr, {});
        return;
    }
    // Any type: left this long, no orchestrator of its type is there to take
    // it (those claim at every round). Blocked ones are not orphans: they
    // wait for a claimant that serves their definition.
    std::string sql = take_sql(table,
                               std::string(kInFlight) + " AND (lease_until < now() - $3 * interval '1 millisecond'"
                                                        " OR (owner IS NULL AND lease_until IS NULL"
                                                        " AND updated_at < now() - $3 * interval '1 millisecond'))",
                               "$1", "$2", "$4");
    pg::run_transaction<std::vector<std::string>>(
        store_, "claim orphaned sagas", Durability::relaxed,
        [sql = std::move(sql), owner = std::move(owner), ms = static_cast<std::int64_t>(lease.count()),
         idle_ms = static_cast<std::int64_t>(idle.count()), n = clamp_limit(max_count)](pqxx::transaction_base& tx) {
            return to_ids(tx.exec_params(sql, owner, ms, idle_ms, n));
        },
        std::move(handler));
}

void PostgresSagaIndex::renew_impl(std::string owner, milliseconds lease, std::vector<std::string> running,
                                   detail::ErasedHandler<std::vector<std::string>> handler) {
    std::string table;
    try {
        detail::validate_owner(owner, "saga");
        detail::validate_lease(lease, "a saga");
        table = sagas_table(store_);
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    if (running.empty()) {  // runs nothing: holds nothing worth renewing
        handler.complete(nullptr, {});
        return;
    }
    // Only the sagas it runs: one it holds but does not run must expire, or
    // it would look attended forever. Rows locked right now (a saga's own
    // append, a claim) are skipped rather than waited for: waiting could
    // deadlock with an append that holds one and wants another. They are
    // renewed on the next round.
    std::string renew = "WITH mine AS (SELECT saga_id FROM " + table + " WHERE owner = $1 AND " + kHoldable +
                        " AND saga_id = ANY($3::text[]) FOR UPDATE SKIP LOCKED) UPDATE " + table +
                        " s SET lease_until = now() + $2 * interval '1 millisecond' FROM mine WHERE s.saga_id = "
                        "mine.saga_id";
    // A blocked saga nobody holds is not lost: its runner blocked it.
    std::string lost = "SELECT saga_id FROM " + table + " WHERE saga_id = ANY($1::text[]) AND (" + kInFlight +
                       " OR (phase = 'blocked' AND owner IS NOT NULL)) AND owner IS DISTINCT FROM $2";
    pg::run_transaction<std::vector<std::string>>(
        store_, "renew the leases of " + owner, Durability::relaxed,
        [renew = std::move(renew), lost = std::move(lost), owner = std::move(owner),
         ms = static_cast<std::int64_t>(lease.count()), ids = text_array(running)](pqxx::transaction_base& tx) {
            tx.exec_params(renew, owner, ms, ids);
            return to_ids(tx.exec_params(lost, ids, owner));
        },
        std::move(handler));
}

void PostgresSagaIndex::release_impl(std::string owner, detail::ErasedHandler<void> handler) {
    std::string table;
    try {
        detail::validate_owner(owner, "saga");
        table = sagas_table(store_);
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    std::string sql = "UPDATE " + table + " SET lease_until = now() WHERE owner = $1 AND " + kHoldable;
    pg::run_transaction<void>(
        store_, "release the leases of " + owner, Durability::durable,
        [sql = std::move(sql), owner = std::move(owner)](pqxx::transaction_base& tx) { tx.exec_params(sql, owner); },
        std::move(handler));
}

void PostgresSagaIndex::list_impl(SagaQuery query, detail::ErasedHandler<std::vector<SagaRecord>> handler) {
    std::string sql;
    try {
        if (query.limit < 1 || query.limit > 10000) {
            throw Error(errc::invalid_argument, "a saga query's limit must be in 1..10000, got " +
                                                    std::to_string(query.limit));
        }
        sql = "SELECT " + record_columns() + " FROM " + sagas_table(store_) +
              " WHERE ($1::text IS NULL OR phase = $1) AND ($2 = '' OR saga_type = $2) AND saga_id > $3"
              " ORDER BY saga_id LIMIT $4";
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    std::optional<std::string> phase;
    if (query.phase) phase = std::string(to_string(*query.phase));
    pg::run_transaction<std::vector<SagaRecord>>(
        store_, "list sagas", Durability::durable,
        [sql = std::move(sql), q = std::move(query), phase = std::move(phase)](pqxx::transaction_base& tx) {
            const char* p = phase ? phase->c_str() : nullptr;
            return to_records(tx.exec_params(sql, p, q.saga_type, q.after_id, static_cast<std::int64_t>(q.limit)));
        },
        std::move(handler));
}

void PostgresSagaIndex::stuck_impl(milliseconds idle, std::size_t limit,
                                   detail::ErasedHandler<std::vector<SagaRecord>> handler) {
    std::string sql;
    try {
        if (limit < 1 || limit > 10000) {
            throw Error(errc::invalid_argument, "limit must be in 1..10000, got " + std::to_string(limit));
        }
        if (idle.count() < 0) throw Error(errc::invalid_argument, "idle must not be negative");
        sql = "SELECT " + record_columns() + " FROM " + sagas_table(store_) +
              " WHERE phase IN ('failed', 'blocked') OR (" + kInFlight +
              " AND (lease_until < now() OR (lease_until IS NULL AND updated_at < now() - $1 * interval '1 "
              "millisecond'))) ORDER BY updated_at LIMIT $2";
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    pg::run_transaction<std::vector<SagaRecord>>(
        store_, "find stuck sagas", Durability::durable,
        [sql = std::move(sql), ms = static_cast<std::int64_t>(idle.count()),
         n = static_cast<std::int64_t>(limit)](pqxx::transaction_base& tx) {
            return to_records(tx.exec_params(sql, ms, n));
        },
        std::move(handler));
}

void PostgresSagaIndex::find_impl(std::string saga_id, detail::ErasedHandler<std::optional<SagaRecord>> handler) {
    std::string sql;
    try {
        sql = "SELECT " + record_columns() + " FROM " + sagas_table(store_) + " WHERE saga_id = $1";
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    pg::run_transaction<std::optional<SagaRecord>>(
        store_, "find saga " + saga_id, Durability::durable,
        [sql = std::move(sql), id = std::move(saga_id)](pqxx::transaction_base& tx) -> std::optional<SagaRecord> {
            const auto rows = tx.exec_params(sql, id);
            if (rows.empty()) return std::nullopt;
            return to_record(rows[0]);
        },
        std::move(handler));
}

void PostgresSagaIndex::count_impl(detail::ErasedHandler<std::vector<std::pair<SagaPhase, std::int64_t>>> handler) {
    std::string sql;
    try {
        sql = "SELECT phase, count(*) FROM " + sagas_table(store_) + " GROUP BY phase";
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    pg::run_transaction<std::vector<std::pair<SagaPhase, std::int64_t>>>(
        store_, "count sagas by phase", Durability::durable,
        [sql = std::move(sql)](pqxx::transaction_base& tx) {
            std::vector<std::pair<SagaPhase, std::int64_t>> out;
            for (const auto& row : tx.exec(sql)) {
                if (auto p = saga_phase_from_string(text(row[0]))) out.emplace_back(*p, pg::to_int64(row[1]));
            }
            std::sort(out.begin(), out.end());  // SagaPhase order
            return out;
        },
        std::move(handler));
}

void PostgresSagaIndex::count_definitions_impl(std::string saga_type,
                                               detail::ErasedHandler<std::vector<DefinitionCount>> handler) {
    std::string sql;
    try {
        sql = "SELECT saga_type, definition_version, coalesce(fingerprint, ''), phase, count(*) FROM " +
              sagas_table(store_) +
              " WHERE phase NOT IN ('completed', 'compensated') AND ($1 = '' OR saga_type = $1)"
              " GROUP BY 1, 2, 3, 4";
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    pg::run_transaction<std::vector<DefinitionCount>>(
        store_, "count sagas by definition", Durability::durable,
        [sql = std::move(sql), t = std::move(saga_type)](pqxx::transaction_base& tx) {
            std::vector<DefinitionCount> out;
            for (const auto& row : tx.exec_params(sql, t)) {
                const auto phase = saga_phase_from_string(text(row[3]));
                if (!phase) continue;
                out.push_back({text(row[0]), pg::to_int64(row[1]), text(row[2]), *phase, pg::to_int64(row[4])});
            }
            // By type, version, fingerprint, then SagaPhase order (not the phases' text).
            std::sort(out.begin(), out.end(), [](const DefinitionCount& a, const DefinitionCount& b) {
                return std::tie(a.saga_type, a.definition_version, a.fingerprint, a.phase) <
                       std::tie(b.saga_type, b.definition_version, b.fingerprint, b.phase);
            });
            return out;
        },
        std::move(handler));
}

}  // namespace boong
