#!/usr/bin/env bash
# Distributed crontrio on one machine, for trying it out: private MariaDB,
# Redis and etcd under var/distributed/ (ports that do not clash with system
# ones), then 2 executors, 2 dispatchers and the monitor on
# conf/conf.distributed.ini. Ctrl-C stops everything. Used by `make run-distributed`.
set -euo pipefail
py="${PYTHON:-.venv/bin/python}"
top="$(pwd)/var/distributed"
conf=conf/conf.distributed.ini
db_port=13306 redis_port=16379 etcd_port=12379 etcd_peer=12380
mkdir -p "$top"
pids=()

stop_all() {
    trap - INT TERM EXIT
    # Services first (they flush and deregister), then the servers they use.
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop_all INT TERM EXIT

wait_port() {  # host port what
    for _ in $(seq 1 150); do
        (echo > "/dev/tcp/$1/$2") 2>/dev/null && return 0
        sleep 0.2
    done
    echo "$3 did not come up on $1:$2; see $top/*.log" >&2
    exit 1
}

root_opt=(); [ "$(id -u)" = 0 ] && root_opt=(--user=root)
if [ ! -d "$top/mariadb" ]; then
    mariadb-install-db --no-defaults --datadir="$top/mariadb" "${root_opt[@]}" \
        --auth-root-authentication-method=normal --skip-test-db > "$top/mariadb-install.log"
fi
mariadbd --no-defaults --datadir="$top/mariadb" --port=$db_port --bind-address=127.0.0.1 \
    --socket="$top/mysqld.sock" --pid-file="$top/mysqld.pid" --skip-log-bin "${root_opt[@]}" \
    > "$top/mariadb.log" 2>&1 & pids+=($!)
redis-server --port $redis_port --bind 127.0.0.1 --save "" --dir "$top" > "$top/redis.log" 2>&1 & pids+=($!)
etcd --name crontrio --data-dir "$top/etcd" --log-level warn \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "crontrio=http://127.0.0.1:$etcd_peer" > "$top/etcd.log" 2>&1 & pids+=($!)
wait_port 127.0.0.1 $db_port MariaDB
wait_port 127.0.0.1 $redis_port Redis
wait_port 127.0.0.1 $etcd_port etcd
sleep 1  # mariadbd listens a moment before it accepts logins
mariadb --no-defaults -h 127.0.0.1 -P $db_port -u root -e "
    CREATE DATABASE IF NOT EXISTS crontrio CHARACTER SET utf8mb4;
    CREATE USER IF NOT EXISTS 'crontrio'@'%' IDENTIFIED BY 'crontrio';
    GRANT ALL PRIVILEGES ON crontrio.* TO 'crontrio'@'%';"

export CRONTRIO_DATABASE_PORT=$db_port CRONTRIO_DATABASE_PASSWORD=crontrio
export CRONTRIO_REDIS_PORT=$redis_port CRONTRIO_ETCD_ENDPOINTS=127.0.0.1:$etcd_port
"$py" -m crontrio.monitor -c $conf migrate --examples

start() {  # name service listen [extra env...]
    local name=$1 service=$2 listen=$3; shift 3
    env "CRONTRIO_${service^^}_LISTEN=$listen" "CRONTRIO_${service^^}_ID=$name" "$@" \
        "$py" -m "crontrio.$service" -c $conf > >(sed -u "s/^/[$name] /" >&2) 2>&1 & pids=("$!" "${pids[@]}")
}
start e1 executor 127.0.0.1:5931 CRONTRIO_EXECUTOR_JOURNAL="$top/e1-journal.db"
start e2 executor 127.0.0.1:5932 CRONTRIO_EXECUTOR_JOURNAL="$top/e2-journal.db"
start d1 dispatcher 127.0.0.1:5920
start d2 dispatcher 127.0.0.1:5930
env CRONTRIO_MONITOR_LISTEN=127.0.0.1:5922 "$py" -m crontrio.monitor -c $conf > >(sed -u "s/^/[monitor] /" >&2) 2>&1 & pids=("$!" "${pids[@]}")
echo "crontrio distributed: dispatchers 127.0.0.1:5920 and :5930, executors :5931 and :5932." >&2
echo "Try: .venv/bin/cronctl --etcd 127.0.0.1:$etcd_port run list    Stop: Ctrl-C" >&2
wait -n || true
