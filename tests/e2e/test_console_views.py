"""The console's read views on a real trio: charts as server-rendered SVG,
the dashboard's next and missed firings, run and audit filters, the
executors page and the time zone switch."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from testing_support.services import wait_for
from testing_support.trio import Trio
from tests.e2e.console_helpers import (  # fixtures
    admin,
    admin_password,
    api,
    browser_login,
    console_trio,
    url,
)

__all__ = ["admin", "api", "console_trio", "url"]
pytestmark = pytest.mark.xdist_group("console")


def run_and_wait(api: httpx.Client, job: str, outcome: str) -> str:
    run_id = str(api.post(f"/jobs/{job}/run").json()["firstRunId"])
    wait_for(lambda: api.get(f"/runs/{run_id}").json().get("status") == outcome, 30, f"{job} to end {outcome}")
    return run_id


@pytest.fixture(scope="module")
def history(api: httpx.Client) -> dict[str, str]:
    """chart-job: a success then a failure; one run of berlin-job."""
    assert api.post("/jobs", json={"name": "chart-job", "spec": "@yearly", "command": "sleep 0.3"}).status_code == 201
    first = run_and_wait(api, "chart-job", "succeeded")
    assert api.patch("/jobs/chart-job", json={"command": "false"}).status_code == 200
    second = run_and_wait(api, "chart-job", "failed")
    body = {"name": "berlin-job", "spec": "30 2 * * *", "timezone": "Europe/Berlin", "command": "true"}
    assert api.post("/jobs", json=body).status_code == 201
    third = run_and_wait(api, "berlin-job", "succeeded")
    return {"first": first, "second": second, "third": third}


def test_the_job_page_charts_its_runs_oldest_first(admin: httpx.Client, history: dict[str, str]) -> None:
    page = admin.get("/jobs/chart-job").text
    chart = re.search(r'<svg class="chart".*?</svg>', page, re.S)
    assert chart, "no chart"
    bars = re.findall(r'<rect class="c-(\w+)"[^>]*height="([\d.]+)"><title>([^<]*)</title>', chart.group(0))
    assert [(status, title.split(" ")[0]) for status, _, title in bars] == [
        ("succeeded", history["first"]),
        ("failed", history["second"]),
    ]
    assert float(bars[0][1]) > float(bars[1][1])  # the 0.3 s run is the taller bar
    assert "<script" not in chart.group(0)


def test_the_dashboard_counts_the_days_runs_and_lists_the_next_firings(
    admin: httpx.Client, api: httpx.Client, history: dict[str, str]
) -> None:
    assert (
        api.post("/jobs", json={"name": "every-minute", "spec": "0 * * * * *", "command": "true", "paused": True}).status_code
        == 201
    )
    assert api.post("/jobs", json={"name": "new-year", "spec": "0 0 1 1 *", "command": "true"}).status_code == 201
    page = admin.get("/").text
    counts = dict(re.findall(r'data-outcome="(\w+)">(\d+)<', page))
    runs = api.get("/runs", params={"pageSize": "500"}).json()["runs"]
    assert int(counts["succeeded"]) == sum(r["status"] == "succeeded" for r in runs) == 2
    assert int(counts["failed"]) == sum(r["status"] == "failed" for r in runs) == 1
    upcoming = re.search(r'id="upcoming">(.*?)</section>', page, re.S)
    assert upcoming
    names = re.findall(r'<a href="/jobs/[^"]+">([^<]+)</a>', upcoming.group(1))
    # Soonest first; paused jobs never fire.
    assert {"berlin-job", "new-year"} <= set(names) and "every-minute" not in names
    next_ms = [int(api.get(f"/jobs/{name}").json()["nextFireMs"]) for name in names]
    assert next_ms == sorted(next_ms)
    assert re.search(r"berlin-job</a> [\d: -]+ Europe/Berlin <span class=\"muted\">[\d: -]+ UTC", upcoming.group(1))
    assert 'id="missed"' in page


def test_runs_filtered_by_executor_and_time(console_trio: Trio, admin: httpx.Client, history: dict[str, str]) -> None:
    def listed(**params: str) -> set[str]:
        return set(re.findall(r'<a href="/runs/([^"]+)">', admin.get("/runs", params=params).text))

    everything = {history["first"], history["second"], history["third"]}
    assert listed(executor=console_trio.executor, job="chart-job") == {history["first"], history["second"]}
    assert listed(executor="elsewhere:1") == set()
    assert listed(job="chart-job", status="failed") == {history["second"]}
    assert everything <= listed(since="2000-01-01T00:00")
    assert listed(since="2999-01-01T00:00") == set()
    assert listed(until="2000-01-01T00:00") == set()


def test_audit_filtered_by_actor_and_action(admin: httpx.Client, history: dict[str, str]) -> None:
    page = admin.get("/audit", params={"actor": "admin", "action": "job.update"}).text
    actions = re.findall(r"<td><code>([^<]+)</code></td>", page)
    assert actions == ["job.update"]  # the one PATCH of chart-job
    assert re.findall(r"<td><code>([^<]+)</code></td>", admin.get("/audit", params={"actor": "nobody"}).text) == []


def test_the_executors_page_with_when_each_was_last_seen(console_trio: Trio, admin: httpx.Client, api: httpx.Client) -> None:
    def last_seen() -> int:
        executors = api.get("/executors").json().get("executors", [])
        return int(executors[0].get("lastSeenMs", 0)) if executors else 0

    wait_for(lambda: last_seen() > 0, 30, "the monitor to report the executor's health")
    assert abs(last_seen() / 1000 - time.time()) < 120
    page = admin.get("/cluster").text
    assert console_trio.executor in page and 'class="ok"' in page and console_trio.dispatcher in page
    assert re.search(r'<td class="last-seen">\d{4}-\d\d-\d\d [\d:]+ UTC</td>', page)


def test_times_switch_between_the_job_zone_local_and_utc(console_trio: Trio, url: str, history: dict[str, str]) -> None:
    client = browser_login(url, "admin", admin_password(console_trio))

    def first_time() -> str:
        match = re.search(r'<ol class="times">\s*<li>([^<]+)', client.get("/jobs/berlin-job").text)
        assert match
        return match.group(1).strip()

    assert first_time().endswith("02:30:00 Europe/Berlin")
    assert client.get("/tz", params={"to": "utc", "next": "/jobs/berlin-job"}).status_code == 302
    assert first_time().endswith(" UTC") and ("01:30:00" in first_time() or "00:30:00" in first_time())
    client.cookies.set("crontrio_localtz", "Asia%2FTokyo")
    client.get("/tz", params={"to": "local"})
    assert first_time().endswith(" Asia/Tokyo") and ("10:30:00" in first_time() or "09:30:00" in first_time())
    client.cookies.set("crontrio_localtz", "Not/AZone")
    assert first_time().endswith(" UTC")  # an unknown zone is not trusted
    assert client.get("/tz", params={"to": "job", "next": "//evil.example"}).headers["location"] == "/"
