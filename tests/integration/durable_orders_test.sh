#!/usr/bin/env bash
# examples/durable_orders killed with SIGKILL mid-run and started again: every
# order ends (completed or compensated), sagas in flight at the kill were
# resumed, and every stored event reached Redis.
#
#   durable_orders_test.sh PATH_TO_durable_orders   (env: BOONG_TEST_PG_DSN, BOONG_TEST_REDIS_HOST/PORT)
set -euo pipefail
program=$1
: "${BOONG_TEST_PG_DSN:?run through scripts/test.sh}" "${BOONG_TEST_REDIS_HOST:?}" "${BOONG_TEST_REDIS_PORT:?}"
table="durable_orders_$(date +%s)_$$"
orders=300
redis=(redis-cli -h "$BOONG_TEST_REDIS_HOST" -p "$BOONG_TEST_REDIS_PORT")
psql_q() { psql "$BOONG_TEST_PG_DSN" -X -A -t -q -c "$1"; }
fail() { echo "durable_orders_test: FAILED: $*" >&2; exit 1; }

"$program" --dsn "$BOONG_TEST_PG_DSN" --redis "$BOONG_TEST_REDIS_HOST:$BOONG_TEST_REDIS_PORT" \
    --table "$table" --orders "$orders" --topic "$table" &
pid=$!
# Kill it once some sagas have ended and others are in flight.
for _ in $(seq 1 300); do
    sleep 0.05
    ended=$(psql_q "SELECT count(*) FILTER (WHERE phase IN ('completed', 'compensated')) FROM ${table}_sagas" 2>/dev/null || echo 0)
    [[ ${ended:-0} -ge 40 ]] && break
done
kill -9 "$pid"
wait "$pid" 2>/dev/null && fail "the program ended before it was killed"
in_flight=$(psql_q "SELECT count(*) FROM ${table}_sagas WHERE phase IN ('running', 'compensating')")
echo "durable_orders_test: killed with $ended orders ended and $in_flight in flight"
[[ $in_flight -gt 0 ]] || fail "no saga was in flight at the kill (the run proves nothing)"

start=$SECONDS
output=$(timeout 120 "$program" --dsn "$BOONG_TEST_PG_DSN" --redis "$BOONG_TEST_REDIS_HOST:$BOONG_TEST_REDIS_PORT" \
    --table "$table" --orders "$orders" --topic "$table") || fail "the restarted program failed: $output"
echo "$output"
echo "durable_orders_test: restarted run finished in $((SECONDS - start)) s"

[[ $(psql_q "SELECT count(*) FROM ${table}_sagas") == "$orders" ]] || fail "not $orders sagas"
unfinished=$(psql_q "SELECT count(*) FROM ${table}_sagas WHERE phase NOT IN ('completed', 'compensated')")
[[ $unfinished == 0 ]] || fail "$unfinished sagas did not end completed or compensated"
declined=$(psql_q "SELECT count(*) FROM ${table}_sagas WHERE phase = 'compensated'")
[[ $declined == $((orders / 7)) ]] || fail "$declined compensated, expected $((orders / 7)) (every 7th is declined)"
resumed=$(psql_q "SELECT count(DISTINCT stream_id) FROM ${table} WHERE type = 'SagaResumed'")
[[ $resumed -ge $in_flight ]] || fail "$resumed sagas resumed, $in_flight were in flight at the kill"
stored=$(psql_q "SELECT count(*) FROM ${table}")
published=$("${redis[@]}" XLEN "$table")
[[ $published -ge $stored ]] || fail "$published events in Redis, $stored stored (the relay lost some)"
echo "durable_orders_test: PASSED: $orders orders ended ($declined compensated), $resumed resumed, $stored events stored, $published published"
"${redis[@]}" DEL "$table" >/dev/null
psql_q "DROP TABLE ${table}, ${table}_snapshots, ${table}_schema, ${table}_sagas, ${table}_outbox, ${table}_inbox, ${table}_archive CASCADE" >/dev/null || true
