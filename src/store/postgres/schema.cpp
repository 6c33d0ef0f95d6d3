#include "schema.hpp"

#include <boong/saga_state.hpp>

#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include <array>
#include <cstdint>
#include <cstdio>
#include <string_view>

#ifndef BOONG_LIBRARY_VERSION
#define BOONG_LIBRARY_VERSION "unknown"
#endif

namespace boong::pg {
namespace {

constexpr std::size_t kMaxIdentifier = 63;  // NAMEDATALEN - 1
constexpr std::int32_t kLockClass = 0x426f6f6e;  // 'Boon': the first key of Boong's two-key advisory locks

std::uint32_t fnv1a32(std::string_view s) noexcept {
    std::uint32_t h = 2166136261u;
    for (unsigned char c : s) {
        h ^= c;
        h *= 16777619u;
    }
    return h;
}

std::string quote_identifier(std::string_view name) {
    std::string out = "\"";
    for (char c : name) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + '"';
}

std::string quote_literal(std::string_view text) {
    std::string out = "'";
    for (char c : text) {
        if (c == '\'') out += '\'';
        out += c;
    }
    return out + '\'';
}

// `table` + `suffix`, shortened with a hash of `table` when longer than
// Postgres keeps (it would silently truncate, and two names could collide).
std::string derived_name(const std::string& table, std::string_view suffix) {
    if (table.size() + suffix.size() <= kMaxIdentifier) return table + std::string(suffix);
    char hash[16];
    std::snprintf(hash, sizeof hash, "_%08x", fnv1a32(table));
    return table.substr(0, kMaxIdentifier - suffix.size() - 9) + hash + std::string(suffix);
}

// The events that move a saga from one phase to another (see saga_state.hpp).
std::string saga_phase_types() {
    using namespace saga_event;
    std::string out;
    for (std::string_view t : {started, resumed, compensation_started, completed, compensated, failed}) {
        if (!out.empty()) out += ", ";
        out += quote_literal(t);
    }
    return out;
}

struct Column {
    std::string_view name;
    std::string_view type;  // as format_type() prints it
};

constexpr std::array<Column, 9> kEventColumns{{{"position", "bigint"},
                                               {"stream_id", "text"},
                                               {"version", "bigint"},
                                               {"event_id", "uuid"},
                                               {"type", "text"},
                                               {"schema_version", "integer"},
                                               {"payload", "jsonb"},
                                               {"metadata", "jsonb"},
                                               {"stored_at", "timestamp with time zone"}}};

constexpr std::array<Column, 6> kSnapshotColumns{{{"stream_id", "text"},
                                                  {"version", "bigint"},
                                                  {"type", "text"},
                                                  {"schema_version", "integer"},
                                                  {"state", "jsonb"},
                                                  {"taken_at", "timestamp with time zone"}}};

// Refuses a table that exists with columns the store cannot use (a table of
// the same name made for something else). Extra columns are allowed.
template <std::size_t N>
void check_shape(pqxx::work& tx, const std::string& table, const std::array<Column, N>& expected) {
    const auto rows = tx.exec_params(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a "
        "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
        table);
    if (rows.empty()) return;  // no such table (yet)
    for (const auto& column : expected) {
        bool found = false;
        for (const auto& row : rows) {
            if (row[0].c_str() != column.name) continue;
            found = true;
            if (row[1].c_str() != column.type) {
                throw Error(errc::invalid_config, "table " + table + " exists but is not a Boong table: column " +
                                                      std::string(column.name) + " is " + row[1].c_str() +
                                                      ", expected " + std::string(column.type));
            }
        }
        if (!found) {
            throw Error(errc::invalid_config, "table " + table + " exists but is not a Boong table: it has no column " +
                                                  std::string(column.name));
        }
    }
}

// Migration 1: the events table, its indexes, the snapshots table, the
// append function and the operators' saga view.
std::vector<std::string> migration_1(const Names& n) {
    const std::string phases = saga_phase_types();
    std::vector<std::string> sql;
    sql.push_back("CREATE TABLE IF NOT EXISTS " + n.events + R"( (
    position       bigint      NOT NULL,
    stream_id      text        NOT NULL,
    version        bigint      NOT NULL,
    event_id       uuid        NOT NULL,
    type           text        NOT NULL,
    schema_version integer     NOT NULL,
    payload        jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    stored_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (position),
    UNIQUE (stream_id, version),
    UNIQUE (event_id),
    CHECK (position >= 1 AND version >= 1 AND schema_version >= 1)
))");
    // Operators ask "which sagas are not finished?": the latest phase event of
    // each saga stream. This partial index holds only those events (a few per
    // saga, not every step event), in the order the question needs them.
    sql.push_back("CREATE INDEX IF NOT EXISTS " + n.saga_index + " ON " + n.events +
                  " (stream_id, version DESC) WHERE type IN (" + phases + ")");
    sql.push_back("CREATE OR REPLACE VIEW " + n.saga_view + R"( AS
SELECT DISTINCT ON (stream_id)
       stream_id,
       CASE WHEN stream_id LIKE 'saga-%' THEN substr(stream_id, 6) ELSE stream_id END AS saga_id,
       CASE type
           WHEN )" + quote_literal(saga_event::started) + R"( THEN 'running'
           WHEN )" + quote_literal(saga_event::resumed) + R"( THEN payload ->> 'phase'
           WHEN )" + quote_literal(saga_event::compensation_started) + R"( THEN 'compensating'
           WHEN )" + quote_literal(saga_event::completed) + R"( THEN 'completed'
           WHEN )" + quote_literal(saga_event::compensated) + R"( THEN 'compensated'
           WHEN )" + quote_literal(saga_event::failed) + R"( THEN 'failed'
       END AS phase,
       type AS phase_event,
       version AS phase_version,
       stored_at AS phase_since
FROM )" + n.events + R"(
WHERE type IN ()" + phases + R"()
ORDER BY stream_id, version DESC)");
    sql.push_back("CREATE TABLE IF NOT EXISTS " + n.snapshots + R"( (
    stream_id      text        NOT NULL PRIMARY KEY,
    version        bigint      NOT NULL CHECK (version >= 1),
    type           text        NOT NULL,
    schema_version integer     NOT NULL CHECK (schema_version >= 1),
    state          jsonb       NOT NULL,
    taken_at       timestamptz NOT NULL
))");

    // The append function: a whole group-commit batch in one call (one round
    // trip, one transaction). Input: a JSON array of appends
    //   {"s": stream, "x": expected version or null (any), "e": [{"i": id,
    //    "t": type, "v": schema version, "p": payload, "m": metadata}, ...]}
    // where no stream appears twice and no event id twice (the client
    // batches so). Output: one row per append, in input order, with its
    // verdict: ok (written), replay (already written by an earlier call with
    // the same ids: its original result), conflict (expected version
    // mismatch: nothing written) or duplicate (an id stored elsewhere:
    // nothing written). A refused append never affects the others.
    //
    // Correctness rests on the advisory lock taken first: appends to this
    // table run one at a time, and the lock is released only after the
    // commit is visible. So every check below sees all earlier appends
    // (each statement in a VOLATILE plpgsql function takes a fresh snapshot
    // in read committed), positions are max + 1 with no holes, and they
    // become visible in increasing order: a reader that has seen position P
    // can never later find a new event below P.
    sql.push_back("CREATE OR REPLACE FUNCTION " + n.append_function + R"((p_batch jsonb)
RETURNS TABLE (r_index integer, r_verdict text, r_current bigint, r_next_version bigint,
               r_first_position bigint, r_last_position bigint,
               r_other_event uuid, r_other_stream text, r_other_version bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $boong$
DECLARE
    v_now timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock()" + append_lock_key_sql(n) + R"();
    v_now := clock_timestamp();
    RETURN QUERY
    WITH a AS MATERIALIZED (
        SELECT (o - 1)::integer AS ai, x ->> 's' AS stream_id, (x ->> 'x')::bigint AS expected,
               jsonb_array_length(x -> 'e')::bigint AS n, x -> 'e' AS events
        FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS t(x, o)
    ), e AS MATERIALIZED (
        SELECT a.ai, (k - 1)::bigint AS ei, (ev ->> 'i')::uuid AS event_id, ev ->> 't' AS type,
               (ev ->> 'v')::integer AS schema_version, ev -> 'p' AS payload, ev -> 'm' AS metadata
        FROM a CROSS JOIN LATERAL jsonb_array_elements(a.events) WITH ORDINALITY AS u(ev, k)
    ), found AS MATERIALIZED (
        SELECT e.ai, e.ei, s.event_id, s.stream_id, s.version, s.position
        FROM e JOIN )" + n.events + R"( s ON s.event_id = e.event_id
    ), v AS (
        SELECT a.ai, a.stream_id, a.expected, a.n,
               coalesce((SELECT max(s.version) FROM )" + n.events + R"( s WHERE s.stream_id = a.stream_id), 0) AS cur,
               h.stream_id AS h_stream, h.version AS h_version, h.position AS h_position,
               (SELECT count(*) FROM found f WHERE f.ai = a.ai) AS n_found,
               (SELECT count(*) FROM found f
                 WHERE f.ai = a.ai AND f.stream_id = a.stream_id AND f.version = h.version + f.ei) AS n_in_place
        FROM a LEFT JOIN found h ON h.ai = a.ai AND h.ei = 0
    ), w AS MATERIALIZED (
        SELECT v.*,
               CASE WHEN v.h_stream = v.stream_id AND (v.expected IS NULL OR v.expected = v.h_version - 1)
                         AND v.n_in_place = v.n THEN 'replay'
                    WHEN v.expected IS NOT NULL AND v.expected <> v.cur THEN 'conflict'
                    WHEN v.n_found > 0 THEN 'duplicate'
                    ELSE 'ok'
               END AS verdict
        FROM v
    ), p AS MATERIALIZED (
        SELECT w.*,
               (SELECT coalesce(max(s.position), 0) FROM )" + n.events + R"( s)
               + coalesce(sum(CASE WHEN w.verdict = 'ok' THEN w.n END)
                              OVER (ORDER BY w.ai ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::bigint
               AS base
        FROM w
    ), ins AS (
        INSERT INTO )" + n.events + R"( (position, stream_id, version, event_id, type, schema_version,
                                        payload, metadata, stored_at)
        SELECT p.base + e.ei + 1, p.stream_id, p.cur + e.ei + 1, e.event_id, e.type, e.schema_version,
               e.payload, e.metadata, v_now
        FROM p JOIN e ON e.ai = p.ai
        WHERE p.verdict = 'ok'
        ORDER BY 1
    )
    SELECT p.ai, p.verdict, p.cur,
           CASE p.verdict WHEN 'ok' THEN p.cur + p.n WHEN 'replay' THEN p.h_version - 1 + p.n END,
           CASE p.verdict WHEN 'ok' THEN p.base + 1 WHEN 'replay' THEN p.h_position END,
           CASE p.verdict WHEN 'ok' THEN p.base + p.n
                          WHEN 'replay' THEN (SELECT f.position FROM found f WHERE f.ai = p.ai AND f.ei = p.n - 1)
           END,
           d.event_id, d.stream_id, d.version
    FROM p
    LEFT JOIN LATERAL (SELECT f.event_id, f.stream_id, f.version FROM found f
                       WHERE f.ai = p.ai ORDER BY f.ei LIMIT 1) d ON p.verdict = 'duplicate'
    ORDER BY p.ai;
END
$boong$)");
    return sql;
}

struct Migration {
    int version;
    const char* description;
    std::vector<std::string> (*statements)(const Names&);
};

constexpr std::array<Migration, 1> kMigrations{{
    {1, "events, snapshots, append function, saga phase index and view", &migration_1},
}};
static_assert(kMigrations.back().version == kSchemaVersion);

}  // namespace

std::string append_lock_key_sql(const Names& n) {
    return "(" + std::to_string(kLockClass) + "::bigint << 32) | " + n.events_literal + "::regclass::oid::bigint";
}

Names resolve_names(pqxx::connection& connection, const PostgresStoreConfig& config) {
    pqxx::nontransaction tx(connection, "boong-names");
    const auto row = tx.exec1("SELECT current_schema()");
    if (row[0].is_null()) {
        throw Error(errc::invalid_config,
                    "the search_path of the event store's connection names no existing schema to create " +
                        config.table_name + " in");
    }
    Names n;
    n.schema = row[0].c_str();
    const std::string schema = quote_identifier(n.schema) + ".";
    n.events = schema + quote_identifier(config.table_name);
    n.snapshots = schema + quote_identifier(config.snapshot_table_name);
    n.versions = schema + quote_identifier(derived_name(config.table_name, "_schema"));
    n.append_function = schema + quote_identifier(derived_name(config.table_name, "_append"));
    n.saga_index = quote_identifier(derived_name(config.table_name, "_saga_phase_idx"));
    n.saga_view = schema + quote_identifier(derived_name(config.table_name, "_sagas"));
    n.events_literal = quote_literal(n.events);
    return n;
}

void migrate(pqxx::connection& connection, const Names& n) {
    pqxx::work tx(connection, "boong-migrate");
    // Two processes starting at once: the second waits here, then finds the
    // work done. The key is per events table (its name: it may not exist yet).
    tx.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kLockClass) + ", " +
            std::to_string(static_cast<std::int32_t>(fnv1a32(n.events))) + ")");
    tx.exec("CREATE TABLE IF NOT EXISTS " + n.versions +
            " (version integer PRIMARY KEY, description text NOT NULL, library_version text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())");
    const int current = tx.exec1("SELECT coalesce(max(version), 0) FROM " + n.versions)[0].as<int>();
    if (current > kSchemaVersion) {
        throw Error(errc::invalid_config, "the event store " + n.events + " is at schema version " +
                                              std::to_string(current) + ", newer than this library knows (" +
                                              std::to_string(kSchemaVersion) +
                                              "): it was upgraded by a newer Boong; upgrade this service too");
    }
    // Tables that exist before any migration ran were made by someone else.
    check_shape(tx, n.events, kEventColumns);
    check_shape(tx, n.snapshots, kSnapshotColumns);
    for (const auto& m : kMigrations) {
        if (m.version <= current) continue;
        for (const auto& statement : m.statements(n)) tx.exec(statement);
        tx.exec_params("INSERT INTO " + n.versions + " (version, description, library_version) VALUES ($1, $2, $3)",
                       m.version, m.description, BOONG_LIBRARY_VERSION);
    }
    tx.commit();
}

Statements statements(const Names& n) {
    const std::string columns =
        "position, version, event_id, type, schema_version, payload, metadata, "
        "(extract(epoch FROM stored_at) * 1000000)::bigint";
    return {
        {kAppendStatement,
         "SELECT r_index, r_verdict, r_current, r_next_version, r_first_position, r_last_position, r_other_event, "
         "r_other_stream, r_other_version FROM " +
             n.append_function + "($1::jsonb)"},
        {kReadStreamStatement, "SELECT " + columns + " FROM " + n.events +
                                   " WHERE stream_id = $1::text AND version >= $2::bigint ORDER BY version "
                                   "LIMIT $3::bigint"},
        {kReadAllStatement, "SELECT stream_id, " + columns + " FROM " + n.events +
                                " WHERE position >= $1::bigint ORDER BY position LIMIT $2::bigint"},
        // A snapshot ahead of its stream is refused (the caller compares the
        // returned version); an older one than kept is ignored.
        {kSaveSnapshotStatement,
         "WITH cur AS (SELECT coalesce(max(version), 0) AS v FROM " + n.events +
             " WHERE stream_id = $1::text), "
             "ins AS (INSERT INTO " +
             n.snapshots +
             " AS s (stream_id, version, type, schema_version, state, taken_at) "
             "SELECT $1::text, $2::bigint, $3::text, $4::integer, $5::jsonb, coalesce($6::timestamptz, now()) "
             "FROM cur WHERE cur.v >= $2::bigint "
             "ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, type = EXCLUDED.type, "
             "schema_version = EXCLUDED.schema_version, state = EXCLUDED.state, taken_at = EXCLUDED.taken_at "
             "WHERE s.version <= EXCLUDED.version) "
             "SELECT v FROM cur"},
        {kLoadSnapshotStatement, "SELECT version, type, schema_version, state, "
                                 "(extract(epoch FROM taken_at) * 1000000)::bigint FROM " +
                                     n.snapshots + " WHERE stream_id = $1::text"},
    };
}

}  // namespace boong::pg
