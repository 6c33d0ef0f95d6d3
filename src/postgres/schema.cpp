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

struct Column {
    std::string_view name;
    std::string_view type;  // as format_type() prints it
};

constexpr std::array<Column, 10> kEventColumns{{{"position", "bigint"},
                                               {"stream_id", "text"},
                                               {"version", "bigint"},
                                               {"event_id", "uuid"},
                                               {"type", "text"},
                                               {"schema_version", "integer"},
                                               {"payload", "jsonb"},
                                               {"metadata", "jsonb"},
                                               {"stored_at", "timestamp with time zone"},
                                               {"transaction_id", "xid8"}}};

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

// Step 2 of both append functions: the transaction id and v_events
// positions from v_base on, together, one writer at a time. A session lock,
// so that it ends here and not at the commit; it is released on every error
// too (query_canceled is not among OTHERS).
std::string take_positions_sql(const Names& n) {
    return R"(        BEGIN
            PERFORM pg_catalog.pg_advisory_lock()" + append_lock_key_sql(n) + R"();
            v_locked := true;
            PERFORM pg_catalog.pg_current_xact_id();
            v_now := pg_catalog.clock_timestamp();
            v_base := pg_catalog.nextval()" + n.position_sequence_literal + R"(::regclass);
            IF v_events > 1 THEN
                PERFORM pg_catalog.setval()" + n.position_sequence_literal + R"(::regclass, v_base + v_events - 1);
            END IF;
            PERFORM pg_catalog.pg_advisory_unlock()" + append_lock_key_sql(n) + R"();
            v_locked := false;
        EXCEPTION WHEN query_canceled OR others THEN
            IF v_locked THEN
                PERFORM pg_catalog.pg_advisory_unlock()" + append_lock_key_sql(n) + R"();
            END IF;
            RAISE;
        END;)";
}

// The events of a batch as rows of the events table (the SELECT of the
// inserts), in position order (the order jsonb_array_elements yields them:
// no sort needed, and none asked for). `position`, `version` and `filter`
// are SQL over t.o (the append's index, from 1), u.k (the event's index in
// it, from 1) and the function's variables.
std::string insert_events_sql(const Names& n, const std::string& position, const std::string& version,
                              const std::string& filter) {
    return R"(        INSERT INTO )" + n.events + R"( (position, stream_id, version, event_id, type, schema_version,
                                        payload, metadata, stored_at)
        SELECT )" + position + ", t.x ->> 's', " + version + R"(, (u.ev ->> 'i')::uuid,
               u.ev ->> 't', (u.ev ->> 'v')::integer, u.ev -> 'p', u.ev -> 'm', v_now
        FROM pg_catalog.jsonb_array_elements(p_batch) WITH ORDINALITY AS t(x, o)
        CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(t.x -> 'e') WITH ORDINALITY AS u(ev, k))" +
           (filter.empty() ? std::string() : "\n        WHERE " + filter) + ";";
}

// The append function: a whole group-commit batch in one call (one round
// trip, one transaction). Input: a JSON array of appends
//   {"s": stream, "x": expected version or null (any), "k": 1 when the
//    client knows the stream is at least at "x" (see StreamHeads; version 3),
//    "e": [{"i": id, "t": type, "v": schema version, "p": payload,
//    "m": metadata}, ...]}
// where no stream appears twice and no event id twice (the client
// batches so). Output: one row per append, in input order, with its
// verdict: ok (written), replay (already written by an earlier call with
// the same ids: its original result), conflict (expected version
// mismatch: nothing written) or duplicate (an id stored elsewhere:
// nothing written). A refused append never affects the others.
//
// It checks every id before writing only when p_careful, or when an append
// does not expect its stream's current version (a conflict, or a replay, to
// tell apart). Otherwise the unique
// index on event ids is the check, at the insert (step 0). The id checks
// were the larger part of an append's cost on the server: an index probe
// and several aggregates per event.
//
// Order (docs/postgres.md, "Gap-free read_all"): under the append lock,
// and only there, the transaction gets its id and its positions, so
// that among appends, position order is transaction id order. read_all
// returns only rows of transactions older than every transaction still
// running (the snapshot's xmin), so a reader that has seen position P
// never later finds a new event below P. The lock is held for
// microseconds; the checks, the insert and the commit's WAL flush of
// concurrent batches run side by side.
//
// The checks read what is committed. Another process's append that
// commits between the checks and the insert makes the insert fail with
// a unique violation; the client then runs the batch again with
// p_careful, and if that fails too, its appends one by one, which see it.
//
// Every object is schema-qualified and the function runs with the
// caller's rights (no SECURITY DEFINER), so it pins no search_path (a
// SET clause costs on every call). It always uses generic plans:
// nothing about a batch makes a custom plan better, and planning these
// queries on every call would cost more than running them.
std::string append_function_sql(const Names& n) {
    std::string sql = "CREATE OR REPLACE FUNCTION " + n.append_function;
    sql += "(p_batch jsonb, p_careful boolean)";
    sql += R"(
RETURNS TABLE (r_index integer, r_verdict text, r_current bigint, r_next_version bigint,
               r_first_position bigint, r_last_position bigint,
               r_other_event uuid, r_other_stream text, r_other_version bigint)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $boong$
DECLARE
    v_verdict text[];
    v_cur bigint[];
    v_n bigint[];
    v_lo bigint[];
    v_first bigint[];
    v_last bigint[];
    v_offset bigint[];
    v_other_event uuid[];
    v_other_stream text[];
    v_other_version bigint[];
    v_events bigint;
    v_base bigint;
    v_now timestamptz;
    v_locked boolean := false;
    v_fits boolean := false;
BEGIN
    -- The transaction id must be taken under the lock (see above).
    IF pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'an append must be the first write of its transaction'
            USING ERRCODE = 'invalid_transaction_state';
    END IF;

)";
    {
        sql += R"(
    -- 0. The common case, in one pass: every append expects its stream's
    -- current version (or any). Its ids are then not in its stream, and one
    -- stored in another makes the insert fail with a unique violation: the
    -- client runs the batch again with p_careful, which checks every id.
    IF NOT p_careful THEN
        SELECT array_agg('ok'::text ORDER BY w.ai), array_agg(w.cur ORDER BY w.ai), array_agg(w.n ORDER BY w.ai),
               array_agg(w.offset_in_batch ORDER BY w.ai),
               coalesce(bool_and(w.expected IS NULL OR w.expected = w.cur), true),
               coalesce(sum(w.n), 0)::bigint
        INTO v_verdict, v_cur, v_n, v_offset, v_fits, v_events
        FROM (
            SELECT a.ai, a.n, a.expected, c.cur,
                   coalesce(sum(a.n) OVER (ORDER BY a.ai ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::bigint
                       AS offset_in_batch
            FROM (SELECT (o - 1)::integer AS ai, x ->> 's' AS stream_id, (x ->> 'x')::bigint AS expected,
                         pg_catalog.jsonb_array_length(x -> 'e')::bigint AS n, x ? 'k' AS known
                  FROM pg_catalog.jsonb_array_elements(p_batch) WITH ORDINALITY AS t(x, o)) a
            -- "k": the client knows the stream is at least at the expected
            -- version (its own last append left it there), so no probe: a
            -- writer that got in since makes the insert fail (unique index).
            CROSS JOIN LATERAL (
                SELECT CASE WHEN a.known AND a.expected IS NOT NULL THEN a.expected
                            ELSE (SELECT coalesce(max(s.version), 0) FROM )" + n.events + R"( s
                                  WHERE s.stream_id = a.stream_id)
                       END AS cur) c
        ) w;
    END IF;

    IF NOT v_fits THEN
)";
    }
    sql += R"(
    -- 1. The verdicts, on what is committed.
    WITH a AS MATERIALIZED (
        SELECT (o - 1)::integer AS ai, x ->> 's' AS stream_id, (x ->> 'x')::bigint AS expected,
               pg_catalog.jsonb_array_length(x -> 'e')::bigint AS n, x -> 'e' AS events
        FROM pg_catalog.jsonb_array_elements(p_batch) WITH ORDINALITY AS t(x, o)
    ), e AS MATERIALIZED (
        SELECT a.ai, (k - 1)::bigint AS ei, (ev ->> 'i')::uuid AS event_id
        FROM a CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(a.events) WITH ORDINALITY AS u(ev, k)
    ), found AS MATERIALIZED (
        -- Ids already stored, one index probe each. (A plain join would let
        -- the planner, which guesses 100 rows per jsonb_array_elements, hash
        -- the whole table; LIMIT keeps this from being pulled up into one.)
        SELECT e.ai, e.ei, s.event_id, s.stream_id, s.version, s.position
        FROM e CROSS JOIN LATERAL (
            SELECT t.event_id, t.stream_id, t.version, t.position FROM )" + n.events + R"( t
            WHERE t.event_id = e.event_id LIMIT 1) s
    ), fa AS (
        -- Per append: how many of its ids are stored, and whether they sit
        -- in its stream at consecutive versions (version - index constant).
        SELECT f.ai, count(*) AS n_found,
               min(f.version - f.ei) AS lo, max(f.version - f.ei) AS hi,
               bool_and(f.stream_id = a.stream_id) AS same_stream,
               max(f.position) FILTER (WHERE f.ei = 0) AS first_position,
               max(f.position) FILTER (WHERE f.ei = a.n - 1) AS last_position,
               (array_agg(f.event_id ORDER BY f.ei))[1] AS other_event,
               (array_agg(f.stream_id ORDER BY f.ei))[1] AS other_stream,
               (array_agg(f.version ORDER BY f.ei))[1] AS other_version
        FROM found f JOIN a ON a.ai = f.ai
        GROUP BY f.ai
    ), w AS (
        SELECT a.ai, a.n, c.cur, fa.lo, fa.first_position, fa.last_position,
               fa.other_event, fa.other_stream, fa.other_version,
               CASE WHEN fa.n_found = a.n AND fa.same_stream AND fa.lo = fa.hi
                         AND (a.expected IS NULL OR a.expected = fa.lo - 1) THEN 'replay'
                    WHEN a.expected IS NOT NULL AND a.expected <> c.cur THEN 'conflict'
                    WHEN fa.n_found > 0 THEN 'duplicate'
                    ELSE 'ok'
               END AS verdict
        FROM a
        CROSS JOIN LATERAL (SELECT coalesce(max(s.version), 0) AS cur FROM )" + n.events + R"( s
                            WHERE s.stream_id = a.stream_id) c
        LEFT JOIN fa ON fa.ai = a.ai
    ), o AS (
        SELECT w.*, coalesce(sum(CASE WHEN w.verdict = 'ok' THEN w.n END)
                                 OVER (ORDER BY w.ai ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::bigint
                    AS offset_in_batch
        FROM w
    )
    SELECT array_agg(o.verdict ORDER BY o.ai), array_agg(o.cur ORDER BY o.ai), array_agg(o.n ORDER BY o.ai),
           array_agg(o.lo ORDER BY o.ai), array_agg(o.first_position ORDER BY o.ai),
           array_agg(o.last_position ORDER BY o.ai), array_agg(o.offset_in_batch ORDER BY o.ai),
           array_agg(o.other_event ORDER BY o.ai), array_agg(o.other_stream ORDER BY o.ai),
           array_agg(o.other_version ORDER BY o.ai),
           coalesce(sum(o.n) FILTER (WHERE o.verdict = 'ok'), 0)::bigint
    INTO v_verdict, v_cur, v_n, v_lo, v_first, v_last, v_offset, v_other_event, v_other_stream,
         v_other_version, v_events
    FROM o;
)";
    sql += "\n    END IF;";
    sql += R"(

    IF v_events > 0 THEN
        -- 2. Transaction id and positions, together, one writer at a time.
)" + take_positions_sql(n) + R"(
        -- 3. The events of the appends that passed.
)" + insert_events_sql(n, "v_base + v_offset[t.o] + u.k - 1", "v_cur[t.o] + u.k", "v_verdict[t.o] = 'ok'") + R"(
    END IF;

    RETURN QUERY
    SELECT (i - 1)::integer, v_verdict[i], v_cur[i],
           CASE v_verdict[i] WHEN 'ok' THEN v_cur[i] + v_n[i] WHEN 'replay' THEN v_lo[i] - 1 + v_n[i] END,
           CASE v_verdict[i] WHEN 'ok' THEN v_base + v_offset[i] WHEN 'replay' THEN v_first[i] END,
           CASE v_verdict[i] WHEN 'ok' THEN v_base + v_offset[i] + v_n[i] - 1 WHEN 'replay' THEN v_last[i] END,
           CASE WHEN v_verdict[i] = 'duplicate' THEN v_other_event[i] END,
           CASE WHEN v_verdict[i] = 'duplicate' THEN v_other_stream[i] END,
           CASE WHEN v_verdict[i] = 'duplicate' THEN v_other_version[i] END
    FROM pg_catalog.generate_subscripts(v_verdict, 1) AS i
    ORDER BY i;
END
$boong$)";
    return sql;
}

// The fast path: a batch in which every append expects the version
// this store's own appends left its stream at ("k", see StreamHeads), as
// most do. There is nothing to check before the insert: the unique indexes
// are the checks (a stream version or an event id already taken fails it,
// and the client runs the batch through the careful form of the append
// function). The client also sends where each append's events start among
// the batch's (p_offsets) and their total, so no verdicts, offsets or
// result rows are computed here: the function takes the transaction id and
// the positions, inserts, and returns the first position, from which the
// client knows every append's result. (It was a third of the append
// function's time, with the id checks already skipped.)
std::string append_known_function_sql(const Names& n) {
    return "CREATE OR REPLACE FUNCTION " + n.append_known_function +
           R"((p_batch jsonb, p_offsets bigint[], p_events bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $boong$
DECLARE
    v_events bigint := p_events;
    v_base bigint;
    v_now timestamptz;
    v_locked boolean := false;
    v_rows bigint;
BEGIN
    IF pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'an append must be the first write of its transaction'
            USING ERRCODE = 'invalid_transaction_state';
    END IF;
    IF v_events IS NULL OR v_events < 1 THEN
        RAISE EXCEPTION 'an append batch of % events', v_events;
    END IF;

)" + take_positions_sql(n) + R"(

)" + insert_events_sql(n, "v_base + p_offsets[t.o] + u.k - 1", "(t.x ->> 'x')::bigint + u.k", "") + R"(
    -- The client's count is the positions taken: it must be right.
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_rows <> v_events THEN
        RAISE EXCEPTION 'an append batch announced % events and held %', v_events, v_rows;
    END IF;
    RETURN v_base;
END
$boong$)";
}

// Migration 1, the whole schema: the events table and its position
// sequence, the snapshots table, the append functions, the saga table with
// its trigger, the outbox cursors and the inbox. A later change is a
// migration of its own, written out, so that this text never changes.
std::vector<std::string> migration_1(const Names& n) {
    // The phase events and terminal phases as the phase rules of
    // saga_state.hpp had them when it was released (it once generated these
    // from them; a new rule is a new migration, see migration_2).
    const std::string phases =
        "'SagaStarted', 'SagaResumed', 'CompensationStarted', 'SagaCompleted', 'SagaCompensated', 'SagaFailed'";
    const std::string terminal_phase_case =
        "CASE NEW.type WHEN 'SagaCompleted' THEN 'completed' WHEN 'SagaCompensated' THEN 'compensated' "
        "WHEN 'SagaFailed' THEN 'failed' END";
    using namespace saga_event;
    const std::string q_started = quote_literal(started), q_resumed = quote_literal(resumed),
                      q_comp = quote_literal(compensation_started), q_failed = quote_literal(failed);
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
    transaction_id xid8        NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (position),
    UNIQUE (stream_id, version),
    UNIQUE (event_id),
    CHECK (position >= 1 AND version >= 1 AND schema_version >= 1)
))");
    // Positions come from this sequence, taken under the append lock.
    sql.push_back("CREATE SEQUENCE IF NOT EXISTS " + n.position_sequence + " AS bigint");
    sql.push_back("CREATE TABLE IF NOT EXISTS " + n.snapshots + R"( (
    stream_id      text        NOT NULL PRIMARY KEY,
    version        bigint      NOT NULL CHECK (version >= 1),
    type           text        NOT NULL,
    schema_version integer     NOT NULL CHECK (schema_version >= 1),
    state          jsonb       NOT NULL,
    taken_at       timestamptz NOT NULL
))");

    sql.push_back(append_function_sql(n));
    sql.push_back(append_known_function_sql(n));
    // Durable execution (docs/durability.md).
    //  - The saga table: one row per saga, kept by a trigger in the transaction
    //    that appends its phase events (so it can never disagree with them),
    //    with the owner and lease that orchestrators claim and renew.
    //  - The outbox: the events table is the outbox (an event is pending
    //    publication from the moment its transaction commits); this table
    //    holds each relay's cursor (the last position published) and lease.
    //  - The inbox: which message each consumer has processed, written in the
    //    transaction of the consumer's own effect.
    sql.push_back("CREATE TABLE IF NOT EXISTS " + n.sagas + R"( (
    saga_id             text        NOT NULL PRIMARY KEY,
    saga_type           text        NOT NULL,
    phase               text        NOT NULL CHECK (phase IN ('running', 'compensating', 'completed', 'compensated', 'failed')),
    version             bigint      NOT NULL,   -- the stream version of its latest phase event
    failed_step         text,                   -- the step whose failure started compensation
    failure_kind        text,
    error               text,
    failed_compensation text,                   -- phase = failed: the compensation that gave up
    compensation_error  text,
    deadline            timestamptz,
    started_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    owner               text,                   -- the orchestrator running it, if any
    lease_until         timestamptz             -- the owner's claim ends then unless renewed
))");
    // Orchestrators look for in-flight sagas of their type whose lease ran out.
    sql.push_back("CREATE INDEX IF NOT EXISTS " + n.saga_claim_index + " ON " + n.sagas +
                  " (saga_type, lease_until) WHERE phase IN ('running', 'compensating')");
    // One call per phase event (a few per saga, never per step event: the
    // trigger's WHEN clause filters in C). SagaStarted and SagaResumed carry
    // the orchestrator's name and lease in their metadata ("owner",
    // "lease_ms"); a terminal phase frees the saga. It must never fail an
    // append: values it cannot read (events written by hand, another tool)
    // are left out rather than cast.
    sql.push_back("CREATE OR REPLACE FUNCTION " + n.saga_function + R"(() RETURNS trigger
LANGUAGE plpgsql AS $boong$
DECLARE
    v_id text := substr(NEW.stream_id, 6);
    v_owner text := NEW.metadata ->> 'owner';
    v_lease timestamptz := NEW.stored_at + (CASE WHEN NEW.metadata ->> 'lease_ms' ~ '^[0-9]{1,10}$'
                                                 THEN (NEW.metadata ->> 'lease_ms')::bigint ELSE 0 END
                                            * interval '1 millisecond');
    v_deadline timestamptz := CASE WHEN NEW.payload ->> 'deadline' ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$'
                                   THEN (NEW.payload ->> 'deadline')::timestamptz END;
BEGIN
    IF NEW.type = )" + q_started + R"( THEN
        INSERT INTO )" + n.sagas + R"( (saga_id, saga_type, phase, version, deadline, started_at, updated_at,
                                     owner, lease_until)
        VALUES (v_id, coalesce(NEW.payload ->> 'saga_type', ''), 'running', NEW.version, v_deadline,
                NEW.stored_at, NEW.stored_at, v_owner, CASE WHEN v_owner IS NOT NULL THEN v_lease END)
        ON CONFLICT (saga_id) DO NOTHING;
    ELSIF NEW.type = )" + q_resumed + R"( THEN
        UPDATE )" + n.sagas + R"( SET phase = CASE WHEN NEW.payload ->> 'phase' IN ('running', 'compensating')
                                           THEN NEW.payload ->> 'phase' ELSE phase END,
               version = NEW.version, updated_at = NEW.stored_at,
               failed_compensation = NULL, compensation_error = NULL,
               owner = v_owner, lease_until = CASE WHEN v_owner IS NOT NULL THEN v_lease END
        WHERE saga_id = v_id;
    ELSIF NEW.type = )" + q_comp + R"( THEN
        UPDATE )" + n.sagas + R"( SET phase = 'compensating', version = NEW.version, updated_at = NEW.stored_at,
               failed_step = NEW.payload ->> 'failed_step', failure_kind = NEW.payload ->> 'kind',
               error = NEW.payload ->> 'error'
        WHERE saga_id = v_id;
    ELSE
        UPDATE )" + n.sagas + R"( SET phase = )" + terminal_phase_case + R"(,
               version = NEW.version, updated_at = NEW.stored_at,
               failed_compensation = CASE WHEN NEW.type = )" + q_failed + R"( THEN NEW.payload ->> 'step' END,
               compensation_error = CASE WHEN NEW.type = )" + q_failed + R"( THEN NEW.payload ->> 'error' END,
               owner = NULL, lease_until = NULL
        WHERE saga_id = v_id;
    END IF;
    RETURN NULL;
END
$boong$)");
    sql.push_back("DROP TRIGGER IF EXISTS " + n.saga_trigger + " ON " + n.events);
    sql.push_back("CREATE TRIGGER " + n.saga_trigger + " AFTER INSERT ON " + n.events +
                  " FOR EACH ROW WHEN (NEW.type IN (" + phases + ") AND NEW.stream_id LIKE 'saga-%')"
                  " EXECUTE FUNCTION " + n.saga_function + "()");
    sql.push_back("CREATE TABLE IF NOT EXISTS " + n.outbox + R"( (
    relay       text        NOT NULL PRIMARY KEY,
    position    bigint      NOT NULL DEFAULT 0,  -- every event at or below it has been published
    owner       text,
    lease_until timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
))");
    sql.push_back("CREATE TABLE IF NOT EXISTS " + n.inbox + R"( (
    consumer     text        NOT NULL,
    message_id   text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
))");
    return sql;
}

// Migration 2, versioned saga definitions (docs/versioning.md): each saga
// row records the definition it started on (SagaStarted's "definition"), and
// the phase `blocked` (SagaBlocked) holds a saga no orchestrator that looked
// at it could run, until one that serves its definition claims it. Written
// out in full, not generated from the phase rules, so that its text never
// changes: a later change is migration 3.
std::vector<std::string> migration_2(const Names& n) {
    std::vector<std::string> sql;
    // Rows of sagas started before: version 1 without a fingerprint.
    sql.push_back("ALTER TABLE " + n.sagas +
                  " ADD COLUMN IF NOT EXISTS definition_version bigint NOT NULL DEFAULT 1,"
                  " ADD COLUMN IF NOT EXISTS fingerprint text,"
                  " ADD COLUMN IF NOT EXISTS blocked_reason text");
    // Migration 1's CHECK on phase was named by the server (and cut short for
    // a long table name): found by the one column it checks, and replaced by
    // one named here.
    sql.push_back(R"(DO $boong$
DECLARE
    v_name name;
BEGIN
    FOR v_name IN
        SELECT c.conname FROM pg_catalog.pg_constraint c
        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attname = 'phase'
        WHERE c.conrelid = )" + quote_literal(n.sagas) + R"(::regclass AND c.contype = 'c'
          AND c.conkey = ARRAY[a.attnum]
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', )" + quote_literal(n.sagas) + R"(, v_name);
    END LOOP;
END
$boong$)");
    sql.push_back("ALTER TABLE " + n.sagas + " ADD CONSTRAINT " + n.saga_phase_check +
                  " CHECK (phase IN ('running', 'compensating', 'completed', 'compensated', 'failed', 'blocked'))");
    // Orchestrators look for the blocked sagas of their type to unblock.
    sql.push_back("CREATE INDEX IF NOT EXISTS " + n.saga_blocked_index + " ON " + n.sagas +
                  " (saga_type) WHERE phase = 'blocked'");
    // Migration 1's function, and: SagaStarted records the definition (a
    // version that is not 1 to 18 digits reads as 1, as an absent one);
    // SagaBlocked moves an in-flight saga to `blocked` and frees it;
    // SagaResumed forgets why it was blocked; a deadline out of range (a
    // February 30th) is left out like any unreadable one, instead of failing
    // the append; an event without a branch changes nothing.
    sql.push_back("CREATE OR REPLACE FUNCTION " + n.saga_function + R"(() RETURNS trigger
LANGUAGE plpgsql AS $boong$
DECLARE
    v_id text := substr(NEW.stream_id, 6);
    v_owner text := NEW.metadata ->> 'owner';
    v_lease timestamptz := NEW.stored_at + (CASE WHEN NEW.metadata ->> 'lease_ms' ~ '^[0-9]{1,10}$'
                                                 THEN (NEW.metadata ->> 'lease_ms')::bigint ELSE 0 END
                                            * interval '1 millisecond');
    v_text text := NEW.payload ->> 'deadline';
    v_deadline timestamptz;
BEGIN
    IF NEW.type = 'SagaStarted' THEN
        -- Checked field by field, the day against its month's length (nested
        -- IFs: SQL does not promise to evaluate AND left to right), rather
        -- than by catching the cast's error: an EXCEPTION block would open a
        -- subtransaction for every saga started.
        IF v_text ~ '^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?Z$' THEN
            IF substr(v_text, 9, 2)::int <= extract(day FROM make_date(substr(v_text, 1, 4)::int, substr(v_text, 6, 2)::int, 1)
                                                            + interval '1 month - 1 day') THEN
                v_deadline := v_text::timestamptz;
            END IF;
        END IF;
        INSERT INTO )" + n.sagas + R"( (saga_id, saga_type, definition_version, fingerprint, phase, version,
                                     deadline, started_at, updated_at, owner, lease_until)
        VALUES (v_id, coalesce(NEW.payload ->> 'saga_type', ''),
                CASE WHEN NEW.payload -> 'definition' ->> 'version' ~ '^[0-9]{1,18}$'
                     THEN (NEW.payload -> 'definition' ->> 'version')::bigint ELSE 1 END,
                nullif(NEW.payload -> 'definition' ->> 'fingerprint', ''),
                'running', NEW.version, v_deadline, NEW.stored_at, NEW.stored_at,
                v_owner, CASE WHEN v_owner IS NOT NULL THEN v_lease END)
        ON CONFLICT (saga_id) DO NOTHING;
    ELSIF NEW.type = 'SagaResumed' THEN
        UPDATE )" + n.sagas + R"( SET phase = CASE WHEN NEW.payload ->> 'phase' IN ('running', 'compensating')
                                           THEN NEW.payload ->> 'phase' ELSE phase END,
               version = NEW.version, updated_at = NEW.stored_at,
               failed_compensation = NULL, compensation_error = NULL, blocked_reason = NULL,
               owner = v_owner, lease_until = CASE WHEN v_owner IS NOT NULL THEN v_lease END
        WHERE saga_id = v_id;
    ELSIF NEW.type = 'CompensationStarted' THEN
        UPDATE )" + n.sagas + R"( SET phase = 'compensating', version = NEW.version, updated_at = NEW.stored_at,
               failed_step = NEW.payload ->> 'failed_step', failure_kind = NEW.payload ->> 'kind',
               error = NEW.payload ->> 'error'
        WHERE saga_id = v_id;
    ELSIF NEW.type = 'SagaBlocked' THEN
        -- Only an in-flight saga can be blocked (the fold refuses the rest).
        UPDATE )" + n.sagas + R"( SET phase = 'blocked', version = NEW.version, updated_at = NEW.stored_at,
               blocked_reason = NEW.payload ->> 'reason', owner = NULL, lease_until = NULL
        WHERE saga_id = v_id AND phase IN ('running', 'compensating', 'blocked');
    ELSIF NEW.type IN ('SagaCompleted', 'SagaCompensated', 'SagaFailed') THEN
        UPDATE )" + n.sagas + R"( SET phase = CASE NEW.type WHEN 'SagaCompleted' THEN 'completed'
                                                 WHEN 'SagaCompensated' THEN 'compensated' ELSE 'failed' END,
               version = NEW.version, updated_at = NEW.stored_at,
               failed_compensation = CASE WHEN NEW.type = 'SagaFailed' THEN NEW.payload ->> 'step' END,
               compensation_error = CASE WHEN NEW.type = 'SagaFailed' THEN NEW.payload ->> 'error' END,
               blocked_reason = NULL, owner = NULL, lease_until = NULL
        WHERE saga_id = v_id;
    END IF;
    RETURN NULL;
END
$boong$)");
    sql.push_back("DROP TRIGGER IF EXISTS " + n.saga_trigger + " ON " + n.events);
    sql.push_back("CREATE TRIGGER " + n.saga_trigger + " AFTER INSERT ON " + n.events +
                  " FOR EACH ROW WHEN (NEW.type IN ('SagaStarted', 'SagaResumed', 'CompensationStarted',"
                  " 'SagaCompleted', 'SagaCompensated', 'SagaFailed', 'SagaBlocked')"
                  " AND NEW.stream_id LIKE 'saga-%') EXECUTE FUNCTION " + n.saga_function + "()");
    return sql;
}

// Migration 3, operator actions on sagas: a SagaMigrated event
// (docs/versioning.md) moves a blocked or failed saga's row to the
// definition it names, so that the orchestrators serving that one claim it
// (a trigger of its own: it moves no phase); SagaRetryRequested (docs/cli.md)
// puts a failed or blocked saga back in flight. Written out in full, as
// migration 2.
std::vector<std::string> migration_3(const Names& n) {
    std::vector<std::string> sql;
    sql.push_back("CREATE OR REPLACE FUNCTION " + n.saga_migration_function + R"(() RETURNS trigger
LANGUAGE plpgsql AS $boong$
BEGIN
    -- (a version that is not a positive number of up to 18 digits changes nothing)
    IF NEW.payload -> 'to' ->> 'version' ~ '^[1-9][0-9]{0,17}$' THEN
        UPDATE )" + n.sagas + R"( SET definition_version = (NEW.payload -> 'to' ->> 'version')::bigint,
               fingerprint = nullif(NEW.payload -> 'to' ->> 'fingerprint', ''), updated_at = NEW.stored_at
        WHERE saga_id = substr(NEW.stream_id, 6) AND phase IN ('blocked', 'failed');
    END IF;
    RETURN NULL;
END
$boong$)");
    sql.push_back("DROP TRIGGER IF EXISTS " + n.saga_migration_trigger + " ON " + n.events);
    sql.push_back("CREATE TRIGGER " + n.saga_migration_trigger + " AFTER INSERT ON " + n.events +
                  " FOR EACH ROW WHEN (NEW.type = 'SagaMigrated' AND NEW.stream_id LIKE 'saga-%')"
                  " EXECUTE FUNCTION " + n.saga_migration_function + "()");
    // Migration 2's phase function, and: SagaRetryRequested (an operator's
    // retry) puts a failed or blocked saga back in flight, free at once.
    sql.push_back("CREATE OR REPLACE FUNCTION " + n.saga_function + R"(() RETURNS trigger
LANGUAGE plpgsql AS $boong$
DECLARE
    v_id text := substr(NEW.stream_id, 6);
    v_owner text := NEW.metadata ->> 'owner';
    v_lease timestamptz := NEW.stored_at + (CASE WHEN NEW.metadata ->> 'lease_ms' ~ '^[0-9]{1,10}$'
                                                 THEN (NEW.metadata ->> 'lease_ms')::bigint ELSE 0 END
                                            * interval '1 millisecond');
    v_text text := NEW.payload ->> 'deadline';
    v_deadline timestamptz;
BEGIN
    IF NEW.type = 'SagaStarted' THEN
        -- Checked field by field, the day against its month's length (nested
        -- IFs: SQL does not promise to evaluate AND left to right), rather
        -- than by catching the cast's error: an EXCEPTION block would open a
        -- subtransaction for every saga started.
        IF v_text ~ '^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?Z$' THEN
            IF substr(v_text, 9, 2)::int <= extract(day FROM make_date(substr(v_text, 1, 4)::int, substr(v_text, 6, 2)::int, 1)
                                                            + interval '1 month - 1 day') THEN
                v_deadline := v_text::timestamptz;
            END IF;
        END IF;
        INSERT INTO )" + n.sagas + R"( (saga_id, saga_type, definition_version, fingerprint, phase, version,
                                     deadline, started_at, updated_at, owner, lease_until)
        VALUES (v_id, coalesce(NEW.payload ->> 'saga_type', ''),
                CASE WHEN NEW.payload -> 'definition' ->> 'version' ~ '^[0-9]{1,18}$'
                     THEN (NEW.payload -> 'definition' ->> 'version')::bigint ELSE 1 END,
                nullif(NEW.payload -> 'definition' ->> 'fingerprint', ''),
                'running', NEW.version, v_deadline, NEW.stored_at, NEW.stored_at,
                v_owner, CASE WHEN v_owner IS NOT NULL THEN v_lease END)
        ON CONFLICT (saga_id) DO NOTHING;
    ELSIF NEW.type = 'SagaResumed' THEN
        UPDATE )" + n.sagas + R"( SET phase = CASE WHEN NEW.payload ->> 'phase' IN ('running', 'compensating')
                                           THEN NEW.payload ->> 'phase' ELSE phase END,
               version = NEW.version, updated_at = NEW.stored_at,
               failed_compensation = NULL, compensation_error = NULL, blocked_reason = NULL,
               owner = v_owner, lease_until = CASE WHEN v_owner IS NOT NULL THEN v_lease END
        WHERE saga_id = v_id;
    ELSIF NEW.type = 'SagaRetryRequested' THEN
        -- An operator's retry of a failed or blocked saga: in flight again,
        -- in the phase it names, and free at once (its lease ends as it is
        -- asked for) for any orchestrator of its type.
        UPDATE )" + n.sagas + R"( SET phase = CASE WHEN NEW.payload ->> 'phase' IN ('running', 'compensating')
                                           THEN NEW.payload ->> 'phase' ELSE phase END,
               version = NEW.version, updated_at = NEW.stored_at,
               failed_compensation = NULL, compensation_error = NULL, blocked_reason = NULL,
               owner = NULL, lease_until = NEW.stored_at
        WHERE saga_id = v_id AND phase IN ('failed', 'blocked');
    ELSIF NEW.type = 'CompensationStarted' THEN
        UPDATE )" + n.sagas + R"( SET phase = 'compensating', version = NEW.version, updated_at = NEW.stored_at,
               failed_step = NEW.payload ->> 'failed_step', failure_kind = NEW.payload ->> 'kind',
               error = NEW.payload ->> 'error'
        WHERE saga_id = v_id;
    ELSIF NEW.type = 'SagaBlocked' THEN
        -- Only an in-flight saga can be blocked (the fold refuses the rest).
        UPDATE )" + n.sagas + R"( SET phase = 'blocked', version = NEW.version, updated_at = NEW.stored_at,
               blocked_reason = NEW.payload ->> 'reason', owner = NULL, lease_until = NULL
        WHERE saga_id = v_id AND phase IN ('running', 'compensating', 'blocked');
    ELSIF NEW.type IN ('SagaCompleted', 'SagaCompensated', 'SagaFailed') THEN
        UPDATE )" + n.sagas + R"( SET phase = CASE NEW.type WHEN 'SagaCompleted' THEN 'completed'
                                                 WHEN 'SagaCompensated' THEN 'compensated' ELSE 'failed' END,
               version = NEW.version, updated_at = NEW.stored_at,
               failed_compensation = CASE WHEN NEW.type = 'SagaFailed' THEN NEW.payload ->> 'step' END,
               compensation_error = CASE WHEN NEW.type = 'SagaFailed' THEN NEW.payload ->> 'error' END,
               blocked_reason = NULL, owner = NULL, lease_until = NULL
        WHERE saga_id = v_id;
    END IF;
    RETURN NULL;
END
$boong$)");
    sql.push_back("DROP TRIGGER IF EXISTS " + n.saga_trigger + " ON " + n.events);
    sql.push_back("CREATE TRIGGER " + n.saga_trigger + " AFTER INSERT ON " + n.events +
                  " FOR EACH ROW WHEN (NEW.type IN ('SagaStarted', 'SagaResumed', 'SagaRetryRequested', 'CompensationStarted',"
                  " 'SagaCompleted', 'SagaCompensated', 'SagaFailed', 'SagaBlocked')"
                  " AND NEW.stream_id LIKE 'saga-%') EXECUTE FUNCTION " + n.saga_function + "()");
    return sql;
}

// Migration 4, an operator's cancel: SagaCancelRequested (docs/cli.md) takes
// a running saga from its owner, whose next renewal finds it lost and stops
// it; its lease runs out as it stands (by then that run has stopped), and the
// next claimant resumes it and compensates. A trigger of its own: it moves
// no phase.
std::vector<std::string> migration_4(const Names& n) {
    std::vector<std::string> sql;
    sql.push_back("CREATE OR REPLACE FUNCTION " + n.saga_cancel_function + R"(() RETURNS trigger
LANGUAGE plpgsql AS $boong$
BEGIN
    UPDATE )" + n.sagas + R"( SET version = NEW.version, updated_at = NEW.stored_at, owner = NULL
    WHERE saga_id = substr(NEW.stream_id, 6) AND phase = 'running';
    RETURN NULL;
END
$boong$)");
    sql.push_back("DROP TRIGGER IF EXISTS " + n.saga_cancel_trigger + " ON " + n.events);
    sql.push_back("CREATE TRIGGER " + n.saga_cancel_trigger + " AFTER INSERT ON " + n.events +
                  " FOR EACH ROW WHEN (NEW.type = 'SagaCancelRequested' AND NEW.stream_id LIKE 'saga-%')"
                  " EXECUTE FUNCTION " + n.saga_cancel_function + "()");
    return sql;
}

// Migration 5, archiving (docs/postgres.md, "Archiving"): the archive table
// holds events moved out of the events table, with the columns they had
// there, and when they moved. Unique per stream version like the events
// table; no index on event ids (replays are recognised among hot events).
std::vector<std::string> migration_5(const Names& n) {
    std::vector<std::string> sql;
    sql.push_back("CREATE TABLE IF NOT EXISTS " + n.archive + R"( (
    position       bigint      NOT NULL PRIMARY KEY,
    stream_id      text        NOT NULL,
    version        bigint      NOT NULL,
    event_id       uuid        NOT NULL,
    type           text        NOT NULL,
    schema_version integer     NOT NULL,
    payload        jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    stored_at      timestamptz NOT NULL,
    transaction_id xid8        NOT NULL,
    archived_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
))");
    return sql;
}

// Migration 6, immutable history (docs/security.md): no UPDATE, DELETE or
// TRUNCATE of the events or the archive, whatever the role's privileges
// (least-privilege roles lack them anyway; this holds for the owner too).
// The one way out of the events table is into the archive, whole: a DELETE
// goes through only when the archive holds the same row, which an archive
// run inserts first, in the same statement. BEFORE triggers, so a refused
// statement changes nothing; the owner can still ALTER TABLE ... DISABLE
// TRIGGER, on purpose and visibly.
std::vector<std::string> migration_6(const Names& n) {
    std::vector<std::string> sql;
    sql.push_back("CREATE OR REPLACE FUNCTION " + n.keep_history_function + R"(() RETURNS trigger
LANGUAGE plpgsql AS $boong$
BEGIN
    IF TG_OP = 'DELETE' AND TG_ARGV[0] = 'events' THEN
        IF EXISTS (SELECT 1 FROM )" + n.archive + R"( a
                   WHERE a.position = OLD.position AND a.stream_id = OLD.stream_id AND a.version = OLD.version
                     AND a.event_id = OLD.event_id AND a.type = OLD.type AND a.schema_version = OLD.schema_version
                     AND a.payload = OLD.payload AND a.metadata = OLD.metadata AND a.stored_at = OLD.stored_at
                     AND a.transaction_id = OLD.transaction_id) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'history is immutable: % on %.% refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'events are appended, never changed or deleted; an archive run moves old ones to the archive';
END
$boong$)");
    for (const auto& [table, kind] : {std::pair{n.events, "events"}, std::pair{n.archive, "archive"}}) {
        sql.push_back("CREATE TRIGGER " + n.keep_history_trigger + " BEFORE UPDATE OR DELETE ON " + table +
                      " FOR EACH ROW EXECUTE FUNCTION " + n.keep_history_function + "('" + kind + "')");
        sql.push_back("CREATE TRIGGER " + n.keep_history_truncate_trigger + " BEFORE TRUNCATE ON " + table +
                      " FOR EACH STATEMENT EXECUTE FUNCTION " + n.keep_history_function + "('" + kind + "')");
    }
    return sql;
}

// Migration 7, field encryption's keys (docs/security.md): each data
// subject's key versions, wrapped by a master key the database never sees.
// Shredding empties `wrapped` and adds the subject's version 0, a tombstone
// that outlives every key (a subject shredded before it had one stays so).
std::vector<std::string> migration_7(const Names& n) {
    std::vector<std::string> sql;
    sql.push_back("CREATE TABLE IF NOT EXISTS " + n.subject_keys + R"( (
    subject     text        NOT NULL,
    version     integer     NOT NULL CHECK (version >= 0),
    wrapped     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    shredded_at timestamptz,
    PRIMARY KEY (subject, version),
    CHECK ((wrapped IS NULL) = (shredded_at IS NOT NULL)),
    CHECK (version > 0 OR wrapped IS NULL)
))");
    return sql;
}

struct Migration {
    int version;
    const char* description;
    std::vector<std::string> (*statements)(const Names&);
};

constexpr std::array<Migration, 7> kMigrations{{
    {1, "events, snapshots, append functions, saga table, outbox cursors, inbox", &migration_1},
    {2, "saga definitions: version and fingerprint per saga, the blocked phase", &migration_2},
    {3, "operator actions: SagaMigrated moves a saga to the definition it names, SagaRetryRequested retries it", &migration_3},
    {4, "operator cancel: SagaCancelRequested takes a running saga from its owner, for a claimant that compensates", &migration_4},
    {5, "archiving: the archive table, for events moved out of the events table", &migration_5},
    {6, "immutable history: no UPDATE, DELETE or TRUNCATE of events or archive; events leave only into the archive",
     &migration_6},
    {7, "field encryption: each data subject's key versions, wrapped, and the subjects shredded", &migration_7},
}};
static_assert(kMigrations.back().version == kSchemaVersion);

}  // namespace

std::string append_lock_key_sql(const Names& n) {
    // Built with += : GCC 12 warns falsely (-Wrestrict, PR105329) on "(" + std::string.
    std::string key = "(";
    key += std::to_string(kLockClass);
    key += "::bigint << 32) | ";
    key += n.events_literal;
    key += "::regclass::oid::bigint";
    return key;
}

Names resolve_names(pqxx::connection& connection, const PostgresStoreConfig& config) {
    pqxx::nontransaction tx(connection, "boong-names");
    const auto row = tx.exec1("SELECT current_schema()");
    if (row[0].is_null()) {
        throw Error(errc::invalid_config,
                    "the search_path of the event store's connection names no existing schema to create " +
                        config.table_name + " in");
    }
    return names_in(row[0].c_str(), config);
}

Names names_in(const std::string& schema_name, const PostgresStoreConfig& config) {
    Names n;
    n.schema = schema_name;
    const std::string schema = quote_identifier(n.schema) + ".";
    n.events = schema + quote_identifier(config.table_name);
    n.snapshots = schema + quote_identifier(config.snapshot_table_name);
    n.versions = schema + quote_identifier(derived_name(config.table_name, "_schema"));
    n.append_function = schema + quote_identifier(derived_name(config.table_name, "_append"));
    n.append_known_function = schema + quote_identifier(derived_name(config.table_name, "_append_known"));
    n.sagas = schema + quote_identifier(derived_name(config.table_name, "_sagas"));
    n.saga_claim_index = quote_identifier(derived_name(config.table_name, "_sagas_claim_idx"));
    n.saga_blocked_index = quote_identifier(derived_name(config.table_name, "_sagas_blocked_idx"));
    n.saga_phase_check = quote_identifier(derived_name(config.table_name, "_sagas_phase_check"));
    n.saga_function = schema + quote_identifier(derived_name(config.table_name, "_track_saga"));
    n.saga_trigger = quote_identifier(derived_name(config.table_name, "_track_saga"));
    n.saga_migration_function = schema + quote_identifier(derived_name(config.table_name, "_migrate_saga"));
    n.saga_migration_trigger = quote_identifier(derived_name(config.table_name, "_migrate_saga"));
    n.saga_cancel_function = schema + quote_identifier(derived_name(config.table_name, "_cancel_saga"));
    n.saga_cancel_trigger = quote_identifier(derived_name(config.table_name, "_cancel_saga"));
    n.outbox = schema + quote_identifier(derived_name(config.table_name, "_outbox"));
    n.inbox = schema + quote_identifier(derived_name(config.table_name, "_inbox"));
    n.archive = schema + quote_identifier(derived_name(config.table_name, "_archive"));
    n.keep_history_function = schema + quote_identifier(derived_name(config.table_name, "_keep_history"));
    n.keep_history_trigger = quote_identifier(derived_name(config.table_name, "_keep_history"));
    n.keep_history_truncate_trigger = quote_identifier(derived_name(config.table_name, "_keep_history_truncate"));
    n.subject_keys = schema + quote_identifier(derived_name(config.table_name, "_subject_keys"));
    n.position_sequence = schema + quote_identifier(derived_name(config.table_name, "_position_seq"));
    n.position_sequence_literal = quote_literal(n.position_sequence);
    n.events_literal = quote_literal(n.events);
    return n;
}

std::vector<std::string> migration_statements(int version, const Names& n) {
    for (const auto& m : kMigrations) {
        if (m.version == version) return m.statements(n);
    }
    throw Error(errc::invalid_argument, "no schema migration " + std::to_string(version));
}

namespace {

// The highest migration applied, 0 before any (no table of versions yet).
int applied_version(pqxx::transaction_base& tx, const Names& n) {
    if (tx.exec1("SELECT to_regclass(" + tx.quote(n.versions) + ") IS NULL")[0].as<bool>()) return 0;
    return tx.exec1("SELECT coalesce(max(version), 0) FROM " + n.versions)[0].as<int>();
}

void refuse_newer(const Names& n, int current) {
    if (current <= kSchemaVersion) return;
    throw Error(errc::invalid_config, "the event store " + n.events + " is at schema version " +
                                          std::to_string(current) + ", newer than this library knows (" +
                                          std::to_string(kSchemaVersion) +
                                          "): it was upgraded by a newer Boong; upgrade this service too");
}

}  // namespace

void migrate(pqxx::connection& connection, const Names& n) {
    pqxx::work tx(connection, "boong-migrate");
    // Up to date, the common case: reads only, so a role that may not create
    // or alter tables (the application role of docs/security.md) opens the
    // store; migrations only ever go forward, so no lock is needed to see it.
    int current = applied_version(tx, n);
    refuse_newer(n, current);
    if (current == kSchemaVersion) {
        tx.commit();
        return;
    }
    try {
        // Two processes starting at once: the second waits here, then finds
        // the work done. The key is per events table (its name: it may not
        // exist yet).
        tx.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kLockClass) + ", " +
                std::to_string(static_cast<std::int32_t>(fnv1a32(n.events))) + ")");
        tx.exec("CREATE TABLE IF NOT EXISTS " + n.versions +
                " (version integer PRIMARY KEY, description text NOT NULL, library_version text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())");
        current = applied_version(tx, n);  // another process may have migrated meanwhile
        refuse_newer(n, current);
        // Tables that exist before any migration ran were made by someone else.
        check_shape(tx, n.events, kEventColumns);
        check_shape(tx, n.snapshots, kSnapshotColumns);
        for (const auto& m : kMigrations) {
            if (m.version <= current) continue;
            for (const auto& statement : m.statements(n)) tx.exec(statement);
            tx.exec_params("INSERT INTO " + n.versions +
                               " (version, description, library_version) VALUES ($1, $2, $3)",
                           m.version, m.description, BOONG_LIBRARY_VERSION);
        }
    } catch (const pqxx::insufficient_privilege& e) {
        throw Error(errc::invalid_config,
                    "the event store " + n.events + " is at schema version " + std::to_string(current) +
                        ", this library needs " + std::to_string(kSchemaVersion) +
                        ", and this role may not migrate it (" + one_line(e.what()) +
                        "): run `boong schema migrate` as the role that owns the tables (docs/security.md)");
    }
    tx.commit();
}

std::vector<std::string> grant_statements(const Names& n, const PostgresRoles& roles) {
    if (roles.application.empty() && roles.read_only.empty()) {
        throw Error(errc::invalid_argument, "postgres grants: name an application role, a read-only role, or both");
    }
    if (roles.application == roles.read_only) {
        throw Error(errc::invalid_argument, "postgres grants: the application and read-only roles are both " +
                                                roles.application + ": they need different roles");
    }
    std::vector<std::string> sql;
    const std::string schema = quote_identifier(n.schema);
    if (!roles.application.empty()) {
        const std::string to = " TO " + quote_identifier(roles.application);
        sql.push_back("GRANT USAGE ON SCHEMA " + schema + to);
        // Append is INSERT; the functions run with the caller's rights.
        sql.push_back("GRANT SELECT, INSERT ON " + n.events + to);
        sql.push_back("GRANT USAGE, UPDATE ON SEQUENCE " + n.position_sequence + to);  // nextval and setval
        sql.push_back("GRANT EXECUTE ON FUNCTION " + n.append_function + "(jsonb, boolean), " +
                      n.append_known_function + "(jsonb, bigint[], bigint)" + to);
        sql.push_back("GRANT SELECT ON " + n.archive + ", " + n.versions + to);
        // Working state: the saga trigger, leases and cursors update rows.
        sql.push_back("GRANT SELECT, INSERT, UPDATE ON " + n.snapshots + ", " + n.sagas + ", " + n.outbox + to);
        sql.push_back("GRANT SELECT, INSERT ON " + n.inbox + to);
        // Field encryption's keys: made, rotated and shredded by services
        // (an erasure request); not readable by operators.
        sql.push_back("GRANT SELECT, INSERT, UPDATE ON " + n.subject_keys + to);
    }
    if (!roles.read_only.empty()) {
        const std::string to = " TO " + quote_identifier(roles.read_only);
        sql.push_back("GRANT USAGE ON SCHEMA " + schema + to);
        sql.push_back("GRANT SELECT ON " + n.events + ", " + n.archive + ", " + n.snapshots + ", " + n.sagas + ", " +
                      n.outbox + ", " + n.inbox + ", " + n.versions + to);
    }
    return sql;
}

Statements statements(const Names& n) {
    const std::string columns =
        "position, version, event_id, type, schema_version, payload, metadata, "
        "(extract(epoch FROM stored_at) * 1000000)::bigint";
    // The oldest transaction still running when the statement's snapshot was taken.
    const std::string horizon = "(SELECT pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot()))";
    return {
        // Events commit durably whatever the session, the database or the
        // caller's transaction says of synchronous_commit: a reader may see
        // them at once, and a crash must not then take them back (and give
        // their positions to others). set_config(..., true) holds for the
        // transaction the append runs in, which it commits with.
        {kAppendStatement,
         "SELECT r_index, r_verdict, r_current, r_next_version, r_first_position, r_last_position, r_other_event, "
         "r_other_stream, r_other_version FROM pg_catalog.set_config('synchronous_commit', 'on', true) AS durable, " +
             n.append_function + "($1::jsonb, $2::boolean)"},
        {kAppendKnownStatement,
         "SELECT " + n.append_known_function +
             "($1::jsonb, $2::bigint[], $3::bigint) FROM pg_catalog.set_config('synchronous_commit', 'on', true) AS "
             "durable"},
        // The inbox (TransactionalStore's processed_in and record_processed_in,
        // one or many): prepared like the rest, as every reaction runs them.
        {kInboxProcessedStatement,
         "SELECT 1 FROM " + n.inbox + " WHERE consumer = $1::text AND message_id = $2::text"},
        {kInboxRecordStatement, "INSERT INTO " + n.inbox +
                                    " (consumer, message_id) VALUES ($1::text, $2::text) "
                                    "ON CONFLICT (consumer, message_id) DO NOTHING"},
        // One index probe per id, whatever the statistics: LIMIT keeps the
        // lateral subquery from being pulled up into a join, whose generic
        // plan, made on a young table, reads every row of the consumer and
        // tests each against the ids (16 ms a call at 4,000 rows in
        // bench_choreography, where the probes take 0.1 ms).
        {kInboxProcessedManyStatement,
         "SELECT m.id FROM pg_catalog.jsonb_array_elements_text($2::jsonb) AS m(id) CROSS JOIN LATERAL ("
         "SELECT 1 FROM " + n.inbox + " i WHERE i.consumer = $1::text AND i.message_id = m.id LIMIT 1) AS hit"},
        {kInboxRecordManyStatement,
         "INSERT INTO " + n.inbox +
             " (consumer, message_id) SELECT $1::text, pg_catalog.jsonb_array_elements_text($2::jsonb)"
             " ON CONFLICT (consumer, message_id) DO NOTHING RETURNING message_id"},
        // With the archive's rows (docs/postgres.md, "Archiving"), merged
        // by version in one statement, so one snapshot: an event moving at
        // that moment is read once. A run archives a stream's events in
        // any order its batches meet them, so the archived ones need not be
        // a prefix of the stream: both tables are always read. Each branch
        // is ordered and limited itself, so the plan stays a merge of two
        // index probes whatever the statistics; for a stream with nothing
        // archived, the archive's costs one probe of its index.
        {kReadStreamStatement,
         "SELECT * FROM ((SELECT " + columns + " FROM " + n.archive +
             " WHERE stream_id = $1::text AND version >= $2::bigint ORDER BY version LIMIT $3::bigint)"
             " UNION ALL (SELECT " + columns + " FROM " + n.events +
             " WHERE stream_id = $1::text AND version >= $2::bigint ORDER BY version LIMIT $3::bigint)) AS e"
             " ORDER BY version LIMIT $3::bigint"},
        // Whole streams, named by a JSON array, each answered at its index
        // (from 1), in version order: a nested loop of the two probes above
        // per name.
        {kReadStreamsStatement,
         "SELECT s.i, e.* FROM pg_catalog.jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS s(id, i)"
             " CROSS JOIN LATERAL ((SELECT " + columns + " FROM " + n.archive +
             " WHERE stream_id = s.id ORDER BY version)"
             " UNION ALL (SELECT " + columns + " FROM " + n.events +
             " WHERE stream_id = s.id ORDER BY version)) AS e"
             " ORDER BY s.i, e.version"},
        // Only rows of transactions older than every running one: see the
        // append function. They form a prefix of the positions. (A scalar
        // subquery, so the snapshot is taken once, not for every row.)
        // With the archive's rows, merged by position: one statement, so one
        // snapshot, in which an event is in one table or the other. The
        // archive's rows are held to the same rule (they keep their
        // transaction ids): a run may move an event whose transaction is not
        // yet below the horizon (min_age 0), above an append still in flight,
        // and a reader given it would move past that append's position. Each
        // branch is ordered and limited itself, so the plan stays a merge of
        // two index scans whatever the statistics (without, the generic plan
        // sorted every row from $1 on: 18 ms for 50,000). A reader past the
        // archive pays one index probe there.
        {kReadAllStatement,
         "SELECT * FROM ((SELECT stream_id, " + columns + " FROM " + n.archive +
             " WHERE position >= $1::bigint AND transaction_id < " + horizon +
             " ORDER BY position LIMIT $2::bigint)"
             " UNION ALL (SELECT stream_id, " + columns + " FROM " + n.events +
             " WHERE position >= $1::bigint AND transaction_id < " + horizon +
             " ORDER BY position LIMIT $2::bigint)) AS e"
             " ORDER BY position LIMIT $2::bigint"},
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
