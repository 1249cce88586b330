"""The console's jobs list columns, search and sort, the run page's attempt
chain and exit code, and dispatcher errors in the page's language, on a
real trio (dispatcher, executor, monitor serving the console)."""

from __future__ import annotations

import html
import re

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
    csrf_of,
    url,
)

__all__ = ["admin", "api", "console_trio", "url"]
pytestmark = pytest.mark.xdist_group("console")
RUN_COLUMNS = (
    "run_id, job_id, job_name, scheduled_ms, attempt, status, dispatcher, executor, host, pid, exit_code, "
    "started_ms, finished_ms, output, output_truncated, error, created_ms, updated_ms, shard, shard_total, trigger"
)


@pytest.fixture(scope="module")
def admin_zh(console_trio: Trio, url: str) -> httpx.Client:
    """Logged in, with the language switch set to Simplified Chinese."""
    client = browser_login(url, "admin", admin_password(console_trio))
    client.cookies.set("crontrio_lang", "zh-CN")
    return client


def _add(api: httpx.Client, name: str, **fields: object) -> None:
    body = {"name": name, "spec": "@yearly", "command": "true", "paused": True, **fields}
    response = api.post("/jobs", json=body)
    assert response.status_code == 201, response.text


def _run(api: httpx.Client, job: str, outcome: str, attempts: int = 1) -> str:
    """Run the job now; the id of its last attempt once it ended `outcome`."""
    first = str(api.post(f"/jobs/{job}/run").json()["firstRunId"])
    last = first.rsplit("-", 1)[0] + f"-{attempts}"
    wait_for(lambda: api.get(f"/runs/{last}").json().get("status") == outcome, 60, f"{last} to end {outcome}")
    return last


@pytest.fixture(scope="module")
def jobs(api: httpx.Client) -> dict[str, str]:
    _add(api, "nightly-backup", spec="30 2 * * *", tags=["backup", "db"], owner="ops", description="<b>dump</b> the DB")
    _add(api, "weekday-hourly", spec="0 * * * 1-5", owner="dev")
    _add(api, "flaky", command="exit 3", retries=2, retryIntervalSeconds=0)
    _add(api, "steady", command="sleep 0.2")
    return {"flaky": _run(api, "flaky", "failed", attempts=3), "steady": _run(api, "steady", "succeeded")}


def _rows(page: str) -> dict[str, str]:
    """Row HTML by job name."""
    rows = re.findall(r'<td class="job-name"><a href="/jobs/[^"]+">([^<]+)</a>(.*?)</tr>', page, re.S)
    return {html.unescape(name): rest for name, rest in rows}


def test_the_columns_say_the_spec_in_words_and_how_the_runs_went(
    admin: httpx.Client, admin_zh: httpx.Client, jobs: dict[str, str]
) -> None:
    rows = _rows(admin.get("/jobs").text)
    assert "at 02:30 every day" in rows["nightly-backup"]
    assert "at minute 0 past every hour on Monday to Friday" in rows["weekday-hourly"]
    flaky = rows["flaky"]
    assert f'href="/runs/{jobs["flaky"]}"' in flaky and "status-failed" in flaky
    assert re.search(r'class="success-rate">0%<', flaky)  # three failed attempts
    steady = rows["steady"]
    assert "status-succeeded" in steady and re.search(r'class="success-rate">100%<', steady)
    assert re.search(r"\d+\.\d s", steady)  # the last run's duration
    assert re.search(r'class="success-rate"><', rows["nightly-backup"])  # never ran: no rate
    assert ">backup</a>" in rows["nightly-backup"]  # its tags, each a link to the tag search
    zh = admin_zh.get("/jobs").text
    assert "每天 02:30" in _rows(zh)["nightly-backup"] and "成功率" in zh


def test_search_by_tag_and_owner_and_a_bad_tag_is_said_in_the_page_language(
    admin: httpx.Client, admin_zh: httpx.Client, jobs: dict[str, str]
) -> None:
    assert list(_rows(admin.get("/jobs", params={"tag": "backup"}).text)) == ["nightly-backup"]
    assert list(_rows(admin.get("/jobs", params={"owner": "dev"}).text)) == ["weekday-hourly"]
    assert list(_rows(admin.get("/jobs", params={"owner": "ops", "tag": "db", "q": "night"}).text)) == ["nightly-backup"]
    assert _rows(admin.get("/jobs", params={"owner": "ops", "tag": "nope"}).text) == {}
    paused = _rows(admin.get("/jobs", params={"state": "paused", "q": "f"}).text)  # a state scan keeps the run columns
    assert list(paused) == ["flaky"] and re.search(r'class="success-rate">0%<', paused["flaky"])
    failing = _rows(admin.get("/jobs", params={"state": "failing"}).text)
    assert "flaky" in failing and "steady" not in failing and "status-failed" in failing["flaky"]
    refused = admin_zh.get("/jobs", params={"tag": "Not A Slug!"})
    assert refused.status_code == 200
    error = re.search(r'<p class="error" role="alert">([^<]*)</p>', refused.text)
    assert error and html.unescape(error.group(1)).startswith("标签: "), refused.text


def test_sort_by_name_next_run_and_last_outcome(admin: httpx.Client, jobs: dict[str, str]) -> None:
    by_name = list(_rows(admin.get("/jobs", params={"sort": "name"}).text))
    assert by_name == sorted(by_name) and len(by_name) >= 4
    by_outcome = list(_rows(admin.get("/jobs", params={"sort": "outcome"}).text))
    assert by_outcome.index("flaky") < by_outcome.index("steady") < by_outcome.index("nightly-backup")
    # Paused jobs have no next run: the soonest-firing list holds none of them.
    assert not set(_rows(admin.get("/jobs", params={"sort": "next"}).text)) & {"flaky", "steady"}
    by_next = list(_rows(admin.get("/jobs", params={"sort": "next", "q": "s"}).text))  # within the page
    assert by_next == ["steady"]


def test_the_run_page_shows_every_attempt_of_the_firing(admin: httpx.Client, api: httpx.Client, jobs: dict[str, str]) -> None:
    last = jobs["flaky"]
    firing = last.rsplit("-", 1)[0]
    page = admin.get(f"/runs/{firing}-1").text
    table = re.search(r'<table class="list" id="attempts">.*?</table>', page, re.S)
    assert table, "no attempt chain"
    rows = re.findall(r'<tr( class="current"[^>]*)?>\s*<td><a href="/runs/([^"]+)">(\d)</a></td>(.*?)</tr>', table.group(0), re.S)
    assert [(run_id, attempt) for _, run_id, attempt, _ in rows] == [(f"{firing}-{n}", str(n)) for n in (1, 2, 3)]
    assert bool(rows[0][0]) and not rows[1][0]  # the run shown is marked
    executor = api.get(f"/runs/{last}").json()["executor"]
    assert all("status-failed" in rest and executor in rest for *_, rest in rows)
    assert 'id="attempts"' not in admin.get(f"/runs/{jobs['steady']}").text  # one attempt: no chain


def test_exit_code_is_blank_when_the_run_never_ran(console_trio: Trio, admin: httpx.Client, jobs: dict[str, str]) -> None:
    ran = admin.get(f"/runs/{jobs['flaky']}").text
    assert re.search(r"<dt>Exit code</dt><dd>3</dd>", ran)
    job_id = jobs["flaky"].split("-", 1)[0]
    console_trio.sql(
        f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (?, ?, 'flaky', 1780000000000, 1, 'missed', 'd', '', '', 0, 0, 0, 0, "
        "x'', 0, 'every dispatcher was down', 0, 0, 0, 0, 'schedule')",
        (f"{job_id}-1780000000000-1", int(job_id)),
    )
    missed = admin.get(f"/runs/{job_id}-1780000000000-1").text
    assert re.search(r"<dt>Exit code</dt><dd></dd>", missed), missed


def test_form_errors_name_the_field_in_the_page_language(admin_zh: httpx.Client, api: httpx.Client) -> None:
    form = admin_zh.get("/jobs:new").text
    refused = admin_zh.post(
        "/jobs:new",
        data={"csrf": csrf_of(form), "name": "zh-bad", "spec": "61 * * * *", "command": "true", "type": "shell"},
    )
    assert refused.status_code == 400
    error = re.search(r'id="err-spec" role="alert">([^<]*)<', refused.text)
    assert error and html.unescape(error.group(1)).startswith("时间表达式: "), refused.text
    assert api.get("/jobs/zh-bad").status_code == 404  # nothing stored
    # The JSON API keeps its English message; a browser in Chinese also gets it localized.
    preview = api.get("/spec/preview", params={"spec": "61 * * * *"}, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    body = preview.json()["error"]
    assert (
        preview.status_code == 400
        and body["message"].startswith("spec: ")
        and body["localizedMessage"].startswith("时间表达式: ")
    )
    assert "localizedMessage" not in api.get("/spec/preview", params={"spec": "61 * * * *"}).json()["error"]


def test_the_job_page_shows_description_owner_and_tags_each_leading_to_the_search(
    admin: httpx.Client, jobs: dict[str, str]
) -> None:
    page = admin.get("/jobs/nightly-backup").text
    assert '<dd class="description">&lt;b&gt;dump&lt;/b&gt; the DB</dd>' in page  # text, never markup
    assert '<a href="/jobs?owner=ops" class="owner">ops</a>' in page
    assert '<a class="badge tag" href="/jobs?tag=backup">backup</a>' in page and 'href="/jobs?tag=db"' in page
    assert '<span class="muted reading">at 02:30 every day</span>' in page  # the spec in words here too


def test_the_json_api_lists_jobs_by_tag_owner_and_name_with_run_stats(api: httpx.Client, jobs: dict[str, str]) -> None:
    tagged = api.get("/jobs", params={"tag": "backup"}).json()["jobs"]
    assert [j["name"] for j in tagged] == ["nightly-backup"] and "runStats" not in tagged[0]
    assert [j["name"] for j in api.get("/jobs", params={"owner": "dev"}).json()["jobs"]] == ["weekday-hourly"]
    names: list[str] = []
    token = ""
    while True:
        page = api.get("/jobs", params={"orderBy": "name", "pageSize": "2", "pageToken": token, "withRunStats": "true"}).json()
        names += [j["name"] for j in page["jobs"]]
        stats = {j["name"]: j.get("runStats", {}) for j in page["jobs"]}
        if "flaky" in stats:
            # Its three failed attempts (and the missed run another test may have written).
            ended = [r for r in api.get("/runs", params={"job": "flaky"}).json()["runs"] if r["status"] in ("failed", "missed")]
            assert stats["flaky"]["lastStatus"] == "failed" and stats["flaky"]["recentFinished"] == len(ended) >= 3
            assert stats["flaky"].get("recentSucceeded", 0) == 0 and stats["flaky"]["lastRunId"] == jobs["flaky"]
        token = page["nextPageToken"]
        if not token:
            break
    assert names == sorted(names) and {"flaky", "steady", "nightly-backup", "weekday-hourly"} <= set(names)
    bad = api.get("/jobs", params={"orderBy": "size"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "order_by"
