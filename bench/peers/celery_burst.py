"""The burst scenario's celery-redbeat peer: a private redis-server, ONE Celery
worker (default prefork pool) and Celery beat with RedBeat, N entries due at
the same second (bench/peers/celery_burst_app.py says what that means).

Runs inside bench/.venv-peers:
    python -m bench.peers.celery_burst --jobs N --due EPOCH_S --url http://HOST:PORT --result FILE

Writes to --result the CPU of beat, the worker and its pool processes just
before the burst (3 s before the due second) and once every body has returned
(or --grace seconds after the due time); bench/burst.py measures the lag at
its sink.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.peers.celery_peer import REPO, free_port, stop, wait_for
from bench.peers.celery_peer import _die_with_parent as die_with_parent
from bench.peers.common import child_pids, proc_stats

CPU_BEFORE_S = 3.0


def redis_dir_args(work: Path) -> list[str]:
    return ["--dir", str(work), "--protected-mode", "no"]


def loadavg() -> list[str]:
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def records(directory: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in directory.glob("starts-*.csv"))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, required=True)
    ap.add_argument("--due", type=int, required=True, help="the burst's second, epoch seconds (UTC)")
    ap.add_argument("--url", required=True, help="the sink, http://HOST:PORT")
    ap.add_argument("--grace", type=float, default=60.0)
    ap.add_argument("--result", required=True)
    args = ap.parse_args(argv)

    from importlib.metadata import version

    import celery
    import redis

    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise SystemExit("redis-server not found: install the Debian package redis-server (scripts/test-deps.sh does)")
    work = Path(tempfile.mkdtemp(prefix="peer-celery-burst-"))
    (work / "records").mkdir()
    (work / "ready").mkdir()
    port = free_port()
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(name: str, argv_: list[str], env: dict[str, str] | None = None, sig: int = signal.SIGTERM) -> None:
        with open(work / f"{name}.log", "ab") as log:
            procs[name] = subprocess.Popen(
                argv_, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env, preexec_fn=die_with_parent(sig)
            )

    try:
        spawn(
            "redis",
            [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *redis_dir_args(work)],
            sig=signal.SIGKILL,
        )
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        wait_for(client.ping, 15, f"redis on port {port}", procs, work)
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "BENCH_REDIS_URL": f"redis://127.0.0.1:{port}",
            "BENCH_JOBS": str(args.jobs),
            "BENCH_DUE": str(args.due),
            "BENCH_SINK": args.url,
            "BENCH_RECORD_DIR": str(work / "records"),
            "BENCH_READY_DIR": str(work / "ready"),
        }
        celery_cmd = [sys.executable, "-m", "celery", "-A", "bench.peers.celery_burst_app"]
        t0 = time.time()
        spawn("worker", [*celery_cmd, "worker", "--loglevel=WARNING", "-n", "burst@%h"], env)
        wait_for(lambda: (work / "ready" / "worker").exists(), 60, "the celery worker", procs, work)
        spawn(
            "beat",
            [*celery_cmd, "beat", "-S", "redbeat.RedBeatScheduler", "--loglevel=WARNING", "--pidfile=", "-s", str(work / "beat")],
            env,
        )
        wait_for(lambda: (work / "ready" / "beat").exists(), 120, "celery beat", procs, work)
        ready = time.time()

        def stats() -> dict[str, dict[str, float] | None]:
            pids = {"beat": procs["beat"].pid, "worker": procs["worker"].pid}
            for n, pid in enumerate(child_pids(procs["worker"].pid), 1):
                pids[f"worker-pool-{n}"] = pid
            pids["redis"] = procs["redis"].pid
            return {name: proc_stats(pid) for name, pid in pids.items()}

        delay = args.due - CPU_BEFORE_S - time.time()
        if delay > 0:
            time.sleep(delay)
        before, load_before = stats(), loadavg()
        deadline = args.due + args.grace
        while time.time() < deadline and records(work / "records") < args.jobs:
            time.sleep(0.2)
        after, load_after = stats(), loadavg()
        end_ms = int(time.time() * 1000)
        done = records(work / "records")
        pool_size = len(child_pids(procs["worker"].pid))
    finally:
        stop(procs.get("beat"))
        stop(procs.get("worker"), signal.SIGQUIT)
        stop(procs.get("redis"))
    result = {
        "peer": f"Celery {celery.__version__} beat with celery-redbeat {version('celery-redbeat')} "
        f"(redis-py {redis.__version__}) and one Celery worker (default prefork pool, {pool_size} processes); "
        "broker, result backend and RedBeat on one private redis-server",
        "schedule": "redbeat.schedules.rrule('SECONDLY', dtstart=<due second>, count=1): once, at that UTC second "
        "(Celery's crontab has no seconds field)",
        "task": "one HTTP GET /j/<job> to the sink over a per-process keep-alive http.client connection; "
        "its result is stored in the Redis result backend (Celery's default once a backend is configured)",
        "setup_seconds": round(ready - t0, 2),
        "ready_before_due_s": round(args.due - ready, 2),
        "bodies_returned": done,
        "all_bodies_returned": done >= args.jobs,
        "cpu_before": before,
        "cpu_after": after,
        "cpu_window_end_ms": end_ms,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }
    with open(args.result, "w") as f:
        json.dump(result, f)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
