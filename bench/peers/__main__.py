"""python -m bench.peers [--quick] [--out DIR] [--jobs N --seconds S] [--only SYSTEM ...]

Runs the fire-lag workload on the schedulers a Python team would otherwise
pick and writes one bench/SCHEMA.md JSON per peer into --out:

  apscheduler-memory   APScheduler 3 BackgroundScheduler, MemoryJobStore
  apscheduler-sqlite   the same with SQLAlchemyJobStore on a temp SQLite file
  celery-redbeat       Celery beat + RedBeat + one Celery worker, private Redis

N jobs every second, no-op bodies that record their start. Each peer runs in
its own interpreter from bench/.venv-peers (created here on first use from
bench/peers/requirements.txt, so crontrio's .venv is never touched), one
after the other, never side by side.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
VENV = BENCH / ".venv-peers"
REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
STAMP = VENV / ".requirements.sha256"

PEERS: dict[str, list[str]] = {
    "apscheduler-memory": ["-m", "bench.peers.apscheduler_peer", "--store", "memory"],
    "apscheduler-sqlite": ["-m", "bench.peers.apscheduler_peer", "--store", "sqlite"],
    "celery-redbeat": ["-m", "bench.peers.celery_peer"],
}
FULL = {"jobs": 1000, "seconds": 60, "warmup": 5.0, "grace": 5.0}
QUICK = {"jobs": 50, "seconds": 8, "warmup": 1.0, "grace": 1.0}


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> Path:
    """Create or refresh bench/.venv-peers when requirements.txt changed."""
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    py = venv_python()
    if py.exists() and STAMP.exists() and STAMP.read_text().strip() == want:
        return py
    print(f"setting up {VENV.relative_to(REPO)} from {REQUIREMENTS.relative_to(REPO)} (one-time)...", file=sys.stderr, flush=True)
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        sys.stderr.write(pip.stdout + pip.stderr)
        raise SystemExit(f"pip install -r {REQUIREMENTS.relative_to(REPO)} into {VENV.relative_to(REPO)} failed")
    STAMP.write_text(want + "\n")
    return py


def default_out_dir(quick: bool) -> Path:
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    return BENCH / "results" / ("tmp/quick-" + date if quick else date)


def result_path(out_dir: Path, result: dict[str, Any]) -> Path:
    name = "-".join(p for p in (result["scenario"], result["system"], result["variant"]) if p)
    return out_dir / f"{name}.json"


def summary_line(result: dict[str, Any], path: Path) -> str:
    lag = result["lag_ms"]

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:g}"

    return (
        f"{result['system']}: run {result['firings_run']}/{result['firings_expected']} "
        f"misses {result['misses']} dup {result['duplicates']} "
        f"{fmt(result['firings_per_second'])}/s lag p50 {fmt(lag['p50'])} p95 {fmt(lag['p95'])} "
        f"p99 {fmt(lag['p99'])} max {fmt(lag['max'])} ms | cpu "
        + " ".join(f"{k} {v:g}s" for k, v in result["cpu_seconds"].items())
        + " | rss "
        + " ".join(f"{k} {v:g}MB" for k, v in result["peak_rss_mb"].items())
        + f" -> {path}"
    )


def run_peer(py: Path, system: str, size: dict[str, Any], out_dir: Path, keep: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        result_file = Path(tmp) / "result.json"
        argv = [
            str(py),
            *PEERS[system],
            "--jobs",
            str(size["jobs"]),
            "--seconds",
            str(size["seconds"]),
            "--warmup",
            str(size["warmup"]),
            "--grace",
            str(size["grace"]),
            "--result",
            str(result_file),
        ]
        if system.startswith("apscheduler-") and size.get("apscheduler_defaults"):
            argv.append("--apscheduler-defaults")
        if system == "celery-redbeat":
            argv += ["--keep"] if keep else []
            argv += ["--ignore-result"] if size.get("celery_ignore_result") else []
        budget = size["seconds"] + size["warmup"] + size["grace"] + 180
        proc = subprocess.run(argv, cwd=REPO, timeout=budget)
        if proc.returncode != 0 or not result_file.exists():
            raise RuntimeError(f"{system}: driver exited with {proc.returncode}")
        result: dict[str, Any] = json.loads(result_file.read_text())
    result["extra"]["command"] = " ".join([Path(sys.executable).name, "-m", "bench.peers", *sys.argv[1:]])
    result["extra"]["driver"] = " ".join(["bench/.venv-peers/bin/python", *PEERS[system]])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = result_path(out_dir, result)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(summary_line(result, path), flush=True)
    foreign = result["extra"].get("foreign_cpu_seconds_window", 0.0)
    if foreign > 0.1 * size["seconds"]:
        print(
            f"  warning: other processes used {foreign:g} CPU s during the {size['seconds']} s window "
            "(another benchmark running?): these numbers are suspect",
            file=sys.stderr,
            flush=True,
        )
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"{QUICK['jobs']} jobs x {QUICK['seconds']} s per peer")
    ap.add_argument("--out", type=Path, help="directory for the JSON files (default bench/results/<date>/)")
    ap.add_argument("--jobs", type=int, help=f"jobs, each firing every second (default {FULL['jobs']})")
    ap.add_argument("--seconds", type=int, help=f"measured window in whole seconds (default {FULL['seconds']})")
    ap.add_argument("--warmup", type=float, help="seconds after start-up before the window opens")
    ap.add_argument("--grace", type=float, help="seconds after the window closes during which late starts still count")
    ap.add_argument("--only", action="append", choices=sorted(PEERS), help="run only this peer (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the celery peer's work dir (logs)")
    ap.add_argument(
        "--apscheduler-defaults",
        action="store_true",
        help="run the APScheduler peers with APScheduler's own job defaults (misfire_grace_time=1, coalesce=True; "
        "variant 'apscheduler-defaults'); default: misfire_grace_time=60, coalesce=False, like crontrio",
    )
    ap.add_argument(
        "--celery-ignore-result",
        action="store_true",
        help="run celery-redbeat with task_ignore_result=True (variant 'ignore-result'); default stores results",
    )
    args = ap.parse_args(argv)

    size = dict(QUICK if args.quick else FULL)
    for key in ("jobs", "seconds", "warmup", "grace"):
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    size["celery_ignore_result"] = args.celery_ignore_result
    size["apscheduler_defaults"] = args.apscheduler_defaults
    out_dir = args.out or default_out_dir(args.quick)
    py = ensure_venv()

    failed = []
    t0 = time.monotonic()
    for system in args.only or list(PEERS):
        try:
            run_peer(py, system, size, out_dir, args.keep)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"{system}: FAILED: {exc}", file=sys.stderr, flush=True)
            failed.append(system)
    print(
        f"peers: {len(PEERS if not args.only else args.only) - len(failed)} ok, {len(failed)} failed "
        f"in {time.monotonic() - t0:.0f} s -> {out_dir}",
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
