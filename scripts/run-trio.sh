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

"$py" -m crontrio.monitor -c "$conf" migrate --examples
"$py" -m crontrio.executor -c "$conf" & pids+=($!)
"$py" -m crontrio.dispatcher -c "$conf" & pids+=($!)
"$py" -m crontrio.monitor -c "$conf" & pids+=($!)
echo "crontrio running (executor, dispatcher, monitor; config $conf). Try: .venv/bin/cronctl run list   Stop: Ctrl-C" >&2
console_url=$("$py" -c 'import sys; from crontrio.common.config import load_config; c = load_config(sys.argv[1]); print(f"http://{c.monitor.http_listen}/" if c.console.enabled and c.monitor.http_listen else "")' "$conf")
if [ -n "$console_url" ]; then
    password_file=$("$py" -c 'import sys; from crontrio.common.config import load_config; print(load_config(sys.argv[1]).dispatcher.initial_password_file)' "$conf")
    echo "web console: $console_url  (user admin; first password in $password_file, printed once in the dispatcher's log)" >&2
fi
# If any one of them exits, stop the others instead of running half a trio.
wait -n "${pids[@]}" || true
echo "a crontrio service exited; stopping the others" >&2
