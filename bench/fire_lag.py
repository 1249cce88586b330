"""fire_lag: N jobs, each every second, for S seconds on 1 dispatcher + 1 executor
(embedded mode: SQLite, in-process claims). How late does each firing start,
and does every firing run exactly once?

Jobs are inserted with one bulk SQL transaction before the dispatcher starts.
Only whole seconds from a few seconds after the dispatcher serves (all jobs
loaded) count: the window [start, start + S s). For each firing (job,
scheduled second) in the window:

* run        = it has a run row whose started_ms (the executor's task start) is set
* lag        = runs.started_ms - runs.scheduled_ms
* duplicates = started rows beyond one per (job, scheduled second); for the http
               variant plus the requests the HTTP target got for a job beyond
               that job's run rows (over the whole run, so window edges do not
               matter; requests carry no run id, so this is a lower bound)
* misses     = expected (N x S) - run

Variants: `shell` runs `true`; `http` GETs a path of a raw asyncio HTTP server
(bench/httpsink.py, its own process). For http, extra.handler_lag_ms is the
lag as the HTTP handler saw it (arrivals matched to runs per job, in order).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench.harness import (
    Scenario,
    Service,
    cli,
    default_out_dir,
    embedded_conf,
    free_port,
    make_result,
    migrate,
    percentiles,
    scenario_cli,
    sleep_until_ms,
    summary_line,
    tcp_ready,
    wait_for,
    write_result,
)

SCENARIO = "fire_lag"
VARIANTS = ("http", "shell")


def insert_jobs(db: Path, rows: list[tuple[Any, ...]], columns: str) -> float:
    """Bulk insert in one transaction; returns the seconds it took."""
    t = time.monotonic()
    marks = ", ".join("?" for _ in columns.split(","))
    with sqlite3.connect(db, timeout=60) as conn:
        conn.executemany(f"INSERT INTO jobs ({columns}) VALUES ({marks})", rows)
    conn.close()
    return time.monotonic() - t


def count_started(db: Path, start_ms: int, end_ms: int) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        (n,) = conn.execute(
            "SELECT COUNT(DISTINCT job_id || ':' || scheduled_ms) FROM runs WHERE scheduled_ms >= ? AND scheduled_ms < ? "
            "AND started_ms > 0",
            (start_ms, end_ms),
        ).fetchone()
    conn.close()
    return int(n)


def wait_settled(count: Any, expected: int, idle_seconds: float = 5.0, limit_seconds: float = 90.0) -> int:
    """Poll `count()` until it reaches `expected` or stops growing for `idle_seconds`."""
    deadline = time.monotonic() + limit_seconds
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = int(count())
        if n >= expected:
            return n
        if n != last:
            last, last_change = n, time.monotonic()
        elif time.monotonic() - last_change >= idle_seconds:
            return n
        time.sleep(0.5)
    return last


class Profiler:
    """py-spy record (raw collapsed stacks) of some processes for a while, if py-spy is installed.

    seconds=None records until stop() (SIGINT, on which py-spy writes its
    output): for a scenario whose end is a condition, not a time (burst)."""

    def __init__(self, out_dir: Path, seconds: float | None, rate: int = 50) -> None:
        self.out_dir = out_dir
        self.seconds = seconds
        self.rate = rate
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")

    def start(self, targets: dict[str, int]) -> None:
        if not Path(self.binary).exists():
            print(f"fire_lag: --profile needs py-spy ({sys.executable} -m pip install py-spy); not profiling", file=sys.stderr)
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in targets.items():
            argv = [
                self.binary,
                "record",
                "--pid",
                str(pid),
                *(["--duration", str(math.ceil(self.seconds))] if self.seconds is not None else []),
                "--rate",
                str(self.rate),
            ]
            argv += ["--format", "raw", "--output", str(self.out_dir / f"{name}.txt"), "--nonblocking"]
            self.procs[name] = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        """Ends every recording now; py-spy writes what it has on SIGINT."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)

    def finish(self, limit: int = 12) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, proc in self.procs.items():
            try:
                # Stopped by SIGINT (seconds None), py-spy still has to write
                # minutes of stacks: a 100,000-job burst's took over 30 s.
                proc.wait(self.seconds + 30 if self.seconds is not None else 300)
            except subprocess.TimeoutExpired:
                proc.kill()
            path = self.out_dir / f"{name}.txt"
            if path.exists():
                out[name] = top_frames(path, limit)
        return out


PRODUCT_PACKAGES = ("dispatcher", "executor", "common", "monitor", "protos")
_LINE_NO = re.compile(r":\d+\)$")


def _package(frame: str) -> str:
    """'Connection.execute (sqlalchemy/engine/base.py)' -> 'sqlalchemy'; product code by module."""
    path = frame[frame.rfind("(") + 1 : -1].removeprefix("crontrio/")  # imported as crontrio.<pkg>
    parts = path.split("/")
    if parts[0] in PRODUCT_PACKAGES:
        return path.removesuffix(".py")
    return parts[0].removesuffix(".py")


def top_frames(path: Path, limit: int = 12) -> dict[str, Any]:
    """From py-spy's collapsed stacks (on-CPU samples of every thread): the
    functions with the most samples as the leaf (self), the leaf's package, and
    crontrio's own functions anywhere on the stack (inclusive). Time in C
    (sqlite3, grpc's Cython core) counts for the Python frame that called it."""
    own: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    product: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        total += count
        frames = [_LINE_NO.sub(")", f) for f in stack.split(";") if "(" in f]
        if not frames:
            continue
        own[frames[-1]] += count
        by_package[_package(frames[-1])] += count
        for f in set(frames):
            if _package(f).split("/")[0] in PRODUCT_PACKAGES:
                product[f] += count
    pct = lambda c: round(100 * c / total, 1) if total else 0.0  # noqa: E731
    return {
        "samples": total,
        "self_pct": {f: pct(c) for f, c in own.most_common(limit)},
        "self_by_package_pct": {f: pct(c) for f, c in by_package.most_common(limit)},
        "crontrio_inclusive_pct": {f: pct(c) for f, c in product.most_common(limit + 3)},
        "raw": str(path),
    }


def run(
    variant: str,
    jobs: int = 1000,
    seconds: int = 60,
    warmup: int = 3,
    out_dir: Path | None = None,
    keep: bool = False,
    log_level: str = "WARNING",
    record_batch_ms: int | None = None,
    profile_dir: Path | None = None,
    dispatch_ahead_ms: int | None = None,
) -> tuple[dict[str, Any], Path]:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}")
    out_dir = out_dir or default_out_dir()
    params: dict[str, Any] = {"jobs": jobs, "seconds": seconds, "warmup_seconds": warmup, "spec": "* * * * * *"}
    with Scenario(f"{SCENARIO}-{variant}", keep) as sc:
        dispatcher, executor = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        dispatcher_keys: dict[str, str] = {}
        if record_batch_ms is not None:
            dispatcher_keys["record_batch_ms"] = str(record_batch_ms)
        if dispatch_ahead_ms is not None:
            dispatcher_keys["dispatch_ahead_ms"] = str(dispatch_ahead_ms)
        extra_conf = {"dispatcher": dispatcher_keys} if dispatcher_keys else None
        conf = embedded_conf(sc.root, dispatcher, executor, log_level, extra_conf)
        params["record_batch_ms"] = record_batch_ms if record_batch_ms is not None else "default"
        params["dispatch_ahead_ms"] = dispatch_ahead_ms if dispatch_ahead_ms is not None else "default"
        params["log_level"] = log_level
        migrate(conf)

        sink_stats = sc.root / "sink.json"
        if variant == "http":
            port = free_port()
            sink = sc.start(
                Service(
                    "httpsink",
                    [sys.executable, "-m", "bench.httpsink", "--port", str(port), "--stats", str(sink_stats)],
                    sc.root,
                    sc.root / "httpsink.log",
                )
            )
            wait_for(lambda: sink.alive() and tcp_ready(port), 20, "the HTTP sink")
            rows = [(f"bench-{i:05d}", "* * * * * *", "http", f"http://127.0.0.1:{port}/j/{i}") for i in range(jobs)]
        else:
            rows = [(f"bench-{i:05d}", "* * * * * *", "shell", "true") for i in range(jobs)]
        insert_seconds = insert_jobs(sc.root / "crontrio.db", rows, "name, spec, type, command")

        ex = sc.start(Service.crontrio("executor", conf))
        ex.wait_serving(executor)
        t_spawn = time.time()
        disp = sc.start(Service.crontrio("dispatcher", conf))
        t_ready = disp.wait_serving(dispatcher, timeout=120)  # it serves once every job is loaded
        start_ms = (math.ceil(t_ready) + warmup) * 1000
        end_ms = start_ms + seconds * 1000
        procs = {"dispatcher": disp, "executor": ex} | ({"httpsink": sc.services["httpsink"]} if variant == "http" else {})

        sleep_until_ms(start_ms)
        before = {n: p.stats() for n, p in procs.items()}
        profiler = Profiler(profile_dir / variant, seconds) if profile_dir else None
        if profiler:
            profiler.start({"dispatcher": disp.pid, "executor": ex.pid})
        sleep_until_ms(end_ms)
        after = {n: p.stats() for n, p in procs.items()}
        expected = jobs * seconds
        settled = wait_settled(lambda: count_started(sc.root / "crontrio.db", start_ms, end_ms), expected)
        settle_ms = int(time.time() * 1000) - end_ms
        final = {n: p.stats() for n, p in procs.items()}
        profile = profiler.finish() if profiler else {}
        problems = sc.log_problems()
        disp.stop()
        ex.stop()

        with sqlite3.connect(sc.root / "crontrio.db") as conn:
            all_rows = conn.execute("SELECT job_id, scheduled_ms, attempt, status, started_ms FROM runs").fetchall()
            names = dict(conn.execute("SELECT id, name FROM jobs").fetchall())
        conn.close()

        handler: dict[str, Any] = {}
        http_dups = 0
        started_all = [r for r in all_rows if r[4] > 0]
        if variant == "http":
            sc.services["httpsink"].stop()
            sink_data = json.loads(sink_stats.read_text())
            requests = int(sink_data["requests"])
            http_dups = http_duplicates(sink_data["arrivals"], all_rows, names)
            handler = handler_lag(sink_data["arrivals"], started_all, names, start_ms, end_ms)
            handler.update(
                {
                    "requests_total": requests,
                    "runs_started_total": len(started_all),
                    "run_rows_total": len(all_rows),
                    # Requests the target got for runs whose row never says
                    # "started" (the dispatcher gave up on the stream, or was
                    # stopped before recording it): executed, not recorded.
                    "requests_beyond_started_runs": max(0, requests - len(started_all)),
                }
            )

    in_window = [r for r in all_rows if start_ms <= r[1] < end_ms]
    first_start: dict[tuple[int, int], int] = {}
    started_rows = 0
    for job_id, sched, _attempt, _status, started in in_window:
        if started > 0:
            started_rows += 1
            key = (job_id, sched)
            first_start[key] = min(started, first_start.get(key, started))
    lags = [started - sched for (_job, sched), started in first_start.items()]
    cpu_window = {
        n: round(100 * (a["cpu"] - b["cpu"]) / seconds, 1)
        for n in procs
        if (a := after.get(n)) is not None and (b := before.get(n)) is not None
    }
    extra: dict[str, Any] = {
        "window_ms": [start_ms, end_ms],
        "duplicates_db": started_rows - len(first_start),
        "duplicates_http": http_dups,
        "status_counts": dict(Counter(r[3] for r in in_window)),
        "jobs_insert_seconds": round(insert_seconds, 2),
        "dispatcher_start_to_serving_s": round(t_ready - t_spawn, 2),
        "settle_after_window_ms": settle_ms,
        "started_when_settled": settled,
        "cpu_percent_in_window": cpu_window,
        "cpu_seconds_incl_startup": {n: round(s["cpu"], 2) for n, s in final.items() if s},
        "threads": {n: int(s["threads"]) for n, s in final.items() if s},
        "log_warnings_errors": problems,
        "lag_distribution_ms": lag_histogram(lags),
    }
    if handler:
        extra["handler_lag_ms"] = handler.pop("lag_ms")
        extra["http"] = handler
    if profile:
        extra["py_spy_top"] = profile
    stats = {n: final[n] for n in ("dispatcher", "executor")}
    if variant == "http":
        stats["httpsink"] = final["httpsink"]
    # An explicit dispatch_ahead_ms is its own row (and file).
    row = variant
    if dispatch_ahead_ms is not None:
        row += f"-ahead{dispatch_ahead_ms}" if dispatch_ahead_ms else "-at-time"
    result = make_result(
        SCENARIO,
        row,
        params,
        sc.started_at,
        expected=expected,
        run=len(first_start),
        duplicates=started_rows - len(first_start) + http_dups,
        window_seconds=seconds,
        lags_ms=lags,
        stats=stats,
        extra=extra,
    )
    path = write_result(out_dir, result)
    print(summary_line(result, path), flush=True)
    return result, path


def lag_histogram(lags: list[int]) -> dict[str, int]:
    edges = [10, 25, 50, 100, 250, 500, 1000, 2000, 5000]
    out: dict[str, int] = {}
    for lag in lags:
        label = next((f"<{e}" for e in edges if lag < e), f">={edges[-1]}")
        out[label] = out.get(label, 0) + 1
    return {label: out[label] for label in [f"<{e}" for e in edges] + [f">={edges[-1]}"] if label in out}


def _path_of(name: str) -> str:
    return "/j/" + (name.rsplit("-", 1)[1].lstrip("0") or "0")


def http_duplicates(arrivals: dict[str, list[int]], rows: list[tuple[Any, ...]], names: dict[int, str]) -> int:
    """Requests beyond the run rows of their job, summed over jobs.

    A request carries no run id, only its job's path, and every firing
    attempt has exactly one run row, whatever its status; so a job whose
    target got more requests than it has rows certainly ran some firing twice.
    A lower bound: a duplicate hidden behind a recorded-but-never-executed row
    is not seen."""
    rows_per_path: Counter[str] = Counter(_path_of(names[r[0]]) for r in rows)
    return sum(max(0, len(seen) - rows_per_path.get(path, 0)) for path, seen in arrivals.items())


def handler_lag(
    arrivals: dict[str, list[int]], started: list[tuple[Any, ...]], names: dict[int, str], start_ms: int, end_ms: int
) -> dict[str, Any]:
    """Arrival at the HTTP handler - scheduled time, per firing in the window.

    Requests carry no run id, so a job's arrivals are matched to its started
    runs in order; a job whose counts differ (a duplicate or a lost request)
    is left out and counted."""
    runs_by_job: dict[int, list[int]] = defaultdict(list)
    for job_id, sched, *_ in started:
        runs_by_job[job_id].append(sched)
    lags: list[int] = []
    unmatched_jobs = 0
    for job_id, scheds in runs_by_job.items():
        seen = sorted(arrivals.get(_path_of(names[job_id]), []))
        if len(seen) != len(scheds):
            unmatched_jobs += 1
            continue
        lags.extend(a - s for s, a in zip(sorted(scheds), seen, strict=True) if start_ms <= s < end_ms)
    return {"lag_ms": {k: v for k, v in percentiles(lags).items()}, "jobs_not_matched": unmatched_jobs}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--variant", choices=[*VARIANTS, "both"], default="both", help="task kind (default: both, one result each)"
    )
    parser.add_argument("--jobs", type=int, default=1000, help="jobs, each '* * * * * *' (default 1000)")
    parser.add_argument("--seconds", type=int, default=60, help="measured window in seconds (default 60)")
    parser.add_argument("--warmup", type=int, default=3, help="whole seconds skipped after the dispatcher serves (default 3)")
    parser.add_argument("--record-batch-ms", type=int, default=None, help="[dispatcher] record_batch_ms (default: the product's)")
    parser.add_argument(
        "--dispatch-ahead-ms", type=int, default=None, help="[dispatcher] dispatch_ahead_ms (default: the product's, 1000)"
    )
    parser.add_argument("--log-level", default="WARNING", help="[log] level of the services (default WARNING)")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="py-spy the dispatcher and executor during the window into DIR"
    )
    parser.add_argument("--out", type=Path, help="directory for the JSON (default bench/results/<UTC date>)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (conf, database, logs)")


def main_args(args: argparse.Namespace) -> int:
    variants = VARIANTS if args.variant == "both" else (args.variant,)
    for variant in variants:
        run(
            variant,
            args.jobs,
            args.seconds,
            args.warmup,
            args.out,
            args.keep,
            args.log_level,
            args.record_batch_ms,
            args.profile,
            args.dispatch_ahead_ms,
        )
    return 0


@cli
def main(argv: list[str] | None = None) -> int:
    return scenario_cli("python -m bench.fire_lag", __doc__, add_arguments, main_args, argv)


if __name__ == "__main__":
    raise SystemExit(main())
