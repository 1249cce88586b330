"""The console's flows in a real headless Chromium (Debian's, via
Playwright): add a job through the form (a bad spec refused at its field,
nothing stored; fixed, it fires and its run appears), follow a run's live
output across a reload with nothing twice, kill a run, a viewer refused by
the API, HTML payloads that stay text. Screenshots as in
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
from tests.e2e.console_helpers import add_user, api_token, bearer, console_url, wait_http

__all__ = ["browser", "shots"]
pytestmark = pytest.mark.xdist_group("browser")
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    t = make_trio(tmp_path_factory.mktemp("flows"))
    try:
        for service in ("executor", "dispatcher", "monitor"):
            t.start(service)
        wait_http(console_url(t), "the console")
        yield t
    finally:
        stop_trio(t)


@pytest.fixture(scope="module")
def api(trio: Trio) -> httpx.Client:
    url = console_url(trio)
    return httpx.Client(base_url=url + "/api/v1", headers=bearer(api_token(url, "admin", printed_password(trio))), timeout=30)


@pytest.fixture
def page(browser: Any, trio: Trio) -> Iterator[Any]:
    """A logged-in admin's page; any alert/confirm it raises is recorded (and dismissed)."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.dialogs = []

    def on_dialog(dialog: Any) -> None:
        tab.dialogs.append(dialog.message)
        dialog.accept() if dialog.type == "confirm" else dialog.dismiss()

    tab.on("dialog", on_dialog)
    login(tab, console_url(trio), "admin", printed_password(trio))
    try:
        yield tab
    finally:
        context.close()


def test_add_a_job_with_a_bad_spec_fix_it_and_watch_it_fire(page: Any, trio: Trio, api: httpx.Client, shots: Path) -> None:
    url = console_url(trio)
    page.goto(url + "/jobs")
    page.click("text=Add a job")
    page.wait_for_url(url + "/jobs:new")
    page.fill("#in-name", "browser-job")
    page.fill("#in-command", f"echo 'fired {XSS}'")
    page.fill("#in-spec", "61 * * * *")
    page.wait_for_selector("#spec-preview .preview-error")  # the live preview already says why
    page.click("form.job-form button[type=submit]")
    error = page.locator("#err-spec")
    error.wait_for()
    assert "spec" in error.inner_text() and page.locator("#field-spec.invalid").count() == 1
    page.screenshot(path=str(shots / "job-form-error.png"), full_page=True)
    assert api.get("/jobs/browser-job").status_code == 404  # nothing stored
    page.fill("#in-spec", "@every 2s")
    page.fill("#in-timezone", "Asia/Shanghai")
    page.wait_for_function("() => document.querySelectorAll('#spec-preview li').length === 5")
    assert page.locator("#err-spec").count() == 0  # the preview took back the stale complaint
    assert all(t.endswith("UTC") and "Asia/Shanghai" in t for t in page.locator("#spec-preview li").all_inner_texts())
    page.screenshot(path=str(shots / "job-form.png"), full_page=True)
    page.click("form.job-form button[type=submit]")
    page.wait_for_url(url + "/jobs/browser-job?msg=created")
    assert page.locator("pre.command").inner_text() == f"echo 'fired {XSS}'"  # text, not an image
    assert page.locator("pre.command img").count() == 0

    def a_run_is_listed() -> bool:
        page.reload()
        return page.locator("table.list tbody tr:has(.status-succeeded)").count() > 0

    wait_for(a_run_is_listed, 30, "the job to fire and its run to be listed")
    assert api.post("/jobs/browser-job/pause").status_code == 200
    assert api.get("/runs", params={"job": "browser-job"}).json()["runs"][0]["trigger"] == "schedule"
    page.locator("table.list tbody tr:has(.status-succeeded) td:first-child a").first.click()
    page.wait_for_selector("h1 .status-succeeded", timeout=20_000)
    assert f"fired {XSS}" in page.locator("#output").inner_text()
    assert page.dialogs == []


def test_follow_live_output_reload_midway_and_see_it_resume(page: Any, trio: Trio, api: httpx.Client, shots: Path) -> None:
    lines = 14
    command = f"for i in $(seq 1 {lines}); do printf 'tick %s {XSS} \\033[32mgreen\\033[0m\\n' $i; sleep 0.5; done"
    assert api.post("/jobs", json={"name": "ticker", "spec": "@yearly", "command": command}).status_code == 201
    run_id = api.post("/jobs/ticker/run").json()["firstRunId"]
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/output" in request.url else None)
    page.goto(console_url(trio) + f"/runs/{run_id}")
    output = page.locator("#output")
    page.wait_for_function("() => document.getElementById('output').textContent.includes('tick 3 ')", timeout=20_000)
    assert page.locator("#live-note").get_attribute("data-status") is None  # still running
    page.screenshot(path=str(shots / "run-live.png"), full_page=True)
    shown = output.inner_text()
    page.reload()  # mid-way: the page resumes at the offset it had
    page.wait_for_function("() => document.getElementById('output').textContent.includes('tick 6 ')", timeout=20_000)
    page.wait_for_selector("#live-note[data-status=succeeded]", timeout=30_000)
    expected = "".join(f"tick {i} {XSS} green\n" for i in range(1, lines + 1))
    assert output.inner_text() == expected  # every line once, escapes stripped
    # The stream after the reload was asked only for what came after the shown part.
    offsets = [int(u.rsplit("offset=", 1)[1]) for u in asked]
    assert offsets[0] == 0 and offsets[1] >= len(shown.replace(" green", " \x1b[32mgreen\x1b[0m").encode())
    assert page.locator("#output img").count() == 0 and page.dialogs == []
    assert page.locator("#run-status .status-succeeded").count() == 1


def test_kill_a_run_from_its_page(page: Any, trio: Trio, api: httpx.Client) -> None:
    body = {"name": "sleeper", "spec": "@yearly", "command": "echo started; sleep 60"}
    assert api.post("/jobs", json=body).status_code == 201
    run_id = api.post("/jobs/sleeper/run").json()["firstRunId"]
    page.goto(console_url(trio) + f"/runs/{run_id}")
    page.wait_for_function("() => document.getElementById('output').textContent.includes('started')", timeout=20_000)
    page.click("button:has-text('Kill')")  # confirmed by the dialog handler
    page.wait_for_selector("text=Kill requested.")
    wait_for(lambda: api.get(f"/runs/{run_id}").json().get("status") == "killed", 20, "the run to end killed")
    assert any("Kill" in message for message in page.dialogs)


def test_a_viewer_has_no_write_controls_and_the_api_refuses(browser: Any, trio: Trio, api: httpx.Client, shots: Path) -> None:
    add_user(trio, "vera", "viewer", "vera-password-1")
    assert api.post("/jobs", json={"name": "viewed-job", "spec": "@daily", "command": "true"}).status_code == 201
    url = console_url(trio)
    context = browser.new_context(locale="en-US")
    tab = context.new_page()
    try:
        login(tab, url, "vera", "vera-password-1")
        tab.goto(url + "/jobs")
        assert tab.locator("input[type=checkbox], #bulk button, a:has-text('Add a job')").count() == 0
        tab.goto(url + "/jobs/viewed-job")
        assert tab.locator("form[method=post] button:not(.link), a.button").count() == 0
        refused = tab.evaluate(
            "() => crontrio.api('POST', '/jobs/viewed-job/pause').then(() => 'allowed', error => error.message)"
        )
        assert refused != "allowed" and "requires role operator" in refused
        assert not api.get("/jobs/viewed-job").json().get("paused")
        tab.screenshot(path=str(shots / "job-viewer.png"), full_page=True)
    finally:
        context.close()


def test_a_job_name_with_html_is_refused_as_text(page: Any, trio: Trio, api: httpx.Client) -> None:
    url = console_url(trio)
    page.goto(url + "/jobs:new")
    page.fill("#in-name", XSS)
    page.fill("#in-spec", "@daily")
    page.fill("#in-command", "true")
    page.click("form.job-form button[type=submit]")
    error = page.locator("#err-name")
    error.wait_for()
    assert XSS in error.inner_text() and page.locator("#field-name img").count() == 0
    assert page.input_value("#in-name") == XSS and page.dialogs == []
    assert [j["name"] for j in api.get("/jobs").json()["jobs"] if "<" in j["name"]] == []


def test_every_page_renders_and_is_captured(page: Any, trio: Trio, api: httpx.Client, shots: Path) -> None:
    url = console_url(trio)
    pages = (("/", "dashboard"), ("/runs", "runs"), ("/cluster", "cluster"), ("/audit", "audit"), ("/account", "account"))
    for path, name in pages:
        page.goto(url + path)
        assert page.locator("h1").count() == 1 and re.search(r"\S", page.locator("h1").inner_text())
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    # A job of its own with a finished run, so the chart has a bar whatever
    # ran before on this module's trio (tests may run in any order).
    assert api.post("/jobs", json={"name": "charted", "spec": "@yearly", "command": "echo charted"}).status_code == 201
    run_id = api.post("/jobs/charted/run").json()["firstRunId"]
    wait_for(lambda: api.get(f"/runs/{run_id}").json().get("status") == "succeeded", 30, "the charted job's run to end")
    page.goto(url + "/jobs/charted")
    page.locator("#runs-chart svg rect").first.wait_for()
    page.screenshot(path=str(shots / "job.png"), full_page=True)
    assert page.dialogs == []


def test_the_job_form_in_chinese(browser: Any, trio: Trio, shots: Path) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    try:
        login(tab, console_url(trio), "admin", printed_password(trio))
        tab.goto(console_url(trio) + "/jobs:new")
        assert tab.locator("h1").inner_text() == "新建任务"
        assert "超时与重试" in tab.locator("details summary").all_inner_texts()
        tab.screenshot(path=str(shots / "job-form-zh.png"), full_page=True)
    finally:
        context.close()


def test_times_in_the_browsers_zone_after_the_switch(browser: Any, trio: Trio, api: httpx.Client) -> None:
    body = {"name": "berlin-backup", "spec": "30 2 * * *", "timezone": "Europe/Berlin", "command": "true"}
    assert api.post("/jobs", json=body).status_code == 201
    context = browser.new_context(locale="en-US", timezone_id="Asia/Tokyo")
    tab = context.new_page()
    try:
        url = console_url(trio)
        login(tab, url, "admin", printed_password(trio))
        tab.goto(url + "/jobs/berlin-backup")
        first = tab.locator("ol.times li").first
        assert "02:30:00 Europe/Berlin" in first.inner_text()
        tab.click("#tz-switch >> text=local (Asia/Tokyo)")  # console.js told the server the browser's zone
        tab.wait_for_url(url + "/jobs/berlin-backup")
        assert re.match(r"\d{4}-\d\d-\d\d (09|10):30:00 Asia/Tokyo", first.inner_text())
        assert "Europe/Berlin" in first.inner_text()  # and still in the job's zone beside it
        tab.click("#tz-switch >> text=UTC")
        assert re.match(r"\d{4}-\d\d-\d\d (00|01):30:00 UTC", first.inner_text())
    finally:
        context.close()
