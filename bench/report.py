"""Write the result tables of bench/RESULTS.md from results directories.

    python -m bench.report [DIR ...] [--output bench/RESULTS.md]

Reads every *.json (bench/SCHEMA.md) in the given directories (default: the
newest bench/results/<date>/), crontrio's and the peers' alike, and writes
the machine, dates, commands and one table per scenario, systems side by
side, each row linking its raw JSON. Only the text between
`<!-- results:begin -->` and `<!-- results:end -->` is replaced, so the
analysis written around it stays; a missing file is created with the markers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import BENCH

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
SCENARIO_ORDER = ("fire_lag", "burst", "schedule_scale", "concurrency", "failover", "console_pages")
TITLES = {
    "fire_lag": "fire_lag — N every-second jobs, 1 scheduler + 1 worker",
    "burst": "burst — N HTTP jobs due at the same second (lag at the HTTP sink)",
    "schedule_scale": "schedule_scale — start-up on a large job table",
    "concurrency": "concurrency — thousands of `sleep` runs at once on one worker",
    "failover": "failover — one of two schedulers killed with SIGKILL mid-run",
    "console_pages": "console_pages — web console pages and JSON API on a large history (ms per request)",
}


def load(dirs: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for d in dirs:
        for path in sorted(d.glob("*.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                print(f"report: skipping {path}: {exc}", file=sys.stderr)
                continue
            if isinstance(data, dict) and "scenario" in data and "system" in data:
                out.append((path, data))
    return out


def dig(data: dict[str, Any], *paths: str) -> Any:
    """The first of the dotted paths present in `data` (None if none is)."""
    for dotted in paths:
        value: Any = data
        for key in dotted.split("."):
            if not isinstance(value, dict) or key not in value:
                value = None
                break
            value = value[key]
        if value is not None:
            return value
    return None


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def per_process(values: dict[str, Any] | None) -> str:
    if not values:
        return "–"
    return "<br>".join(f"{name} {fmt(v)}" for name, v in values.items())


PARAM_KEYS = (
    "jobs",
    "seconds",
    "runs",
    "command",
    "window_seconds",
    "every_second_jobs",
    "dispatchers",
    "executors",
    "channels",
)
Column = tuple[str, Callable[[dict[str, Any]], Any]]

COMMON_HEAD: list[Column] = [
    ("system", lambda d: d.get("system")),
    ("variant", lambda d: d.get("variant") or "–"),
    ("params", lambda d: ", ".join(f"{k}={v}" for k, v in (d.get("params") or {}).items() if k in PARAM_KEYS)),
]
COUNTS: list[Column] = [
    ("expected", lambda d: d.get("firings_expected")),
    ("run", lambda d: d.get("firings_run")),
    ("misses", lambda d: d.get("misses")),
    ("dup", lambda d: d.get("duplicates")),
]
LAG: list[Column] = [
    ("lag p50 ms", lambda d: dig(d, "lag_ms.p50")),
    ("p95", lambda d: dig(d, "lag_ms.p95")),
    ("p99", lambda d: dig(d, "lag_ms.p99")),
    ("max", lambda d: dig(d, "lag_ms.max")),
]
RESOURCES: list[Column] = [
    ("CPU s", lambda d: per_process(d.get("cpu_seconds"))),
    ("peak RSS MB", lambda d: per_process(d.get("peak_rss_mb"))),
]
COLUMNS: dict[str, list[Column]] = {
    "fire_lag": [
        *COMMON_HEAD,
        *COUNTS,
        ("firings/s", lambda d: d.get("firings_per_second")),
        *LAG,
        # The request's arrival at the HTTP server: crontrio http rows only.
        ("at server p50 ms", lambda d: dig(d, "extra.handler_lag_ms.p50")),
        ("at server p99", lambda d: dig(d, "extra.handler_lag_ms.p99")),
        *RESOURCES,
    ],
    "burst": [
        *COMMON_HEAD,
        *COUNTS,
        *LAG,
        ("CPU ms per firing", lambda d: per_process(dig(d, "extra.cpu_ms_per_firing"))),
        ("load avg 1 min", lambda d: (dig(d, "extra.loadavg_before") or [None])[0]),
        *RESOURCES,
    ],
    "schedule_scale": [
        *COMMON_HEAD,
        ("ready s", lambda d: dig(d, "extra.startup.ready_s", "extra.ready_s", "extra.startup_s")),
        ("RSS at ready MB", lambda d: dig(d, "extra.startup.rss_mb_at_ready", "extra.rss_mb_at_ready")),
        *COUNTS,
        *LAG,
        *RESOURCES,
    ],
    "concurrency": [
        *COMMON_HEAD,
        ("all started", lambda d: dig(d, "extra.all_started")),
        ("last started s", lambda d: dig(d, "extra.time_to_last_started_s")),
        ("all finished", lambda d: dig(d, "extra.all_finished")),
        ("failures", lambda d: dig(d, "extra.failures")),
        ("peak fds", lambda d: dig(d, "extra.peak_fds")),
        ("start lag p50 ms", lambda d: dig(d, "lag_ms.p50")),
        ("p99", lambda d: dig(d, "lag_ms.p99")),
        *RESOURCES,
    ],
    "failover": [
        *COMMON_HEAD,
        *COUNTS,
        ("killed at s", lambda d: dig(d, "extra.kill_at_s_into_window")),
        ("lag after kill p50 ms", lambda d: dig(d, "extra.lag_after_kill_ms.p50", "lag_ms.p50")),
        ("p99", lambda d: dig(d, "extra.lag_after_kill_ms.p99", "lag_ms.p99")),
        ("longest after kill", lambda d: dig(d, "extra.longest_lag_after_kill_ms", "lag_ms.max")),
        *RESOURCES,
    ],
    "console_pages": [
        *COMMON_HEAD,
        ("requests", lambda d: d.get("firings_run")),
        ("failed", lambda d: d.get("misses")),
        ("all pages p50 ms", lambda d: dig(d, "lag_ms.p50")),
        ("p95", lambda d: dig(d, "lag_ms.p95")),
        ("max", lambda d: dig(d, "lag_ms.max")),
        ("worst page p95", lambda d: max((p["p95"] for p in (dig(d, "extra.pages") or {}).values()), default=None)),
        ("over 300 ms p95", lambda d: ", ".join(dig(d, "extra.over_target") or []) or "none"),
        *RESOURCES,
    ],
}


def table(scenario: str, results: list[tuple[Path, dict[str, Any]]], output: Path) -> list[str]:
    columns = COLUMNS.get(scenario, [*COMMON_HEAD, *COUNTS, *LAG, *RESOURCES])
    # crontrio first, then the peers, each by variant.
    results = sorted(results, key=lambda r: (r[1].get("system") != "crontrio", r[1].get("system", ""), r[1].get("variant", "")))
    lines = [
        "| " + " | ".join(name for name, _ in columns) + " | raw |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for path, data in results:
        link = os.path.relpath(path, output.parent)
        cells = [fmt(get(data)) for _name, get in columns]
        lines.append("| " + " | ".join(cells) + f" | [{path.name}]({link}) |")
    return lines


def render(results: list[tuple[Path, dict[str, Any]]], output: Path) -> str:
    lines = [BEGIN, "<!-- generated by `python -m bench.report`; edit outside the markers -->", ""]
    if not results:
        return "\n".join([*lines, "_No results found._", "", END])
    machine = results[0][1].get("machine", {})
    dates = sorted(d.get("started_at", "") for _, d in results if d.get("started_at"))
    lines += [
        f"**Machine:** {machine.get('cores', '?')} cores"
        + (f" ({machine['cpu']})" if machine.get("cpu") else "")
        + f", {machine.get('memory_gb', '?')} GB RAM, Python {machine.get('python', '?')}, Linux {machine.get('kernel', '?')}  ",
        f"**Date:** {dates[0]} – {dates[-1]} (UTC)  " if dates else "**Date:** ?  ",
        "**Command:** `make bench` (crontrio: `python -m bench.run all`; peers: `python -m bench.peers`); "
        "each row's exact command is in its JSON (`extra.command`).",
        "",
    ]
    by_scenario: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for path, data in results:
        by_scenario.setdefault(data["scenario"], []).append((path, data))
    for scenario in [*SCENARIO_ORDER, *sorted(set(by_scenario) - set(SCENARIO_ORDER))]:
        if scenario not in by_scenario:
            continue
        lines += [f"### {TITLES.get(scenario, scenario)}", "", *table(scenario, by_scenario[scenario], output), ""]
    lines += [
        "Lag = task body start − scheduled time (ms). crontrio's lag is the executor's task start "
        "(`runs.started_ms`); its http rows also give the lag at the HTTP handler in `extra.handler_lag_ms`. "
        "CPU includes reaped child processes (shell tasks). Failover lag is over the firings after the kill.",
        "",
        END,
    ]
    return "\n".join(lines)


def write(output: Path, block: str) -> None:
    if output.exists():
        text = output.read_text()
        pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
        text = pattern.sub(lambda _m: block, text, count=1) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    else:
        text = "# crontrio benchmark results\n\n" + block + "\n"
    output.write_text(text)


def newest_results_dir() -> Path | None:
    dated = sorted(p for p in (BENCH / "results").glob("20*") if p.is_dir())
    return dated[-1] if dated else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dirs", nargs="*", type=Path, help="results directories (default: the newest bench/results/<date>/)")
    parser.add_argument("--output", type=Path, default=BENCH / "RESULTS.md", help="the file to write (default bench/RESULTS.md)")
    args = parser.parse_args(argv)
    dirs = args.dirs or [d for d in [newest_results_dir()] if d is not None]
    if not dirs:
        print("report: no results directory given or found under bench/results/", file=sys.stderr)
        return 2
    results = load([d.resolve() for d in dirs])
    output = args.output.resolve()
    write(output, render(results, output))
    print(f"report: {len(results)} results from {', '.join(map(str, dirs))} -> {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
