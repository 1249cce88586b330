"""What every scenario shares: service processes in a temp dir that are always
stopped, /proc readings (CPU, peak RSS, fds), percentiles, and the result file.

Services are started as `python -m <service> -c conf.ini` by the tests' own
launcher (`Service` is a testing_support.services.ChildProcess; write_conf,
free_port, is_serving and wait_for are shared too), with two additions a
benchmark needs: a raised open-files limit for the
child, and PR_SET_PDEATHSIG so a bench that is killed outright does not leave
services running.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import math
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from bench import ORIGINAL_ENVIRON
from crontrio.common.clock import now_ms
from testing_support.cluster import distributed_sections
from testing_support.servers import EtcdServer, MariaDBServer, RedisServer
from testing_support.services import ChildProcess, free_port, is_serving, wait_for, write_conf

__all__ = [
    "REPO",
    "Scenario",
    "Service",
    "cli",
    "embedded_conf",
    "free_port",
    "is_serving",
    "machine_info",
    "make_result",
    "migrate",
    "now_ms",
    "percentiles",
    "proc_stats",
    "scenario_cli",
    "sleep_until_ms",
    "wait_for",
    "write_conf",
    "write_result",
]

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
SYSTEM = "crontrio"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1
CPU_NOTE = (
    "cpu_seconds = utime+stime+cutime+cstime from /proc/<pid>/stat read just before the process was stopped; "
    "cutime/cstime count its reaped children (the executor's shell tasks), so shell work is included"
)


def sleep_until_ms(t_ms: float) -> None:
    delay = (t_ms - time.time() * 1000) / 1000
    if delay > 0:
        time.sleep(delay)


def utc_date() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")


def utc_now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_out_dir(quick: bool = False) -> Path:
    """bench/results/<UTC date>/, or bench/results/tmp/quick-<date>/ (git-ignored) for quick runs."""
    return BENCH / "results" / ("tmp/quick-" + utc_date() if quick else utc_date())


# ------------------------------------------------------------------ /proc


def proc_stats(pid: int) -> dict[str, float] | None:
    """CPU seconds (own and reaped children's), peak and current RSS, open fds;
    None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/status", "rb") as f:
            status = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Fields after "(comm)": state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    rest = stat[stat.rfind(b")") + 2 :].split()
    utime, stime, cutime, cstime = (int(x) / _CLK_TCK for x in rest[11:15])
    mem: dict[str, float] = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "Threads"):
            parts = value.split()
            mem[key] = float(parts[0]) / (1024 if key != "Threads" else 1)
    return {
        "cpu_own": utime + stime,
        "cpu_children": cutime + cstime,
        "cpu": utime + stime + cutime + cstime,
        "hwm_mb": mem.get("VmHWM", 0.0),
        "rss_mb": mem.get("VmRSS", 0.0),
        "threads": mem.get("Threads", 0.0),
        "fds": float(count_fds(pid)),
    }


def count_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0


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


# ------------------------------------------------------------------ numbers


def percentiles(values: Iterable[float]) -> dict[str, float | None]:
    """p50/p95/p99 (nearest rank) and max, in the values' unit; None when empty."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p95": None, "p99": None, "max": None}

    def rank(p: float) -> float:
        return float(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)])

    return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "max": float(ordered[-1])}


def make_result(
    scenario: str,
    variant: str,
    params: dict[str, Any],
    started_at: str,
    *,
    expected: int,
    run: int,
    duplicates: int,
    window_seconds: float,
    lags_ms: Iterable[float],
    stats: dict[str, dict[str, float] | None],
    extra: dict[str, Any],
) -> dict[str, Any]:
    """One result object in the bench/SCHEMA.md format."""
    cpu = {name: round(s["cpu"], 2) for name, s in stats.items() if s}
    rss = {name: round(s["hwm_mb"], 1) for name, s in stats.items() if s}
    extra = {"command": command_line(), "cpu_note": CPU_NOTE, **extra}
    return {
        "scenario": scenario,
        "system": SYSTEM,
        "variant": variant,
        "params": params,
        "machine": machine_info(),
        "started_at": started_at,
        "firings_expected": expected,
        "firings_run": run,
        "duplicates": duplicates,
        "misses": expected - run,
        "firings_per_second": round(run / window_seconds, 1) if window_seconds > 0 else None,
        "lag_ms": {k: (round(v, 1) if v is not None else None) for k, v in percentiles(lags_ms).items()},
        "cpu_seconds": cpu,
        "peak_rss_mb": rss,
        "extra": extra,
    }


def command_line() -> str:
    """How this bench was started, e.g. `python -m bench.run fire_lag --jobs 50`."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    argv = ["python", "-m", spec.name, *sys.argv[1:]] if spec is not None else ["python", *sys.argv]
    return " ".join(shlex.quote(a) for a in argv)


def write_result(out_dir: Path, result: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "-".join(p for p in (result["scenario"], result["system"], result["variant"]) if p)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def summary_line(result: dict[str, Any], path: Path) -> str:
    lag = result["lag_ms"]
    label = "/".join(p for p in (result["scenario"], result["variant"]) if p)
    fmt = lambda v: "-" if v is None else f"{v:g}"  # noqa: E731
    return (
        f"{label}: run {result['firings_run']}/{result['firings_expected']} "
        f"misses {result['misses']} dup {result['duplicates']} "
        f"{fmt(result['firings_per_second'])}/s lag p50 {fmt(lag['p50'])} p95 {fmt(lag['p95'])} "
        f"p99 {fmt(lag['p99'])} max {fmt(lag['max'])} ms | cpu "
        + " ".join(f"{k} {v:g}s" for k, v in result["cpu_seconds"].items())
        + " | rss "
        + " ".join(f"{k} {v:g}MB" for k, v in result["peak_rss_mb"].items())
        + f" -> {path}"
    )


# ------------------------------------------------------------------ processes


def _preexec(nofile: int) -> Callable[[], None]:
    libc = ctypes.CDLL(None, use_errno=True)

    def setup() -> None:
        # Die with the bench: a bench killed with SIGKILL must not leave services behind.
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if nofile:
            _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, max(nofile, hard)))
            except (ValueError, OSError):  # not root: as high as the hard limit allows
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(nofile, hard), hard))

    return setup


class Service(ChildProcess):
    """A benchmarked child: the tests' launcher (testing_support.services.ChildProcess)
    in the bench's environment, dying with the bench, with its /proc readings."""

    def __init__(
        self, name: str, argv: list[str], cwd: Path, log_path: Path, env: dict[str, str] | None = None, nofile: int = 0
    ) -> None:
        self.name = name
        self.started = time.time()
        super().__init__(argv, cwd, log_path, {**ORIGINAL_ENVIRON, "PYTHONUNBUFFERED": "1", **(env or {})}, _preexec(nofile))
        self.last_stats: dict[str, float] | None = None

    @classmethod
    def crontrio(cls, service: str, conf: Path, name: str = "", env: dict[str, str] | None = None, nofile: int = 0) -> Service:
        name = name or service
        return cls(
            name,
            [sys.executable, "-m", f"crontrio.{service}", "-c", str(conf)],
            conf.parent,
            conf.parent / f"{name}.log",
            env,
            nofile,
        )

    def stats(self) -> dict[str, float] | None:
        """Reads /proc now; remembers the last successful reading."""
        s = proc_stats(self.pid) if self.alive() else None
        if s is not None:
            self.last_stats = s
        return self.last_stats

    def wait_serving(self, address: str, timeout: float = 60.0, interval: float = 0.05) -> float:
        """Wait until grpc.health.v1 says SERVING; returns that moment (time.time())."""

        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_text()[-4000:]}")
            return is_serving(address)

        try:
            wait_for(ready, timeout, f"{self.name} on {address} to serve", interval)
        except AssertionError as exc:
            raise RuntimeError(f"{exc}\n{self.name} log:\n{self.log_text()[-4000:]}") from None
        return time.time()

    def stop(self, timeout: float = 20.0, kill_wait: float = 10.0) -> int:
        """SIGTERM and wait; SIGKILL if it does not stop."""
        return super().stop(timeout, kill_wait)

    def kill(self, wait: float = 10.0) -> None:
        super().kill(wait)


def migrate(conf: Path) -> None:
    """Create the schema, as an operator would (`python -m crontrio.monitor migrate`)."""
    subprocess.run(
        [sys.executable, "-m", "crontrio.monitor", "-c", str(conf), "migrate"],
        cwd=conf.parent,
        check=True,
        timeout=120,
        env={**ORIGINAL_ENVIRON, "PYTHONPATH": str(REPO) + os.pathsep + ORIGINAL_ENVIRON.get("PYTHONPATH", "")},
        capture_output=True,
    )


def distributed_conf(
    root: Path, mariadb: MariaDBServer, redis: RedisServer, etcd: EtcdServer, database: str, log_level: str
) -> Path:
    """conf.ini for distributed mode on the private MariaDB, Redis and etcd
    (testing_support/servers.py): executors found in etcd, a quick monitor."""
    return write_conf(root, distributed_sections(mariadb.database_config(database), redis, etcd, log_level))


def embedded_conf(
    root: Path, dispatcher: str, executor: str, log_level: str, extra: dict[str, dict[str, str]] | None = None
) -> Path:
    """conf.ini for one dispatcher + one executor on SQLite, in-process claims, static executor list."""
    return write_conf(
        root,
        {
            "database": {"driver": "sqlite", "path": str(root / "crontrio.db")},
            # /metrics on, as deployed (its cost is part of what is measured), on free ports.
            "dispatcher": {
                "listen": dispatcher,
                "executors": executor,
                "shutdown_grace_seconds": "5",
                "metrics_listen": f"127.0.0.1:{free_port()}",
            },
            "executor": {
                "listen": executor,
                "journal": str(root / "journal.db"),
                "shutdown_grace_seconds": "5",
                "metrics_listen": f"127.0.0.1:{free_port()}",
            },
            "monitor": {"http_listen": ""},
            "log": {"level": log_level},
        },
        extra,
    )


def tcp_ready(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


class _Interrupted(KeyboardInterrupt):
    pass


def cli(main: Callable[[list[str] | None], int]) -> Callable[..., int]:
    """A command's main(): Ctrl-C or SIGTERM ends it with exit 130 and a line
    instead of a traceback (the services are stopped by then)."""

    def wrapped(argv: list[str] | None = None) -> int:
        try:
            return main(argv)
        except KeyboardInterrupt:
            print("bench: interrupted; every service it started is stopped", file=sys.stderr)
            return 130

    return wrapped


def scenario_cli(
    prog: str,
    doc: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    main_args: Callable[[argparse.Namespace], int],
    argv: list[str] | None,
) -> int:
    """The body of every scenario module's own main(): `python -m bench.<scenario>`."""
    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return main_args(parser.parse_args(argv))


class Scenario:
    """A temp dir plus everything to undo at the end, also on Ctrl-C, SIGTERM or an error.

    The temp dir (configs, databases, service logs) is removed after a clean
    run and kept, with its path printed, after a failure or with keep=True.
    """

    def __init__(self, name: str, keep: bool = False) -> None:
        self.name = name
        self.keep = keep
        self.root = Path(tempfile.mkdtemp(prefix=f"crontrio-bench-{name}-"))
        self.started_at = utc_now_iso()
        self.services: dict[str, Service] = {}
        self._cleanups: list[Callable[[], object]] = []
        self._old_term: Any = None

    def __enter__(self) -> Scenario:
        def on_term(_signum: int, _frame: FrameType | None) -> None:
            raise _Interrupted

        self._old_term = signal.signal(signal.SIGTERM, on_term)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        # Users of a service stop before it: cleanups run newest first.
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception as err:  # noqa: BLE001 - keep undoing the rest
                print(f"bench {self.name}: cleanup failed: {err!r}", file=sys.stderr)
        signal.signal(signal.SIGTERM, self._old_term)
        if exc_type is not None or self.keep:
            print(f"bench {self.name}: logs and data kept in {self.root}", file=sys.stderr)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def on_exit(self, fn: Callable[[], object]) -> None:
        self._cleanups.append(fn)

    def start(self, service: Service) -> Service:
        self.services[service.name] = service
        self.on_exit(service.stop)
        return service

    def stats(self, *names: str) -> dict[str, dict[str, float] | None]:
        return {n: self.services[n].stats() for n in (names or tuple(self.services))}

    def log_problems(self) -> dict[str, int]:
        """How many WARNING/ERROR/CRITICAL lines each crontrio service logged."""
        out = {}
        for name, svc in self.services.items():
            text = svc.log_text()
            levels = (" WARNING ", " ERROR ", " CRITICAL ")
            out[name] = sum(1 for line in text.splitlines() if any(lvl in line for lvl in levels))
        return out
