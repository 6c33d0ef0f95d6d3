#!/usr/bin/env bash
# Restarts the private Redis that servers.sh started in DIR on PORT, keeping
# its data: SHUTDOWN writes the append-only file, the new server reads it.
# For chaos tests (BOONG_TEST_REDIS_RESTART). The new server writes DIR/redis.pid
# so that boong_stop_redis stops it too.
#   restart_redis.sh DIR PORT
set -euo pipefail
dir=$1 port=$2
redis-cli -h 127.0.0.1 -p "$port" shutdown >/dev/null 2>&1 || true
for ((i = 0; i < 100; i++)); do
    redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 || break
    sleep 0.1
done
redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes --save '' \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis-restarted.log"
for ((i = 0; i < 100; i++)); do
    [[ $(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]] && exit 0
    sleep 0.1
done
echo "restart_redis.sh: Redis did not come back on 127.0.0.1:$port" >&2
exit 1
