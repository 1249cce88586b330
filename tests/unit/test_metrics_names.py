"""Every crontrio_* series deploy/prometheus/alerts.yml reads is exported by
a service, under that name, with the labels the rules use."""

from __future__ import annotations

import re
from typing import Any, cast

from prometheus_client import generate_latest

from crontrio.common.cron import CronSchedule
from crontrio.dispatcher.metrics import DispatcherMetrics
from crontrio.executor.metrics import ExecutorMetrics
from crontrio.monitor.metrics import JobSnapshot, JobStats, MonitorMetrics, _JobState, render_per_job
from testing_support.services import REPO

RULES = REPO / "deploy" / "prometheus" / "alerts.yml"


def exported(text: str) -> dict[str, set[str]]:
    """Series name -> its label names, from a scrape."""
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        name, _, rest = line.partition("{")
        name = name.split(" ")[0]
        labels = set(re.findall(r'(\w+)="', rest.partition("}")[0])) if rest else set()
        out.setdefault(name, set()).update(labels)
    return out


def all_exported() -> dict[str, set[str]]:
    dispatcher, executor = DispatcherMetrics(), ExecutorMetrics()
    dispatcher.fire_lag.observe(0.01)
    stats = JobStats(cast(Any, None))
    cron = CronSchedule.parse("* * * * * *", "UTC")
    stats.snapshot = JobSnapshot({1: _JobState("j", (1, True, "* * * * * *", "UTC"), True, cron, 2000)}, {1: 1000}, {1: "failed"})
    monitor = MonitorMetrics(executors_up=lambda: 1, dispatchers_up=lambda: 1, firings_missed=lambda: 0, stats=stats)
    names: dict[str, set[str]] = {}
    texts = [generate_latest(r).decode() for r in (dispatcher.registry, executor.registry, monitor.registry)]
    for text in [*texts, render_per_job(stats.snapshot).decode()]:
        for name, labels in exported(text).items():
            names.setdefault(name, set()).update(labels)
    return names


def test_the_alert_rules_read_only_series_the_services_export() -> None:
    names = all_exported()
    used = set(re.findall(r"\b(crontrio_[a-z_]+)", RULES.read_text()))
    assert used, "no crontrio_ series found in alerts.yml"
    # A histogram's name (in the header) stands for its _bucket/_sum/_count series.
    missing = sorted(n for n in used if n not in names and f"{n}_bucket" not in names)
    assert not missing, f"alerts.yml reads series no service exports: {missing}"
    assert "outcome" in names["crontrio_firings_total"]
    assert "status" in names["crontrio_runs_finished_total"]
    assert names["crontrio_job_last_status"] == {"job", "status"}
    assert "le" in names["crontrio_fire_lag_seconds_bucket"]


def test_every_metric_the_issue_names_is_exported() -> None:
    names = all_exported()
    for wanted in (
        "crontrio_firings_total",
        "crontrio_fire_lag_seconds_bucket",
        "crontrio_runs_finished_total",
        "crontrio_scheduled_jobs",
        "crontrio_executor_runs_running",
        "crontrio_executor_runs_total",
        "crontrio_executor_run_duration_seconds_bucket",
        "crontrio_executor_journal_unacked",
        "crontrio_executors_up",
        "crontrio_dispatchers_up",
        "crontrio_job_last_success_timestamp_seconds",
        "crontrio_job_next_fire_timestamp_seconds",
        "crontrio_job_last_status",
    ):
        assert wanted in names, wanted
