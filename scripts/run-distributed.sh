#!/usr/bin/env bash
# Distributed crontrio on one machine, for trying it out: private MariaDB,
# Redis and etcd under var/distributed/ (ports that do not clash with system
# ones), then 2 executors, 2 dispatchers and the monitor on
# conf/conf.distributed.ini. Used by `make run-distributed`.
#
# Supervision: a service that dies (say a dispatcher `kill -9`ed, to try a
# failover) is reported and the others keep running. Ctrl-C (or SIGTERM)
# stops the services in order, each waited for: monitor, dispatchers,
# executors (they finish and journal their runs), then etcd, Redis, MariaDB.
# Each service logs to <dir>/<name>.log (shutdown lines included; the
# terminal shows the same lines, prefixed); this script's own steps go to
# <dir>/run-distributed.log; <dir>/<name>.pid holds each one's pid.
#
# Where and on which ports, all optional (tests run it on a temp dir and
# free ports): DIST_DIR (default ./var/distributed), DIST_DB_PORT (13306),
# DIST_REDIS_PORT (16379), DIST_ETCD_PORT (12379), DIST_ETCD_PEER_PORT (12380),
# DIST_D1_PORT (5920), DIST_D2_PORT (5930), DIST_E1_PORT (5931),
# DIST_E2_PORT (5932), DIST_MONITOR_PORT (5922), DIST_HTTP_PORT (5923),
# DIST_METRICS_PORTS (4 ports, d1 d2 e1 e2; default "5924 5934 5925 5935"),
# DIST_STOP_GRACE (seconds a service gets to stop before KILL, default 20).
set -euo pipefail
# Job control: every service runs in its own process group, so Ctrl-C reaches
# only this script, which then stops them in order (without it the terminal
# would signal them all at once, etcd and MariaDB under running services).
set -m
py="${PYTHON:-.venv/bin/python}"
top="${DIST_DIR:-$(pwd)/var/distributed}"
conf=conf/conf.distributed.ini
db_port=${DIST_DB_PORT:-13306} redis_port=${DIST_REDIS_PORT:-16379}
etcd_port=${DIST_ETCD_PORT:-12379} etcd_peer=${DIST_ETCD_PEER_PORT:-12380}
d1_port=${DIST_D1_PORT:-5920} d2_port=${DIST_D2_PORT:-5930}
e1_port=${DIST_E1_PORT:-5931} e2_port=${DIST_E2_PORT:-5932}
monitor_port=${DIST_MONITOR_PORT:-5922} http_port=${DIST_HTTP_PORT:-5923}
read -r m_d1 m_d2 m_e1 m_e2 <<< "${DIST_METRICS_PORTS:-5924 5934 5925 5935}"
grace=${DIST_STOP_GRACE:-20}
mkdir -p "$top"
declare -A pid_of=() name_of=()

say() {  # to the terminal and to run-distributed.log
    echo "run-distributed: $*" >&2
    echo "$(date -u '+%Y-%m-%d %H:%M:%S') $*" >> "$top/run-distributed.log"
}

launch() {  # name command...: in the background, output to <name>.log
    local name=$1; shift
    "$@" >> "$top/$name.log" 2>&1 &
    pid_of[$name]=$! name_of[$!]=$name
    echo $! > "$top/$name.pid"  # for trying failures: kill -9 "$(cat <dir>/d1.pid)"
}

follow() {  # name: show its log on the terminal, prefixed, while it runs
    tail -n +1 -F --pid="${pid_of[$1]}" "$top/$1.log" 2>/dev/null | sed -u "s/^/[$1] /" >&2 &
}

stop_stage() {  # name...: TERM them together, then wait for each (KILL after the grace period)
    local name pid rc timer gone
    say "stopping $*"
    for name in "$@"; do
        pid=${pid_of[$name]:-}
        [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true
    done
    sleep "$grace" & timer=$!
    for name in "$@"; do
        pid=${pid_of[$name]:-}
        [ -n "$pid" ] || continue
        unset "pid_of[$name]"
        rc=0 gone=""
        if kill -0 "$timer" 2>/dev/null; then
            wait -n -p gone "$pid" "$timer" || rc=$?
        fi
        if [ "$gone" != "$pid" ]; then  # the grace period is over
            kill -KILL "$pid" 2>/dev/null || true
            rc=0; wait "$pid" 2>/dev/null || rc=$?
            say "$name did not stop within ${grace}s: killed"
        fi
        say "$name stopped (exit $rc)"
    done
    # KILL: the timer inherited stop_all's ignored TERM.
    kill -KILL "$timer" 2>/dev/null || true
    wait "$timer" 2>/dev/null || true
}

stop_all() {
    trap - EXIT
    trap '' INT TERM  # stopping already; every step is bounded by the grace period
    # Services first, front to back: the monitor (it would otherwise report
    # the others going), the dispatchers (they record what they have in
    # flight), the executors (they finish or journal their runs); then the
    # servers they use: etcd, Redis, MariaDB.
    stop_stage monitor
    stop_stage d1 d2
    stop_stage e1 e2
    stop_stage etcd
    stop_stage redis
    stop_stage mariadb
    wait 2>/dev/null || true  # the log followers end with their services
    say "all stopped"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_port() {  # host port what
    for _ in $(seq 1 150); do
        (echo > "/dev/tcp/$1/$2") 2>/dev/null && return 0
        sleep 0.2
    done
    say "$3 did not come up on $1:$2; see $top/*.log"
    exit 1
}

say "starting in $top"
root_opt=(); [ "$(id -u)" = 0 ] && root_opt=(--user=root)
if [ ! -d "$top/mariadb" ]; then
    mariadb-install-db --no-defaults --datadir="$top/mariadb" "${root_opt[@]}" \
        --auth-root-authentication-method=normal --skip-test-db > "$top/mariadb-install.log"
fi
launch mariadb mariadbd --no-defaults --datadir="$top/mariadb" --port="$db_port" --bind-address=127.0.0.1 \
    --socket="$top/mysqld.sock" --pid-file="$top/mysqld.pid" --skip-log-bin "${root_opt[@]}"
launch redis redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --dir "$top"
launch etcd etcd --name crontrio --data-dir "$top/etcd" --log-level warn \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "crontrio=http://127.0.0.1:$etcd_peer"
wait_port 127.0.0.1 "$db_port" MariaDB
wait_port 127.0.0.1 "$redis_port" Redis
wait_port 127.0.0.1 "$etcd_port" etcd
for _ in $(seq 1 50); do  # mariadbd listens a moment before it accepts logins
    mariadb --no-defaults -h 127.0.0.1 -P "$db_port" -u root -e "SELECT 1" > /dev/null 2>&1 && break
    sleep 0.2
done
mariadb --no-defaults -h 127.0.0.1 -P "$db_port" -u root -e "
    CREATE DATABASE IF NOT EXISTS crontrio CHARACTER SET utf8mb4;
    CREATE USER IF NOT EXISTS 'crontrio'@'%' IDENTIFIED BY 'crontrio';
    GRANT ALL PRIVILEGES ON crontrio.* TO 'crontrio'@'%';"

export CRONTRIO_DATABASE_PORT=$db_port CRONTRIO_DATABASE_PASSWORD=crontrio
export CRONTRIO_REDIS_PORT=$redis_port CRONTRIO_ETCD_ENDPOINTS=127.0.0.1:$etcd_port
# Files the services create: under $top, not in the checkout's var/.
export CRONTRIO_CLUSTER_SECRET_FILE="$top/cluster.secret" CRONTRIO_CONSOLE_SECRET_FILE="$top/console-secret"
export CRONTRIO_DISPATCHER_INITIAL_PASSWORD_FILE="$top/initial-admin-password"
export CRONTRIO_MONITOR_HTTP_LISTEN=127.0.0.1:$http_port
"$py" -m crontrio.monitor -c $conf migrate --examples

service() {  # name module listen [extra env...]
    local name=$1 module=$2 listen=$3; shift 3
    launch "$name" env "CRONTRIO_${module^^}_LISTEN=$listen" "CRONTRIO_${module^^}_ID=$name" "$@" "$py" -m "crontrio.$module" -c $conf
    follow "$name"
}
service e1 executor "127.0.0.1:$e1_port" CRONTRIO_EXECUTOR_JOURNAL="$top/e1-journal.db" CRONTRIO_EXECUTOR_METRICS_LISTEN="127.0.0.1:$m_e1"
service e2 executor "127.0.0.1:$e2_port" CRONTRIO_EXECUTOR_JOURNAL="$top/e2-journal.db" CRONTRIO_EXECUTOR_METRICS_LISTEN="127.0.0.1:$m_e2"
service d1 dispatcher "127.0.0.1:$d1_port" CRONTRIO_DISPATCHER_METRICS_LISTEN="127.0.0.1:$m_d1"
service d2 dispatcher "127.0.0.1:$d2_port" CRONTRIO_DISPATCHER_METRICS_LISTEN="127.0.0.1:$m_d2"
service monitor monitor "127.0.0.1:$monitor_port"
for port in "$e1_port" "$e2_port" "$d1_port" "$d2_port" "$monitor_port"; do wait_port 127.0.0.1 "$port" "a crontrio service"; done
say "up: dispatchers 127.0.0.1:$d1_port and :$d2_port, executors :$e1_port and :$e2_port, monitor :$monitor_port (console http://127.0.0.1:$http_port/)"
echo "Try: .venv/bin/cronctl --etcd 127.0.0.1:$etcd_port run list    Stop: Ctrl-C" >&2

# Supervise until Ctrl-C / SIGTERM: a service that ends is reported, the rest go on.
while true; do
    gone=""
    rc=0
    wait -n -p gone "${pid_of[@]}" || rc=$?
    if [ -n "$gone" ] && [ -n "${name_of[$gone]:-}" ]; then
        name=${name_of[$gone]}
        unset "pid_of[$name]"
        say "$name (pid $gone) exited with status $rc; the others keep running (see $top/$name.log)"
    fi
    [ ${#pid_of[@]} -gt 0 ] || { say "every process has exited"; exit 1; }
done
