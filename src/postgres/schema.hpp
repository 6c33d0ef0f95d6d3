// The store's schema: the names of what it creates, the versioned migrations
// that create and upgrade it, and the prepared statements that use it.
#pragma once

#include "connection.hpp"

#include <boong/config.hpp>
#include <boong/postgres/roles.hpp>

#include <string>
#include <vector>

namespace boong::pg {

// The schema version this library writes and understands. A database at a
// higher version was upgraded by a newer library: this one refuses to open it.
inline constexpr int kSchemaVersion = 7;

// Names of the prepared statements (see statements()).
inline constexpr const char* kAppendStatement = "boong_append";
inline constexpr const char* kAppendKnownStatement = "boong_append_known";
inline constexpr const char* kReadStreamStatement = "boong_read_stream";
inline constexpr const char* kReadStreamsStatement = "boong_read_streams";
inline constexpr const char* kReadAllStatement = "boong_read_all";
inline constexpr const char* kSaveSnapshotStatement = "boong_save_snapshot";
inline constexpr const char* kLoadSnapshotStatement = "boong_load_snapshot";
inline constexpr const char* kInboxProcessedStatement = "boong_inbox_processed";
inline constexpr const char* kInboxRecordStatement = "boong_inbox_record";
inline constexpr const char* kInboxProcessedManyStatement = "boong_inbox_processed_many";
inline constexpr const char* kInboxRecordManyStatement = "boong_inbox_record_many";

// Everything the store creates, as quoted SQL names qualified with the schema
// the tables live in (the first schema of the search_path when the store
// opened), so no later search_path can redirect a statement.
struct Names {
    std::string schema;           // unquoted, as the server reported it
    std::string events;           // "public"."event_store"
    std::string snapshots;        // "public"."event_store_snapshots"
    std::string versions;         // "public"."event_store_schema": one row per applied migration
    std::string append_function;  // "public"."event_store_append"
    std::string append_known_function;  // "public"."event_store_append_known": appends to streams at known versions
    std::string sagas;            // "public"."event_store_sagas": one row per saga (phase, owner, lease)
    std::string saga_claim_index; // "event_store_sagas_claim_idx"
    std::string saga_blocked_index;  // "event_store_sagas_blocked_idx" (schema version 2)
    std::string saga_phase_check;    // "event_store_sagas_phase_check": the saga table's CHECK on phase (version 2)
    std::string saga_function;    // "public"."event_store_track_saga": keeps `sagas` in step with the events
    std::string saga_trigger;     // "event_store_track_saga" (a trigger takes its table's schema)
    std::string saga_migration_function;  // "public"."event_store_migrate_saga": SagaMigrated (version 3)
    std::string saga_migration_trigger;   // "event_store_migrate_saga"
    std::string saga_cancel_function;     // "public"."event_store_cancel_saga": SagaCancelRequested (version 4)
    std::string saga_cancel_trigger;      // "event_store_cancel_saga"
    std::string outbox;           // "public"."event_store_outbox": one row per relay (cursor and lease)
    std::string inbox;            // "public"."event_store_inbox": messages each consumer has processed
    std::string archive;          // "public"."event_store_archive": archived events (version 5)
    std::string keep_history_function;  // "public"."event_store_keep_history": refuses changes to history (version 6)
    std::string keep_history_trigger;   // "event_store_keep_history", on the events and archive tables
    std::string keep_history_truncate_trigger;  // "event_store_keep_history_truncate", on both
    std::string subject_keys;     // "public"."event_store_subject_keys": field encryption's keys (version 7)
    std::string position_sequence;          // "public"."event_store_position_seq"
    std::string position_sequence_literal;  // its name as a SQL string literal, for ::regclass
    std::string events_literal;   // the events table's name as a SQL string literal, for ::regclass
};

// Asks the server which schema unqualified names go to. Throws
// Error(errc::invalid_config) when the search_path names no existing schema.
Names resolve_names(pqxx::connection& connection, const PostgresStoreConfig& config);

// The names of what the store of `config` creates in `schema` (unquoted).
Names names_in(const std::string& schema, const PostgresStoreConfig& config);

// The statements of migration `version` (1..kSchemaVersion), as migrate()
// runs them. A migration's text never changes once released: a test holds
// each to a digest (tests/integration/postgres_store_test.cpp).
std::vector<std::string> migration_statements(int version, const Names& names);

// The GRANTs of boong::postgres_grants (include/boong/postgres/roles.hpp).
std::vector<std::string> grant_statements(const Names& names, const PostgresRoles& roles);

// Creates or upgrades the schema in one transaction, under an advisory lock
// so that processes starting together do it once. Idempotent. Throws
// Error(errc::invalid_config) when the database is at a newer schema version,
// or the tables exist with columns the store cannot use.
void migrate(pqxx::connection& connection, const Names& names);

// The prepared statements every session registers.
Statements statements(const Names& names);

// The advisory lock key appends take (pg_advisory_lock(bigint), held while
// a batch takes its transaction id and positions), as SQL: 'Boon' in the
// high 32 bits, the events table's OID in the low ones.
std::string append_lock_key_sql(const Names& names);

}  // namespace boong::pg
