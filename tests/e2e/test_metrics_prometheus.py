"""/metrics on the three services of a real trio, scraped by a real
Prometheus (Debian's package) and read back through its query API; and
every endpoint's output is valid for `promtool check metrics`."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing_support.servers import PrometheusServer, _binary
from testing_support.services import free_port, wait_for
from testing_support.trio import Trio, make_trio, stop_trio


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[tuple[Trio, dict[str, str]]]:
    """A trio with /metrics on free ports: {service: host:port}."""
    ports = {"dispatcher": free_port(), "executor": free_port()}
    trio = make_trio(
        tmp_path,
        extra={
            "dispatcher": {"metrics_listen": f"127.0.0.1:{ports['dispatcher']}"},
            "executor": {"metrics_listen": f"127.0.0.1:{ports['executor']}"},
            "monitor": {"metrics_refresh_seconds": "0.5"},
        },
    )
    http = next(line.split("=", 1)[1].strip() for line in trio.conf.read_text().splitlines() if line.startswith("http_listen"))
    endpoints = {
        "dispatcher": f"127.0.0.1:{ports['dispatcher']}",
        "executor": f"127.0.0.1:{ports['executor']}",
        "monitor": http,
    }
    try:
        yield trio, endpoints
    finally:
        stop_trio(trio)


def scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return str(reply.read().decode())


def sample(text: str, series: str) -> float | None:
    """The value of one series (name with labels, as printed) in a scrape."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_prometheus_scrapes_the_trio_and_answers_queries(metered: tuple[Trio, dict[str, str]], tmp_path: Path) -> None:
    trio, endpoints = metered
    for service in ("executor", "dispatcher", "monitor"):
        trio.start(service)
    added = trio.cronctl("job", "add", "--name", "tick", "--spec", "* * * * * *", "--command", "true")
    assert added.returncode == 0, added.stderr
    workdir = tmp_path / "prom"
    workdir.mkdir()
    prometheus = PrometheusServer(
        workdir,
        [
            {"job_name": "crontrio-monitor", "honor_labels": True, "static_configs": [{"targets": [endpoints["monitor"]]}]},
            {"job_name": "crontrio-dispatcher", "static_configs": [{"targets": [endpoints["dispatcher"]]}]},
            {"job_name": "crontrio-executor", "static_configs": [{"targets": [endpoints["executor"]]}]},
        ],
    ).start()
    try:

        def value(promql: str) -> float | None:
            result = prometheus.query(promql)
            return float(result[0]["value"][1]) if result else None  # type: ignore[index]

        wait_for(lambda: value('sum(up{job=~"crontrio-.*"})') == 3, 30, f"all three targets up: {prometheus.targets()}")
        wait_for(lambda: (value('crontrio_firings_total{outcome="fired"}') or 0) > 0, 30, "fired firings counted")
        wait_for(lambda: value("crontrio_executors_up") == 1, 30, "the monitor's view: one executor up")
        wait_for(lambda: value("crontrio_dispatchers_up") == 1, 30, "the monitor's view: one dispatcher up")
        wait_for(lambda: (value('crontrio_executor_runs_total{status="succeeded"}') or 0) > 0, 30, "executor runs counted")
        wait_for(lambda: (value('crontrio_runs_finished_total{status="succeeded"}') or 0) > 0, 30, "finished runs counted")
        wait_for(lambda: (value("crontrio_fire_lag_seconds_count") or 0) > 0, 30, "fire lag observed")
        # honor_labels: the crontrio job name stays in `job`.
        last = wait_for(lambda: value('crontrio_job_last_success_timestamp_seconds{job="tick"}'), 30, "tick's last success")
        newest = trio.sql("SELECT MAX(finished_ms) FROM runs WHERE job_name = 'tick' AND status = 'succeeded'")[0][0]
        assert abs(last - time.time()) < 60, last
        assert last <= int(newest) / 1000  # type: ignore[call-overload]
        status = prometheus.query('crontrio_job_last_status{job="tick"}')
        assert [r["metric"]["status"] for r in status] == ["succeeded"]  # type: ignore[index]
        next_fire = wait_for(lambda: value('crontrio_job_next_fire_timestamp_seconds{job="tick"}'), 30, "tick's next fire")
        assert abs(next_fire - time.time()) < 5, next_fire
        assert value("crontrio_scheduled_jobs") == 1
        # What deploy/prometheus/alerts.yml's rules compute from these series, with honor_labels.
        assert value('max by (job) (crontrio_job_next_fire_timestamp_seconds{job="tick"}) > bool 0') == 1  # job_scheduled
        assert prometheus.query('max by (job) (crontrio_job_last_status{status=~"failed|timeout|killed|lost"}) == 1') == []
    except AssertionError:
        print(prometheus.log())
        raise
    finally:
        prometheus.stop()


def test_promtool_accepts_every_endpoint(metered: tuple[Trio, dict[str, str]]) -> None:
    trio, endpoints = metered
    for service in ("executor", "dispatcher", "monitor"):
        trio.start(service)
    added = trio.cronctl("job", "add", "--name", "tick", "--spec", "* * * * * *", "--command", "false")
    assert added.returncode == 0, added.stderr
    # Values for every family: a failed run on each side, and per-job series.
    wait_for(lambda: sample(scrape(endpoints["executor"]), 'crontrio_executor_runs_total{status="failed"}'), 20, "a failed run")
    wait_for(lambda: sample(scrape(endpoints["dispatcher"]), 'crontrio_runs_finished_total{status="failed"}'), 20, "recorded")
    wait_for(lambda: sample(scrape(endpoints["monitor"]), 'crontrio_job_last_status{job="tick",status="failed"}'), 20, "status")
    tool = _binary("promtool", "prometheus")
    for service, address in endpoints.items():
        text = scrape(address)
        checked = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, f"{service}: {checked.stdout}{checked.stderr}\n{text}"
