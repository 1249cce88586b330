#!/usr/bin/env bash
# Start executor, dispatcher and monitor on one conf.ini; Ctrl-C stops all three.
# Used by `make run`. The schema is created (and example jobs added to an
# empty store) before the services start.
set -euo pipefail
conf="${1:-conf/conf.ini}"
py="${PYTHON:-.venv/bin/python}"
pids=()

stop_all() {
    trap - INT TERM EXIT
    if [ ${#pids[@]} -gt 0 ]; then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
}
trap stop_all INT TERM EXIT

"$py" -m monitor -c "$conf" migrate --examples
"$py" -m executor -c "$conf" & pids+=($!)
"$py" -m dispatcher -c "$conf" & pids+=($!)
"$py" -m monitor -c "$conf" & pids+=($!)
echo "crontrio running (executor, dispatcher, monitor; config $conf). Try: .venv/bin/cronctl run list   Stop: Ctrl-C" >&2
# If any one of them exits, stop the others instead of running half a trio.
wait -n "${pids[@]}" || true
echo "a crontrio service exited; stopping the others" >&2
