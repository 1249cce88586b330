"""schedule_scale: a dispatcher that starts on 100,000 enabled jobs.

The jobs (inserted with bulk SQL) mix every spec form crontrio accepts:
5 and 6 fields, macros, @every, H, L, n#k, month and weekday names, steps and
ranges, in ~20 IANA time zones (half-hour and 45-minute offsets, southern
DST, no DST). A handful of every-second jobs are among them so that there is
something to fire in a short window.

Measured:
* start-up: from spawning the dispatcher until it answers health SERVING and
  until its log says "scheduler running with N jobs" (the log line's own
  timestamp); also when it logged "loaded N jobs". Its RSS at that moment.
* lag (executor task start - scheduled) of the every-second jobs during a
  short window, and of every other job that happens to fire in it
  (extra.lag_all_ms). firings_expected counts all jobs' firings in the window,
  computed afterwards with common.cron (the product's own cron math:
  it checks "nothing was dropped", not the cron math itself).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import re
import sqlite3
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.fire_lag import count_started, insert_jobs, wait_settled
from bench.harness import (
    Scenario,
    Service,
    cli,
    default_out_dir,
    embedded_conf,
    free_port,
    is_serving,
    make_result,
    migrate,
    percentiles,
    scenario_cli,
    sleep_until_ms,
    summary_line,
    write_result,
)

SCENARIO = "schedule_scale"
ZONES = (
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "Europe/Moscow",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "America/St_Johns",
    "Asia/Tokyo",
    "Asia/Shanghai",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tehran",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Africa/Cairo",
    "Africa/Johannesburg",
)
_LOG_TIME = re.compile(rb"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def spec_mix(rng: random.Random) -> str:
    """One spec of the mix; weights keep whole-hour bursts small, as on real fleets."""
    m, h, s = rng.randrange(60), rng.randrange(24), rng.randrange(60)
    d = rng.randrange(1, 29)
    forms: list[tuple[int, str]] = [
        (14, f"{m} {h} * * *"),  # daily, 5 fields
        (10, f"{s} {m} {h} * * *"),  # daily, 6 fields (seconds first)
        (8, "H H * * *"),
        (8, "H * * * *"),  # hourly at a minute of its own
        (6, f"{m} {h} * * MON-FRI"),
        (5, f"{m} {h} * JAN,APR,JUL,OCT MON"),
        (5, f"{m} {h} {d} * *"),
        (4, f"{m} {h} L * *"),
        (4, f"{m} {h} * * 5L"),
        (4, f"{m} {h} * * TUE#2"),
        (4, f"*/15 {h} * * *"),
        (4, f"{m} */2 * * *"),
        (4, f"0 {m} 9-17 * * MON-FRI"),
        (4, "H(0-29) H(9-17) * * MON-FRI"),
        (3, "H H/4 * * *"),
        (3, f"{m} {h} 1 */3 *"),
        (2, rng.choice(["@daily", "@midnight", "@weekly", "@monthly", "@yearly"])),
        (1, "@hourly"),
        (2, rng.choice(["@every 1h30m", "@every 2h", "@every 6h", "@every 45m", "@every 1d"])),
        (3, f"{s} {m} {h} {d} * *"),
        (2, f"{m} {h} {d} JUN-AUG *"),
    ]
    total = sum(w for w, _ in forms)
    pick = rng.randrange(total)
    for weight, spec in forms:
        if pick < weight:
            return spec
        pick -= weight
    raise AssertionError("unreachable")


def make_jobs(count: int, every_second: int, seed: int) -> list[tuple[str, str, str, str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        if i < every_second:
            rows.append((f"tick-{i:03d}", "* * * * * *", "UTC", "shell", "true"))
        else:
            rows.append((f"job-{i:06d}", spec_mix(rng), rng.choice(ZONES), "shell", "true"))
    return rows


class LogWatch:
    """Reads a growing log file incrementally and finds the first line matching a pattern."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""
        self.found: dict[bytes, bytes] = {}
        self.first_line: bytes = b""

    def poll(self, patterns: tuple[bytes, ...]) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        self.offset += len(chunk)
        lines = (self.rest + chunk).split(b"\n")
        self.rest = lines.pop()
        for line in lines:
            if not self.first_line and _LOG_TIME.match(line):
                self.first_line = line
            for p in patterns:
                if p not in self.found and p in line:
                    self.found[p] = line


def log_time(line: bytes) -> float | None:
    """The asctime of a service log line (local time, as logging writes it) as epoch seconds."""
    match = _LOG_TIME.match(line)
    if not match:
        return None
    return dt.datetime.strptime(match.group(1).decode(), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def run(
    jobs: int = 100_000,
    every_second: int = 10,
    window: int = 10,
    seed: int = 1,
    out_dir: Path | None = None,
    keep: bool = False,
    log_level: str = "INFO",
) -> tuple[dict[str, Any], Path]:
    out_dir = out_dir or default_out_dir()
    params: dict[str, Any] = {
        "jobs": jobs,
        "every_second_jobs": every_second,
        "window_seconds": window,
        "zones": len(ZONES),
        "seed": seed,
        "log_level": log_level,
    }
    running_pat, loaded_pat = b"scheduler running with", b"job_sync: loaded "
    with Scenario(SCENARIO, keep) as sc:
        dispatcher, executor = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        conf = embedded_conf(sc.root, dispatcher, executor, log_level)
        migrate(conf)
        rows = make_jobs(jobs, every_second, seed)
        insert_seconds = insert_jobs(sc.root / "crontrio.db", rows, "name, spec, timezone, type, command")

        ex = sc.start(Service.crontrio("executor", conf, env={"CRONTRIO_LOG_LEVEL": "WARNING"}))
        ex.wait_serving(executor)
        t_spawn = time.time()
        disp = sc.start(Service.crontrio("dispatcher", conf))
        watch = LogWatch(disp.log_path)
        t_serving: float | None = None
        rss_at_ready: dict[str, float] | None = None
        deadline = time.monotonic() + 600
        want_log = log_level.upper() in ("DEBUG", "INFO")
        while time.monotonic() < deadline:
            if not disp.alive():
                raise RuntimeError(f"dispatcher exited:\n{disp.log_text()[-4000:]}")
            if t_serving is None:
                try:
                    if is_serving(dispatcher):
                        t_serving = time.time()
                except Exception:  # noqa: BLE001 - not listening yet
                    pass
            if want_log:
                watch.poll((running_pat, loaded_pat))
            if t_serving is not None and (running_pat in watch.found or not want_log):
                rss_at_ready = disp.stats()
                break
            time.sleep(0.02)
        if t_serving is None or rss_at_ready is None:
            raise RuntimeError(f"dispatcher not ready within 600 s:\n{disp.log_text()[-4000:]}")
        t_running = log_time(watch.found[running_pat]) if running_pat in watch.found else None
        t_loaded = log_time(watch.found[loaded_pat]) if loaded_pat in watch.found else None
        t_first_log = log_time(watch.first_line) if watch.first_line else None
        t_ready = max(t_serving, t_running or 0.0)

        start_ms = (math.ceil(t_ready) + 1) * 1000
        end_ms = start_ms + window * 1000
        sleep_until_ms(start_ms)
        before = {"dispatcher": disp.stats(), "executor": ex.stats()}
        sleep_until_ms(end_ms)
        after = {"dispatcher": disp.stats(), "executor": ex.stats()}
        db = sc.root / "crontrio.db"
        wait_settled(lambda: count_started(db, start_ms, end_ms), every_second * window, idle_seconds=3)
        final = {"dispatcher": disp.stats(), "executor": ex.stats()}
        problems = sc.log_problems()
        disp.stop(60)
        ex.stop()
        with sqlite3.connect(db) as conn:
            run_rows = conn.execute(
                "SELECT job_id, scheduled_ms, started_ms, status FROM runs WHERE scheduled_ms >= ? AND scheduled_ms < ?",
                (start_ms, end_ms),
            ).fetchall()
            ids = dict(conn.execute("SELECT name, id FROM jobs").fetchall())
        conn.close()

    # What should have fired in the window, by the product's own cron math.
    from crontrio.common.cron import CronSchedule

    expected: set[tuple[int, int]] = set()
    for name, spec, tz, _type, _cmd in rows:
        cron = CronSchedule.parse(spec, tz, hash_key=name)
        t = cron.next_after(start_ms - 1)
        while t is not None and t < end_ms:
            expected.add((ids[name], t))
            t = cron.next_after(t)
    tick_ids = {ids[name] for name, *_ in rows[:every_second]}
    first: dict[tuple[int, int], int] = {}
    started_rows = 0
    for job_id, sched, started, _status in run_rows:
        if started > 0:
            started_rows += 1
            first[(job_id, sched)] = min(started, first.get((job_id, sched), started))
    run_pairs = set(first) & expected
    tick_lags = [started - sched for (job, sched), started in first.items() if job in tick_ids]
    all_lags = [started - sched for (_job, sched), started in first.items()]
    extra: dict[str, Any] = {
        "startup": {
            "spawn_to_first_log_s": round(t_first_log - t_spawn, 2) if t_first_log else None,
            "spawn_to_loaded_log_s": round(t_loaded - t_spawn, 2) if t_loaded else None,
            "spawn_to_serving_s": round(t_serving - t_spawn, 2),
            "spawn_to_scheduler_running_log_s": round(t_running - t_spawn, 2) if t_running else None,
            "ready_s": round(t_ready - t_spawn, 2),
            "rss_mb_at_ready": round(rss_at_ready["rss_mb"], 1),
            "peak_rss_mb_at_ready": round(rss_at_ready["hwm_mb"], 1),
            "cpu_seconds_at_ready": round(rss_at_ready["cpu"], 2),
            "scheduler_running_line": watch.found.get(running_pat, b"").decode(errors="replace")[-120:],
        },
        "window_ms": [start_ms, end_ms],
        "every_second_expected": every_second * window,
        "every_second_run": sum(1 for job, _ in first if job in tick_ids),
        "other_jobs_firings_in_window": len(expected) - every_second * window,
        "unexpected_firings": len(set(first) - expected),
        "lag_all_ms": percentiles(all_lags),
        "status_counts": dict(Counter(r[3] for r in run_rows)),
        "jobs_insert_seconds": round(insert_seconds, 2),
        "spec_forms": len({spec for _n, spec, *_ in rows}),
        "cpu_percent_in_window": {
            n: round(100 * (after[n]["cpu"] - before[n]["cpu"]) / window, 1)  # type: ignore[index]
            for n in before
            if before[n] and after[n]
        },
        "log_warnings_errors": problems,
    }
    result = make_result(
        SCENARIO,
        "",
        params,
        sc.started_at,
        expected=len(expected),
        run=len(run_pairs),
        duplicates=started_rows - len(first),
        window_seconds=window,
        lags_ms=tick_lags,
        stats=final,
        extra=extra,
    )
    path = write_result(out_dir, result)
    print(summary_line(result, path) + f" | ready in {extra['startup']['ready_s']}s", flush=True)
    return result, path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=100_000, help="enabled jobs in all (default 100000)")
    parser.add_argument(
        "--every-second", type=int, default=10, help="of them, '* * * * * *' jobs whose lag is reported (default 10)"
    )
    parser.add_argument("--window", type=int, default=10, help="seconds measured after the dispatcher is ready (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the spec/time-zone mix (default 1)")
    parser.add_argument(
        "--log-level", default="INFO", help="dispatcher [log] level (default INFO: the start-up line is an INFO line)"
    )
    parser.add_argument("--out", type=Path, help="directory for the JSON (default bench/results/<UTC date>)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (conf, database, logs)")


def main_args(args: argparse.Namespace) -> int:
    run(args.jobs, args.every_second, args.window, args.seed, args.out, args.keep, args.log_level)
    return 0


@cli
def main(argv: list[str] | None = None) -> int:
    return scenario_cli("python -m bench.schedule_scale", __doc__, add_arguments, main_args, argv)


if __name__ == "__main__":
    sys.exit(main())
