"""Stdlib-only helpers shared by the peer drivers (they run in bench/.venv-peers,
which has none of crontrio's packages) and by `python -m bench.peers`.

The numbers are computed the way bench/harness.py computes crontrio's, so the
JSON files land side by side: nearest-rank percentiles rounded to 0.1 ms,
cpu = utime+stime+cutime+cstime from /proc/<pid>/stat, peak RSS = VmHWM.

Body starts are recorded as one line `job,scheduled_ms,sent_ms,started_ms`
written with a single os.write() on an O_APPEND file per process: a few
microseconds a firing, no buffer to flush, nothing lost if a process is
killed. `sent_ms` is empty where there is no separate send step.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCENARIO = "fire_lag"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
CPU_NOTE = (
    "cpu_seconds = utime+stime+cutime+cstime from /proc/<pid>/stat read at the end of the collection "
    "tail, just before the process was stopped (whole process life, start-up included); "
    "extra.cpu_seconds_window is the same counter's increase over the measured window only"
)


# ------------------------------------------------------------------ recording


class Recorder:
    """Appends body-start lines to `<dir>/starts-<pid>.csv`; safe across fork
    (reopens in a child) and threads (one os.write per line)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = str(directory)
        self._pid = -1
        self._fd = -1
        self._lock = threading.Lock()

    def record(self, job: int, scheduled_ms: float | None, sent_ms: float | None = None) -> None:
        started_ms = time.time() * 1000.0
        pid = os.getpid()
        if self._pid != pid:
            with self._lock:  # the first firings may start on several pool threads at once
                if self._pid != pid:
                    self._fd = os.open(
                        os.path.join(self.directory, f"starts-{pid}.csv"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
                    )
                    self._pid = pid  # only once the fd is there
        sched = "" if scheduled_ms is None else f"{scheduled_ms:.3f}"
        sent = "" if sent_ms is None else f"{sent_ms:.3f}"
        os.write(self._fd, f"{job},{sched},{sent},{started_ms:.3f}\n".encode())


def read_starts(directory: str | os.PathLike[str]) -> list[tuple[int, float | None, float | None, float]]:
    rows: list[tuple[int, float | None, float | None, float]] = []
    for path in sorted(Path(directory).glob("starts-*.csv")):
        for line in path.read_text().splitlines():
            job, sched, sent, started = line.split(",")
            rows.append((int(job), float(sched) if sched else None, float(sent) if sent else None, float(started)))
    return rows


# ------------------------------------------------------------------ /proc


def proc_stats(pid: int) -> dict[str, float] | None:
    """CPU seconds and peak/current RSS of a live process; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/status", "rb") as f:
            status = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = stat[stat.rfind(b")") + 2 :].split()
    utime, stime, cutime, cstime = (int(x) / _CLK_TCK for x in rest[11:15])
    mem: dict[str, float] = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "Threads"):
            parts = value.split()
            mem[key] = float(parts[0]) / (1024 if key != "Threads" else 1)
    return {
        "cpu": utime + stime + cutime + cstime,
        "hwm_mb": mem.get("VmHWM", 0.0),
        "rss_mb": mem.get("VmRSS", 0.0),
        "threads": mem.get("Threads", 0.0),
    }


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def userspace_cpu(exclude: set[int]) -> dict[int, float]:
    """utime+stime of every user-space process on the machine but `exclude` and
    kernel threads (children of kthreadd, pid 2)."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in exclude or name == "2":
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        rest = stat[stat.rfind(b")") + 2 :].split()
        if int(rest[1]) == 2:
            continue
        out[int(name)] = (int(rest[11]) + int(rest[12])) / _CLK_TCK
    return out


class Contamination:
    """What else the machine did during the measured window.

    `foreign_cpu_seconds_window`: CPU of user-space processes other than the
    peer's (another benchmark, a test suite); anything above a few seconds
    makes the numbers suspect. `machine_other_busy_seconds_window`: all busy
    CPU time but the peer's processes', kernel threads and interrupts included
    (the SQLite peer's fsyncs land there as journaling and block-I/O work).
    """

    def __init__(self, ours: set[int]) -> None:
        self.ours = ours
        self.busy0 = machine_busy_seconds()
        self.procs0 = userspace_cpu(ours)

    def finish(self, window_cpu: dict[str, float]) -> dict[str, float]:
        busy1 = machine_busy_seconds()
        procs1 = userspace_cpu(self.ours)
        foreign = sum(cpu - self.procs0.get(pid, 0.0) for pid, cpu in procs1.items())
        return {
            "foreign_cpu_seconds_window": round(max(0.0, foreign), 2),
            "machine_other_busy_seconds_window": round(max(0.0, busy1 - self.busy0 - sum(window_cpu.values())), 2),
        }


def child_pids(pid: int) -> list[int]:
    """Direct children of a process (scans /proc: no /proc/<pid>/task/*/children needed)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        rest = stat[stat.rfind(b")") + 2 :].split()
        if int(rest[1]) == pid:
            out.append(int(name))
    return sorted(out)


def machine_info() -> dict[str, Any]:
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpu": cpu,
    }


def utc_now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sleep_until(t_s: float) -> None:
    while True:
        delay = t_s - time.time()
        if delay <= 0:
            return
        time.sleep(min(delay, 0.5))


# ------------------------------------------------------------------ numbers


def percentiles(values: Iterable[float]) -> dict[str, float | None]:
    """p50/p95/p99 (nearest rank) and max, rounded to 0.1; None when empty."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p95": None, "p99": None, "max": None}

    def rank(p: float) -> float:
        return round(float(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]), 1)

    return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "max": round(float(ordered[-1]), 1)}


def score(starts: Iterable[tuple[int, float, float]], jobs: int, window_start_s: int, seconds: int) -> dict[str, Any]:
    """Firings, duplicates, misses and lag for (job, scheduled_ms, started_ms) body starts.

    The window is the whole seconds [window_start_s, window_start_s + seconds);
    a start counts for the (job, second) its scheduled time falls in. Lag is
    taken from the first start of each pair; later ones are duplicates.
    """
    lo_ms, hi_ms = window_start_s * 1000, (window_start_s + seconds) * 1000
    first: dict[tuple[int, int], float] = {}
    duplicates = 0
    outside = 0
    for job, sched_ms, started_ms in starts:
        if not (lo_ms <= sched_ms < hi_ms) or not (0 <= job < jobs):
            outside += 1
            continue
        key = (job, int(sched_ms // 1000))
        lag = started_ms - sched_ms
        if key in first:
            duplicates += 1
            first[key] = min(first[key], lag)
        else:
            first[key] = lag
    expected = jobs * seconds
    run = len(first)
    # Does lag stay put or grow? p50 lag and firings per slice of the window.
    step = max(1, math.ceil(seconds / 6))
    slices: dict[int, list[float]] = {}
    for (_job, sec), lag in first.items():
        slices.setdefault((sec - window_start_s) // step, []).append(lag)
    trend = [
        {
            "from_s": k * step,
            "to_s": min(seconds, (k + 1) * step),
            "firings": len(slices.get(k, [])),
            "lag_p50_ms": percentiles(slices.get(k, []))["p50"],
        }
        for k in range(math.ceil(seconds / step))
    ]
    return {
        "firings_expected": expected,
        "firings_run": run,
        "duplicates": duplicates,
        "misses": expected - run,
        "firings_per_second": round(run / seconds, 1) if seconds > 0 else None,
        "lag_ms": percentiles(first.values()),
        "starts_outside_window": outside,
        "trend": trend,
    }


def make_result(
    system: str,
    params: dict[str, Any],
    started_at: str,
    scored: dict[str, Any],
    stats: dict[str, dict[str, float] | None],
    extra: dict[str, Any],
    variant: str = "",
) -> dict[str, Any]:
    """One result object in the bench/SCHEMA.md format."""
    extra = {
        "cpu_note": CPU_NOTE,
        "starts_outside_window": scored["starts_outside_window"],
        "window_trend": scored["trend"],
        **extra,
    }
    return {
        "scenario": SCENARIO,
        "system": system,
        "variant": variant,
        "params": params,
        "machine": machine_info(),
        "started_at": started_at,
        "firings_expected": scored["firings_expected"],
        "firings_run": scored["firings_run"],
        "duplicates": scored["duplicates"],
        "misses": scored["misses"],
        "firings_per_second": scored["firings_per_second"],
        "lag_ms": scored["lag_ms"],
        "cpu_seconds": {name: round(s["cpu"], 2) for name, s in stats.items() if s},
        "peak_rss_mb": {name: round(s["hwm_mb"], 1) for name, s in stats.items() if s},
        "extra": extra,
    }


def cpu_window(before: dict[str, dict[str, float] | None], after: dict[str, dict[str, float] | None]) -> dict[str, float]:
    out = {}
    for name, a in after.items():
        b = before.get(name)
        if a and b:
            out[name] = round(a["cpu"] - b["cpu"], 2)
    return out


def emit(result: dict[str, Any], path: str | None) -> None:
    """Drivers hand their result back as JSON in a file (stdout is left to the libraries)."""
    text = json.dumps(result, indent=2) + "\n"
    if path:
        Path(path).write_text(text)
    else:
        print(text, end="")
