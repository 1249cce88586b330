"""deploy/prometheus/alerts.yml: valid for promtool, and its unit tests
(alerts_test.yml, synthetic series) pass, cover every alert both firing and
not firing, and fail when a rule is broken."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from testing_support.servers import _binary
from testing_support.services import REPO

RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "alerts_test.yml"
# The names issue 14 gives the services' metrics; the rules use no others.
METRICS = {
    "crontrio_firings_total",
    "crontrio_fire_lag_seconds",
    "crontrio_runs_finished_total",
    "crontrio_executors_up",
    "crontrio_dispatchers_up",
    "crontrio_job_last_success_timestamp_seconds",
    "crontrio_job_next_fire_timestamp_seconds",
    "crontrio_job_last_status",
}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    tool = _binary("promtool", "prometheus")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def alert_names(rules: str) -> list[str]:
    return re.findall(r"^\s+- alert: (\S+)$", rules, re.MULTILINE)


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_issues_alerts_exist_on_the_issues_metrics_only() -> None:
    rules = RULES.read_text()
    names = alert_names(rules)
    for wanted in (
        "CrontrioJobFailingRepeatedly",
        "CrontrioJobOverdue",
        "CrontrioMissedFirings",
        "CrontrioExecutorDown",
        "CrontrioFireLagHigh",
    ):
        assert wanted in names
    exprs = "\n".join(line for line in rules.splitlines() if not line.lstrip().startswith("#"))
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"\bcrontrio_[a-z_]+", exprs)}
    assert used == METRICS


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    tests = RULE_TESTS.read_text()
    silent = set(re.findall(r"- alertname: (\S+)\n\s+eval_time: \S+\n\s+exp_alerts: \[\]", tests))
    firing = set(re.findall(r"- alertname: (\S+)\n\s+eval_time: \S+\n\s+exp_alerts:\n\s+- exp_labels:", tests))
    for name in alert_names(RULES.read_text()):
        assert name in firing, f"{name} is never shown to fire"
        assert name in silent, f"{name} is never shown to stay silent"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # Failing after 30 periods instead of 3: the expected alerts do not come.
        (
            "crontrio:job_periods_without_success >= 3\n            and on (job) crontrio:job_failing",
            "crontrio:job_periods_without_success >= 30\n            and on (job) crontrio:job_failing",
        ),
        # Paused jobs no longer excluded from the overdue alert.
        (
            "unless on (job) crontrio:job_failing\n            and on (job) crontrio:job_scheduled",
            "unless on (job) crontrio:job_failing",
        ),
        # Paused jobs no longer excluded from the failing alert.
        (
            "and on (job) crontrio:job_failing\n            and on (job) crontrio:job_scheduled",
            "and on (job) crontrio:job_failing",
        ),
        # Missed firings judged on the wrong outcome.
        ('outcome="missed"', 'outcome="skipped"'),
        # Lag threshold of a minute: the lag alert never fires.
        ("rate(crontrio_fire_lag_seconds_bucket[5m]))) > 1", "rate(crontrio_fire_lag_seconds_bucket[5m]))) > 60"),
    ],
)
def test_the_rule_tests_fail_on_a_broken_rule(old: str, new: str, tmp_path: Path) -> None:
    rules = RULES.read_text()
    assert rules.count(old) == 1, old
    (tmp_path / "alerts.yml").write_text(rules.replace(old, new))
    shutil.copy(RULE_TESTS, tmp_path / "alerts_test.yml")
    assert promtool("check", "rules", "alerts.yml", cwd=tmp_path).returncode == 0  # still valid ...
    result = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0, result.stdout  # ... but wrong, and the tests say so


def test_check_rules_refuses_a_broken_expression(tmp_path: Path) -> None:
    broken = RULES.read_text().replace("max(crontrio_executors_up) == 0", "max(crontrio_executors_up == 0")
    (tmp_path / "alerts.yml").write_text(broken)
    assert promtool("check", "rules", str(tmp_path / "alerts.yml")).returncode != 0
