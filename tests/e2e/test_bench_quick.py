"""The benchmarks' quick mode end to end (`make bench-quick` without the peers):
every crontrio scenario runs at its small size against real services and
writes a well-formed result (bench/SCHEMA.md) that shows correct behaviour.

Correctness only: nothing here depends on how fast this machine is.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from testing_support.services import REPO

# One group with the other cluster-sized tests: it loads both cores for about two minutes.
pytestmark = [pytest.mark.xdist_group("cluster"), pytest.mark.slow, pytest.mark.timeout(900)]

RESULT_FILES = {
    ("fire_lag", "http"): "fire_lag-crontrio-http.json",
    ("fire_lag", "shell"): "fire_lag-crontrio-shell.json",
    ("schedule_scale", ""): "schedule_scale-crontrio.json",
    ("concurrency", ""): "concurrency-crontrio.json",
    ("failover", ""): "failover-crontrio.json",
    ("console_pages", "sqlite"): "console_pages-crontrio-sqlite.json",
    ("burst", "embedded"): "burst-crontrio-embedded.json",
}
SCHEMA_KEYS = {
    "scenario",
    "system",
    "variant",
    "params",
    "machine",
    "started_at",
    "firings_expected",
    "firings_run",
    "duplicates",
    "misses",
    "firings_per_second",
    "lag_ms",
    "cpu_seconds",
    "peak_rss_mb",
    "extra",
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    out = tmp_path_factory.mktemp("bench-quick")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "quick", "--out", str(out), "--no-peers"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert proc.returncode == 0, f"bench quick failed:\n{proc.stdout}\n{proc.stderr[-8000:]}"
    found = {}
    for name in RESULT_FILES.values():
        path = out / name
        assert path.is_file(), f"{name} missing; wrote {sorted(p.name for p in out.iterdir())}\n{proc.stderr[-4000:]}"
        found[name] = json.loads(path.read_text())
    return out, found


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_every_scenario_writes_a_well_formed_result(results: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    _, found = results
    for (scenario, variant), name in RESULT_FILES.items():
        r = found[name]
        assert set(r) >= SCHEMA_KEYS, f"{name}: missing {SCHEMA_KEYS - set(r)}"
        assert (r["scenario"], r["system"], r["variant"]) == (scenario, "crontrio", variant)
        assert isinstance(r["params"], dict) and r["params"]
        assert {"cores", "memory_gb", "python", "kernel"} <= set(r["machine"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["started_at"])
        for key in ("firings_expected", "firings_run", "duplicates", "misses"):
            assert isinstance(r[key], int), f"{name}: {key} = {r[key]!r}"
        assert r["misses"] == r["firings_expected"] - r["firings_run"]
        assert r["firings_run"] > 0, name
        assert is_number(r["firings_per_second"]) and r["firings_per_second"] > 0
        assert set(r["lag_ms"]) == {"p50", "p95", "p99", "max"}
        assert all(is_number(v) for v in r["lag_ms"].values()), f"{name}: {r['lag_ms']}"
        assert r["lag_ms"]["p50"] <= r["lag_ms"]["p95"] <= r["lag_ms"]["p99"] <= r["lag_ms"]["max"]
        for key in ("cpu_seconds", "peak_rss_mb"):
            assert r[key] and all(is_number(v) and v >= 0 for v in r[key].values()), f"{name}: {key} = {r[key]}"
        assert isinstance(r["extra"], dict)


def test_fire_lag_runs_every_firing_exactly_once(results: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    _, found = results
    for variant in ("http", "shell"):
        r = found[f"fire_lag-crontrio-{variant}.json"]
        assert r["firings_expected"] == r["params"]["jobs"] * r["params"]["seconds"]
        assert r["duplicates"] == 0, r["extra"]
        assert r["misses"] == 0, r["extra"]
        assert set(r["extra"]["status_counts"]) == {"succeeded"}, r["extra"]["status_counts"]
        assert {"dispatcher", "executor"} <= set(r["cpu_seconds"])
    http = found["fire_lag-crontrio-http.json"]["extra"]["http"]
    # Every request the target saw belongs to exactly one started run.
    assert http["requests_total"] == http["runs_started_total"], http


def test_schedule_scale_loads_the_mix_and_fires_what_is_due(results: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    _, found = results
    r = found["schedule_scale-crontrio.json"]
    startup = r["extra"]["startup"]
    assert f"scheduler running with {r['params']['jobs']} jobs" in startup["scheduler_running_line"]
    assert startup["ready_s"] > 0 and startup["rss_mb_at_ready"] > 0
    assert r["extra"]["every_second_run"] == r["extra"]["every_second_expected"] > 0
    assert r["duplicates"] == 0 and r["misses"] == 0 and r["extra"]["unexpected_firings"] == 0


def test_concurrency_starts_and_finishes_every_run(results: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    _, found = results
    r = found["concurrency-crontrio.json"]
    extra = r["extra"]
    assert extra["all_started"] and r["firings_run"] == r["params"]["runs"]
    assert extra["all_finished"] and extra["all_succeeded"], extra["status_counts"]
    assert extra["failures"] == 0 and not extra["rpc_errors"]
    assert r["duplicates"] == 0
    assert extra["peak_fds"] > extra["fds_idle"] > 0
    assert extra["acked"] == r["params"]["runs"]
    # The CPU split: the shells are the executor's reaped children.
    assert extra["executor_cpu_children_s"] > 0
    assert 0 < extra["executor_cpu_own_to_last_start_s"] <= extra["executor_cpu_own_s"]


def test_failover_loses_and_doubles_nothing(results: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    _, found = results
    r = found["failover-crontrio.json"]
    extra = r["extra"]
    assert extra["killed"] in ("d1", "d2")
    assert r["duplicates"] == 0, extra
    assert r["misses"] == 0, extra
    assert extra["firings_after_kill_run"] == extra["firings_after_kill_expected"] > 0
    survivor = {"d1": "d2", "d2": "d1"}[extra["killed"]]
    assert set(extra["runs_after_kill_by_dispatcher"]) <= {survivor, extra["killed"]}


def test_console_pages_times_every_page_without_a_failure(results: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    _, found = results
    r = found["console_pages-crontrio-sqlite.json"]
    extra = r["extra"]
    assert not extra["failures"] and r["misses"] == 0, extra["failures"]
    assert {"dashboard", "jobs", "jobs deep page", "runs of a job", "runs failed", "job detail", "run detail"} <= set(
        extra["pages"]
    )
    assert r["firings_run"] == len(extra["pages"]) * r["params"]["requests"]
    for name, p in extra["pages"].items():
        assert 0 < p["p50"] <= p["p95"] <= p["max"], (name, p)
    assert extra["loaded"]["runs"] == r["params"]["runs"] and extra["loaded"]["jobs"] == r["params"]["jobs"]


def test_burst_runs_every_job_of_the_second_exactly_once(results: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    _, found = results
    r = found["burst-crontrio-embedded.json"]
    extra = r["extra"]
    assert r["firings_expected"] == r["params"]["jobs"] == extra["requests_total"] == extra["runs_started_db"]
    assert r["misses"] == 0 and r["duplicates"] == 0, extra
    assert extra["status_counts"] == {"succeeded": r["params"]["jobs"]}
    assert {"dispatcher", "executor1", "executor2"} <= set(extra["cpu_ms_per_firing"])


def test_report_writes_the_tables_between_its_markers(results: tuple[Path, dict[str, dict[str, Any]]], tmp_path: Path) -> None:
    out, _ = results
    output = tmp_path / "RESULTS.md"
    output.write_text("# Results\n\nanalysis before\n\n<!-- results:begin -->\nold\n<!-- results:end -->\n\nanalysis after\n")
    subprocess.run([sys.executable, "-m", "bench.report", str(out), "--output", str(output)], cwd=REPO, check=True, timeout=60)
    text = output.read_text()
    assert text.startswith("# Results\n\nanalysis before\n") and text.rstrip().endswith("analysis after")
    assert "old" not in text.split("<!-- results:begin -->")[1]
    for scenario in ("fire_lag", "burst", "schedule_scale", "concurrency", "failover", "console_pages"):
        assert f"### {scenario}" in text
    for name in RESULT_FILES.values():
        assert f"]({out / name})" in text or f"{name})" in text
