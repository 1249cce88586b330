"""The jobs list and the run's attempt chain in a real headless Chromium, in
Simplified Chinese: the spec in words, last outcome and success rate, search
by tag, sorting by a column, following the attempts of a retried firing, and
the form's live preview naming the bad field in Chinese. Screenshots as in
test_console_browser (CRONTRIO_SCREENSHOTS or the test's temp dir)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from testing_support.services import wait_for
from testing_support.trio import Trio, make_trio, stop_trio
from tests.browser.test_console_browser import browser, login, printed_password, shots
from tests.e2e.console_helpers import api_token, bearer, console_url, wait_http

__all__ = ["browser", "shots"]
pytestmark = pytest.mark.xdist_group("browser")


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    t = make_trio(tmp_path_factory.mktemp("jobs-browser"))
    try:
        for service in ("executor", "dispatcher", "monitor"):
            t.start(service)
        wait_http(console_url(t), "the console")
        yield t
    finally:
        stop_trio(t)


@pytest.fixture(scope="module")
def retried(trio: Trio) -> str:
    """Jobs to list; "flaky" run once: three failed attempts. Its firing's id prefix."""
    url = console_url(trio)
    api = httpx.Client(base_url=url + "/api/v1", headers=bearer(api_token(url, "admin", printed_password(trio))), timeout=30)
    for body in (
        {"name": "nightly-backup", "spec": "30 2 * * *", "command": "true", "tags": ["backup"], "owner": "ops"},
        {"name": "weekday-report", "spec": "0 9 * * 1-5", "command": "true", "owner": "sales"},
        {"name": "flaky", "spec": "@yearly", "command": "exit 3", "retries": 2, "paused": True},
    ):
        assert api.post("/jobs", json=body).status_code == 201
    firing = str(api.post("/jobs/flaky/run").json()["firstRunId"]).rsplit("-", 1)[0]
    wait_for(lambda: api.get(f"/runs/{firing}-3").json().get("status") == "failed", 60, "the third attempt to fail")
    return firing


@pytest.fixture
def page(browser: Any, trio: Trio) -> Iterator[Any]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    login(tab, console_url(trio), "admin", printed_password(trio))
    try:
        yield tab
    finally:
        context.close()


def test_the_jobs_list_in_chinese_search_and_sort(page: Any, trio: Trio, retried: str, shots: Path) -> None:
    url = console_url(trio)
    page.goto(url + "/jobs")
    nightly = page.locator("tr", has=page.locator("a", has_text="nightly-backup"))
    assert nightly.locator(".reading").inner_text() == "每天 02:30"
    assert (
        page.locator("tr", has=page.locator("a", has_text="weekday-report")).locator(".reading").inner_text()
        == "周一至周五 09:00"
    )
    flaky = page.locator("tr", has=page.locator("a", has_text="flaky"))
    assert flaky.locator(".success-rate").inner_text() == "0%"
    assert flaky.locator(".last-outcome").inner_text().startswith("失败")  # "failed" in Chinese
    page.screenshot(path=str(shots / "jobs-columns-zh.png"), full_page=True)
    page.fill("input[name=tag]", "backup")
    page.click("form.search button[type=submit]")
    page.wait_for_url(re.compile(r".*tag=backup.*"))
    assert page.locator("td.job-name > a:not(.tag)").all_inner_texts() == ["nightly-backup"]
    page.goto(url + "/jobs")
    page.click("th >> text=名称")  # sort by name: the column header
    page.wait_for_url(re.compile(r".*sort=name.*"))
    names = page.locator("td.job-name > a:not(.tag)").all_inner_texts()
    assert names == sorted(names) == ["flaky", "nightly-backup", "weekday-report"]


def test_follow_the_attempts_of_a_retried_firing(page: Any, trio: Trio, retried: str, shots: Path) -> None:
    url = console_url(trio)
    page.goto(url + "/jobs")
    page.locator("tr", has=page.locator("a", has_text="flaky")).locator(".last-outcome a").click()
    page.wait_for_url(url + f"/runs/{retried}-3")
    rows = page.locator("#attempts tbody tr")
    assert rows.count() == 3
    assert page.locator("#attempts tr.current td").first.inner_text() == "3"
    page.screenshot(path=str(shots / "run-attempts-zh.png"), full_page=True)
    rows.first.locator("a").click()
    page.wait_for_url(url + f"/runs/{retried}-1")
    assert page.locator("#attempts tr.current td").first.inner_text() == "1"


def test_the_preview_names_the_bad_field_in_chinese(page: Any, trio: Trio) -> None:
    page.goto(console_url(trio) + "/jobs:new")
    page.fill("#in-spec", "61 * * * *")
    error = page.locator("#spec-preview .preview-error")
    error.wait_for()
    assert error.inner_text().startswith("时间表达式: ")
