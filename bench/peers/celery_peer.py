"""celery-redbeat peer: a private redis-server on a free port, ONE Celery worker
(default prefork pool) and Celery beat with the RedBeat scheduler, N entries
every second (bench/peers/celery_app.py).

Runs inside bench/.venv-peers:
    python -m bench.peers.celery_peer --jobs N --seconds S --warmup W --grace G --result FILE
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.peers.common import (
    Contamination,
    child_pids,
    cpu_window,
    emit,
    make_result,
    percentiles,
    proc_stats,
    read_starts,
    score,
    sleep_until,
    utc_now_iso,
)

REPO = Path(__file__).resolve().parents[2]
_PR_SET_PDEATHSIG = 1


def _die_with_parent(sig: int) -> Any:
    libc = ctypes.CDLL(None, use_errno=True)

    def setup() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig)

    return setup


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Any, timeout: float, what: str, procs: dict[str, subprocess.Popen[bytes]], logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, p in procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode} while waiting for {what}; logs in {logs}")
        try:
            if cond():
                return
        except Exception:  # noqa: BLE001 - not up yet: the condition may raise until it is
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}; logs in {logs}")


def stop(p: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if p is None or p.poll() is not None:
        return
    p.send_signal(sig)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(10)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, required=True)
    ap.add_argument("--seconds", type=int, required=True)
    ap.add_argument("--warmup", type=float, required=True)
    ap.add_argument("--grace", type=float, required=True)
    ap.add_argument("--result", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, records)")
    ap.add_argument(
        "--ignore-result", action="store_true", help="task_ignore_result=True (variant 'ignore-result'); default stores results"
    )
    args = ap.parse_args(argv)

    from importlib.metadata import version

    import celery
    import redis

    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise SystemExit("redis-server not found: install the Debian package redis-server (scripts/test-deps.sh does)")

    started_at = utc_now_iso()
    work = Path(tempfile.mkdtemp(prefix="peer-celery-redbeat-"))
    (work / "records").mkdir()
    (work / "ready").mkdir()
    port = free_port()
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(name: str, argv_: list[str], env: dict[str, str] | None = None, sig: int = signal.SIGTERM) -> None:
        with open(work / f"{name}.log", "ab") as log:
            procs[name] = subprocess.Popen(
                argv_, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env, preexec_fn=_die_with_parent(sig)
            )

    try:
        spawn(
            "redis",
            [
                redis_server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(work),
                "--protected-mode",
                "no",
            ],
            sig=signal.SIGKILL,
        )
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        wait_for(client.ping, 15, f"redis on port {port}", procs, work)

        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "BENCH_REDIS_URL": f"redis://127.0.0.1:{port}",
            "BENCH_JOBS": str(args.jobs),
            "BENCH_RECORD_DIR": str(work / "records"),
            "BENCH_READY_DIR": str(work / "ready"),
            "BENCH_IGNORE_RESULT": "1" if args.ignore_result else "",
        }
        celery_cmd = [sys.executable, "-m", "celery", "-A", "bench.peers.celery_app"]
        t0 = time.time()
        spawn("worker", [*celery_cmd, "worker", "--loglevel=WARNING", "-n", "bench@%h"], env)
        wait_for(lambda: (work / "ready" / "worker").exists(), 60, "the celery worker", procs, work)
        worker_ready = time.time()
        spawn(
            "beat",
            [
                *celery_cmd,
                "beat",
                "-S",
                "bench.peers.celery_app:BenchRedBeatScheduler",
                "--loglevel=WARNING",
                "--pidfile=",
                "-s",
                str(work / "beat-schedule"),
            ],
            env,
        )
        wait_for(lambda: (work / "ready" / "beat").exists(), 60, "celery beat", procs, work)
        ready = time.time()

        def pids() -> dict[str, int]:
            out = {"beat": procs["beat"].pid, "worker": procs["worker"].pid}
            for n, pid in enumerate(child_pids(procs["worker"].pid), 1):
                out[f"worker-pool-{n}"] = pid
            out["redis"] = procs["redis"].pid
            return out

        def stats() -> dict[str, dict[str, float] | None]:
            return {name: proc_stats(pid) for name, pid in pids().items()}

        window_start = math.ceil(ready) + math.ceil(args.warmup)
        window_end = window_start + args.seconds
        sleep_until(window_start)
        at_start = stats()
        contamination = Contamination({os.getpid(), *pids().values()})
        queue_at_start = client.llen("celery")
        sleep_until(window_end)
        at_end = stats()
        others = contamination.finish(cpu_window(at_start, at_end))
        queue_at_end = client.llen("celery")
        tail_end = window_end + args.grace
        sleep_until(tail_end)
        final = stats()
        queue_at_stop = client.llen("celery")
        pool_size = len(child_pids(procs["worker"].pid))
        for name, p in procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode} during the run; logs in {work}")
    finally:
        stop(procs.get("beat"))
        stop(procs.get("worker"), signal.SIGQUIT)  # cold shutdown: the backlog is not counted anyway
        stop(procs.get("redis"))

    rows = [r for r in read_starts(work / "records") if r[3] <= tail_end * 1000]
    exact = [(j, s, st) for j, s, _sent, st in rows if s is not None]
    scored = score(exact, args.jobs, window_start, args.seconds)
    rounded = score(
        [(j, math.floor(sent / 1000) * 1000.0, st) for j, _s, sent, st in rows if sent is not None],
        args.jobs,
        window_start,
        args.seconds,
    )
    beat_delays = sorted(
        sent - s
        for _j, s, sent, _st in rows
        if s is not None and sent is not None and window_start * 1000 <= s < window_end * 1000
    )
    result = make_result(
        "celery-redbeat",
        {"jobs": args.jobs, "seconds": args.seconds},
        started_at,
        scored,
        final,
        {
            "peer": f"Celery {celery.__version__} beat with celery-redbeat {version('celery-redbeat')} "
            f"(redis-py {redis.__version__}) and one Celery worker (default prefork pool, {pool_size} processes); "
            f"broker, result backend and RedBeat on one private redis-server",
            "schedule": "celery.schedules.schedule(timedelta(seconds=1), relative=True): every whole second",
            "task": "no-op Celery task that records its start; "
            + (
                "task_ignore_result=True: no result stored, beat does not subscribe to result channels"
                if args.ignore_result
                else "its result is stored in the Redis result backend (Celery's default once a backend is "
                "configured), so beat also subscribes to each sent task's result channel"
            ),
            "scheduled_time_source": "intended boundary passed as a task kwarg by a thin RedBeatScheduler subclass "
            "(the schedule's own due boundary from the entry's last run: exact); beat cannot pass it on its own",
            "send_time_rounded_down": {
                "note": "the same starts scored the fallback way: scheduled second = beat's send time rounded down",
                "firings_run": rounded["firings_run"],
                "duplicates": rounded["duplicates"],
                "misses": rounded["misses"],
                "lag_ms": rounded["lag_ms"],
            },
            "beat_send_delay_ms": percentiles(beat_delays),
            "celery_queue_length": {"window_start": queue_at_start, "window_end": queue_at_end, "stop": queue_at_stop},
            "setup_seconds": {"worker": round(worker_ready - t0, 2), "beat": round(ready - worker_ready, 2)},
            "warmup_seconds": round(window_start - ready, 2),
            "window": {"start_epoch_s": window_start, "seconds": args.seconds},
            "collection_tail_seconds": args.grace,
            "cpu_seconds_window": cpu_window(at_start, at_end),
            **others,
        },
        variant="ignore-result" if args.ignore_result else "",
    )
    emit(result, args.result)
    if args.keep:
        print(f"work dir kept: {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
