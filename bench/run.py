"""crontrio benchmarks: one subcommand per scenario, plus `quick` and `all`.

    python -m bench.run fire_lag --jobs 1000 --seconds 60 --variant both
    python -m bench.run schedule_scale --jobs 100000
    python -m bench.run concurrency --runs 5000 --sleep 30
    python -m bench.run failover --jobs 200 --seconds 40
    python -m bench.run console_pages --jobs 100000 --runs 1000000
    python -m bench.run burst --jobs 10000 --executors 2 [--mode distributed] [--profile DIR]
    python -m bench.run quick --out DIR    # every scenario small (< 2 min), then the peers' quick mode
    python -m bench.run all --out DIR      # every scenario at its default size (tens of minutes)

Each scenario starts the real services as processes on free ports in a temp
dir, writes one JSON per result (bench/SCHEMA.md) to --out (default
bench/results/<UTC date>/), prints a one-line summary and stops everything,
also on Ctrl-C or an error. `python -m bench.run SCENARIO --help` lists its
parameters; each is also `python -m bench.SCENARIO`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import burst, concurrency, console_pages, failover, fire_lag, schedule_scale
from bench.harness import BENCH, REPO, cli, default_out_dir

SCENARIOS = {
    "fire_lag": fire_lag,
    "schedule_scale": schedule_scale,
    "concurrency": concurrency,
    "failover": failover,
    "console_pages": console_pages,
    "burst": burst,
}


def quick_plan(out: Path) -> list[tuple[str, Callable[[], Any]]]:
    """Every scenario small enough that all of them take under 2 minutes on 2 cores."""
    return [
        # Windows just long enough to show the behaviour (tests/e2e/test_bench_quick.py
        # runs this plan in the suite): the full plan measures, this one checks.
        ("fire_lag http", lambda: fire_lag.run("http", jobs=50, seconds=4, warmup=2, out_dir=out)),
        ("fire_lag shell", lambda: fire_lag.run("shell", jobs=50, seconds=4, warmup=2, out_dir=out)),
        ("schedule_scale", lambda: schedule_scale.run(jobs=5000, every_second=10, window=3, out_dir=out)),
        ("concurrency", lambda: concurrency.run(runs=300, sleep_seconds=3, out_dir=out)),
        ("failover", lambda: failover.run(jobs=30, seconds=9, warmup=2, seed=7, out_dir=out)),
        ("console_pages", lambda: console_pages.run("sqlite", jobs=2000, runs=20_000, requests=5, warmup=1, out_dir=out)),
        ("burst", lambda: burst.run("embedded", jobs=200, executors=2, lead=6, out_dir=out)),
    ]


def full_plan(out: Path) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("fire_lag http", lambda: fire_lag.run("http", out_dir=out)),
        ("fire_lag shell", lambda: fire_lag.run("shell", out_dir=out)),
        # The same with firings sent at their time (dispatch_ahead_ms = 0): what
        # the default of sending them 1 s ahead takes off the critical path.
        ("fire_lag http at-time", lambda: fire_lag.run("http", out_dir=out, dispatch_ahead_ms=0)),
        ("schedule_scale", lambda: schedule_scale.run(out_dir=out)),
        ("concurrency", lambda: concurrency.run(out_dir=out)),
        ("failover", lambda: failover.run(out_dir=out)),
        ("console_pages sqlite", lambda: console_pages.run("sqlite", out_dir=out)),
        ("console_pages mariadb", lambda: console_pages.run("mariadb", out_dir=out)),
        # The top-of-the-minute burst, with the peers' burst after it (their
        # rows sit next to crontrio's); then distributed, then 100,000 on 4 executors.
        ("burst embedded", lambda: burst.run("embedded", out_dir=out)),
        ("burst apscheduler", lambda: burst.run_peer("apscheduler-memory", out_dir=out)),
        ("burst celery-redbeat", lambda: burst.run_peer("celery-redbeat", out_dir=out)),
        ("burst distributed", lambda: burst.run("distributed", out_dir=out)),
        ("burst distributed kill", lambda: burst.run("distributed", kill_dispatcher=True, out_dir=out)),
        ("burst 100k", lambda: burst.run("embedded", jobs=100_000, executors=4, out_dir=out)),
    ]


def run_plan(plan: list[tuple[str, Callable[[], Any]]]) -> list[str]:
    """Runs every step even if one fails; returns the names of those that failed."""
    failed = []
    for name, step in plan:
        t = time.monotonic()
        try:
            step()
        except KeyboardInterrupt:
            raise
        except Exception:  # noqa: BLE001 - report it and go on with the other scenarios
            traceback.print_exc()
            print(f"bench: {name} FAILED", file=sys.stderr, flush=True)
            failed.append(name)
        else:
            print(f"bench: {name} took {time.monotonic() - t:.0f}s", file=sys.stderr, flush=True)
    return failed


def run_peers(out: Path, quick: bool) -> bool:
    """`python -m bench.peers [--quick] --out DIR` when bench/peers/ provides it; True unless it failed."""
    if not (BENCH / "peers" / "__main__.py").exists():
        print("bench: bench/peers/ has no entry point (bench/peers/__main__.py); skipping the peers", file=sys.stderr)
        return True
    argv = [sys.executable, "-m", "bench.peers", *(["--quick"] if quick else []), "--out", str(out)]
    print(f"bench: peers: {' '.join(argv)}", file=sys.stderr, flush=True)
    code = subprocess.call(argv, cwd=REPO)
    if code != 0:
        print(f"bench: peers FAILED (exit {code})", file=sys.stderr)
    return code == 0


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in SCENARIOS.items():
        p = sub.add_parser(
            name,
            help=(module.__doc__ or "").split("\n")[0],
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
    for name, what in (
        ("quick", "every scenario at a small size (under 2 minutes)"),
        ("all", "every scenario at its default size"),
    ):
        p = sub.add_parser(name, help=what, description=f"Run {what}, then the peers' benchmarks if bench/peers/ provides them.")
        p.add_argument("--out", type=Path, help="directory for the JSON files")
        p.add_argument("--no-peers", action="store_true", help="only crontrio, not `python -m bench.peers`")
    args = parser.parse_args(argv)

    if args.command in SCENARIOS:
        return int(SCENARIOS[args.command].main_args(args))
    quick = args.command == "quick"
    out = args.out or default_out_dir(quick)
    t = time.monotonic()
    failed = run_plan(quick_plan(out) if quick else full_plan(out))
    print(f"bench: crontrio {args.command} done in {time.monotonic() - t:.0f}s; results in {out}", file=sys.stderr, flush=True)
    peers_ok = True if args.no_peers else run_peers(out, quick)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or not peers_ok else 0


if __name__ == "__main__":
    sys.exit(main())
