#include "transact.hpp"  // before rows.hpp: libpqxx 6 headers need <pqxx/transaction> first
#include "rows.hpp"

#include <boong/postgres/outbox.hpp>

#include <boong/detail/validate.hpp>

#include <pqxx/result>
#include <pqxx/transaction>

#include <memory>
#include <utility>

namespace boong {

void PostgresOutbox::acquire_impl(std::string relay, std::string owner, milliseconds lease,
                                  detail::ErasedHandler<std::optional<std::int64_t>> handler) {
    std::string create, take;
    try {
        detail::validate_cursor_request(relay, owner, lease);
        const auto& table = store_.tables().outbox;
        create = "INSERT INTO " + table + " (relay) VALUES ($1) ON CONFLICT (relay) DO NOTHING";
        take = "UPDATE " + table + " SET owner = $2, lease_until = now() + $3 * interval '1 millisecond', "
               "updated_at = now() WHERE relay = $1 AND (owner IS NULL OR owner = $2 OR lease_until < now() "
               "OR split_part(owner, '/', 1) = split_part($2, '/', 1)) RETURNING position";
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    // Durable: a relay that took over must not find, after a crash of the
    // server, that the previous owner's lease came back.
    pg::run_transaction<std::optional<std::int64_t>>(
        store_, "acquire the outbox cursor '" + relay + "'", Durability::durable,
        [create = std::move(create), take = std::move(take), relay, owner = std::move(owner),
         ms = static_cast<std::int64_t>(lease.count())](pqxx::transaction_base& tx) -> std::optional<std::int64_t> {
            tx.exec_params(create, relay);
            const auto rows = tx.exec_params(take, relay, owner, ms);
            if (rows.empty()) return std::nullopt;
            return pg::to_int64(rows[0][0]);
        },
        std::move(handler));
}

void PostgresOutbox::advance_impl(std::string relay, std::string owner, std::int64_t position, milliseconds lease,
                                  detail::ErasedHandler<bool> handler) {
    std::string sql;
    try {
        detail::validate_cursor_request(relay, owner, lease);
        if (position < 0) throw Error(errc::invalid_argument, "an outbox position cannot be negative");
        sql = "UPDATE " + store_.tables().outbox +
              " SET position = GREATEST(position, $3), lease_until = now() + $4 * interval '1 millisecond', "
              "updated_at = now() WHERE relay = $1 AND owner = $2 RETURNING position";
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    // Relaxed: losing an advance in a server crash only publishes those
    // events again (at-least-once), and saves an fsync per batch.
    pg::run_transaction<bool>(
        store_, "advance the outbox cursor '" + relay + "'", Durability::relaxed,
        [sql = std::move(sql), relay = std::move(relay), owner = std::move(owner), position,
         ms = static_cast<std::int64_t>(lease.count())](pqxx::transaction_base& tx) {
            return !tx.exec_params(sql, relay, owner, position, ms).empty();
        },
        std::move(handler));
}

void PostgresOutbox::release_impl(std::string relay, std::string owner, detail::ErasedHandler<void> handler) {
    std::string sql;
    try {
        detail::validate_cursor_request(relay, owner, milliseconds(1));  // no lease to check
        sql = "UPDATE " + store_.tables().outbox + " SET lease_until = now() WHERE relay = $1 AND owner = $2";
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    pg::run_transaction<void>(
        store_, "release the outbox cursor '" + relay + "'", Durability::durable,
        [sql = std::move(sql), relay = std::move(relay), owner = std::move(owner)](pqxx::transaction_base& tx) {
            tx.exec_params(sql, relay, owner);
        },
        std::move(handler));
}

void PostgresOutbox::status_impl(std::string relay, detail::ErasedHandler<OutboxStatus> handler) {
    std::string sql;
    try {
        detail::validate_relay_name(relay);
        const auto& t = store_.tables();
        sql = "SELECT coalesce(o.position, 0), o.owner, (extract(epoch FROM o.lease_until) * 1000000)::bigint, "
              "(SELECT count(*) FROM " + t.events + " e WHERE e.position > coalesce(o.position, 0)) "
              "FROM (SELECT 1) one LEFT JOIN " + t.outbox + " o ON o.relay = $1";
    } catch (...) {
        handler.complete(std::current_exception());
        return;
    }
    pg::run_transaction<OutboxStatus>(
        store_, "outbox status of '" + relay + "'", Durability::durable,
        [sql = std::move(sql), relay](pqxx::transaction_base& tx) {
            const auto row = tx.exec_params1(sql, relay);
            OutboxStatus s;
            s.relay = relay;
            s.position = pg::to_int64(row[0]);
            if (!row[1].is_null()) s.owner.assign(row[1].c_str(), row[1].size());
            if (!row[2].is_null()) s.lease_until = pg::from_micros(pg::to_int64(row[2]));
            s.pending = pg::to_int64(row[3]);
            return s;
        },
        std::move(handler));
}

}  // namespace boong
