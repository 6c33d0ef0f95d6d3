#!/usr/bin/env bash
# Runs the order services on private PostgreSQL and Redis (or RabbitMQ)
# servers until Ctrl-C.
#
#   examples/order_services/run.sh            choreography: order, payment and inventory services
#   examples/order_services/run.sh --saga     the same flow as an orchestrated saga (order service only)
#   examples/order_services/run.sh --rabbitmq the events through RabbitMQ instead of Redis
#                                             (with --saga too)
#
# Environment: BUILD_DIR (default build), HTTP_PORT (default: a free port).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
mode=events
broker=redis
for arg in "$@"; do
    case $arg in
        --saga) mode=saga ;;
        --rabbitmq) broker=rabbitmq ;;
        *) echo "usage: $0 [--saga] [--rabbitmq]" >&2; exit 2 ;;
    esac
done
build_dir=${BUILD_DIR:-build}
bin=$build_dir/examples/order_services

# shellcheck source=../../scripts/lib/servers.sh
source "$root/scripts/lib/servers.sh"

pids=()
cleanup() {
    trap - EXIT INT TERM
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    boong_stop_servers
    echo "run.sh: stopped"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ ! -x $bin/order_service || ! -x $bin/payment_service || ! -x $bin/inventory_service ]]; then
    echo "run.sh: building in $build_dir"
    if [[ ! -f $build_dir/build.ninja && ! -f $build_dir/Makefile ]]; then
        cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo || exit 1
    fi
    cmake --build "$build_dir" -j"$(nproc)" --target order_service payment_service inventory_service || exit 1
fi

boong_start_postgres "" "" || exit 1
port=${HTTP_PORT:-$(boong_free_port)} || exit 1
# The DSN (with its password) in the environment: a command line shows in `ps`.
export BOONG_DSN=$BOONG_TEST_PG_DSN
if [[ $broker == rabbitmq ]]; then
    boong_start_rabbitmq "" "" || exit 1
    export BOONG_RABBITMQ_PASSWORD=$BOONG_TEST_RABBITMQ_PASSWORD  # the environment, for the same reason
    common=(--broker rabbitmq --rabbitmq "$BOONG_TEST_RABBITMQ_HOST:$BOONG_TEST_RABBITMQ_PORT"
        --rabbitmq-user "$BOONG_TEST_RABBITMQ_USER" --table event_store)
    where="RabbitMQ: $BOONG_TEST_RABBITMQ_HOST:$BOONG_TEST_RABBITMQ_PORT"
else
    boong_start_redis "" "" || exit 1
    common=(--redis "$BOONG_TEST_REDIS_HOST:$BOONG_TEST_REDIS_PORT" --table event_store)
    where="Redis: $BOONG_TEST_REDIS_HOST:$BOONG_TEST_REDIS_PORT"
fi

"$bin/order_service" "${common[@]}" --http "$port" --mode "$mode" &
pids+=($!)
if [[ $mode == events ]]; then
    "$bin/payment_service" "${common[@]}" &
    pids+=($!)
    "$bin/inventory_service" "${common[@]}" &
    pids+=($!)
fi

for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/api/orders/none" && break
    sleep 0.1
done

url=http://127.0.0.1:$port/api/orders
cat <<TEXT

Order services ($mode mode) on $url
PostgreSQL: $BOONG_TEST_PG_DSN   $where
Payment limit 1000.00; stock: widget 1000000, gadget 1000000, rare 3.

Place orders (each answers {"order_id": ...}):
  # happy: confirmed
  curl -s -X POST $url -d '{"customer": "ann", "items": [{"sku": "widget", "quantity": 2}], "amount": 25.50, "payment_method": "card"}'
  # payment declined (over the limit): items released, order cancelled
  curl -s -X POST $url -d '{"customer": "bob", "items": [{"sku": "widget", "quantity": 1}], "amount": 2500, "payment_method": "card"}'
  # out of stock (5 rare, 3 in stock): payment refunded, order cancelled
  curl -s -X POST $url -d '{"customer": "cy", "items": [{"sku": "rare", "quantity": 5}], "amount": 40, "payment_method": "card"}'
Query one (status, reason, history):
  curl -s $url/ORDER_ID
Retry safely with an Idempotency-Key header (the same key: the same order):
  curl -s -X POST $url -H 'Idempotency-Key: ann-2024-001' -d '{"customer": "ann", "items": [{"sku": "widget", "quantity": 2}], "amount": 25.50, "payment_method": "card"}'
Errors: bad JSON or a missing field -> 400, unknown order -> 404, body over 64 KiB -> 413,
too much work waiting -> 429 (Retry-After), store or broker down -> 503 (Retry-After).

Ctrl-C stops everything.
TEXT

wait -n "${pids[@]}"
echo "run.sh: a service exited"
exit 1
