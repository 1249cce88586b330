"""The web console in a real headless Chromium (Debian's /usr/bin/chromium,
driven by Playwright; never a browser download): log in with the password
the dispatcher printed, the jobs list, a job, run now, a viewer without
write controls, the Chinese interface, dark mode.

Screenshots go to <pytest basetemp>/screenshots (the path is printed), or to
$CRONTRIO_SCREENSHOTS when set (how docs/screenshots/ was made).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from testing_support.trio import Trio, make_trio, stop_trio
from tests.e2e.console_helpers import add_user, api_token, bearer, console_url, wait_http

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.xdist_group("browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium and fonts-wqy-microhei "
            "(scripts/test-deps.sh installs them as root: apt-get install chromium fonts-wqy-microhei)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # As root (containers, CI) Chromium refuses to start with its sandbox.
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, chromium_sandbox=os.geteuid() != 0)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("CRONTRIO_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    t = make_trio(tmp_path_factory.mktemp("browser"))
    try:
        for service in ("executor", "dispatcher", "monitor"):
            t.start(service)
        wait_http(console_url(t), "the console")
        yield t
    finally:
        stop_trio(t)


def printed_password(t: Trio) -> str:
    """The first admin's password, as the dispatcher printed it in its log."""
    match = re.search(r"created user 'admin' with password (\S+)", t.procs["dispatcher"].log_text())
    assert match, "the dispatcher did not print the first admin's password"
    return match.group(1)


@pytest.fixture(scope="module")
def seeded(trio: Trio) -> Trio:
    url = console_url(trio)
    token = api_token(url, "admin", printed_password(trio))
    jobs = [
        {"name": "nightly-backup", "spec": "30 2 * * *", "timezone": "Europe/Berlin", "command": "echo backing up; sleep 0.2"},
        {"name": "report-mail", "spec": "0 9 * * MON-FRI", "timezone": "Asia/Shanghai", "command": "echo '<b>report</b> sent'"},
        {"name": "health-ping", "spec": "@every 30s", "type": "http", "command": url + "/healthz", "paused": True},
    ]
    for job in jobs:
        assert httpx.post(url + "/api/v1/jobs", json=job, headers=bearer(token), timeout=30).status_code == 201
    add_user(trio, "viv", "viewer", "viv-password-1")
    return trio


def login(page: Any, url: str, user: str, password: str) -> None:
    page.goto(url + "/")
    assert "/login" in page.url
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))


def test_log_in_see_the_jobs_open_one_and_run_it(browser: Any, seeded: Trio, shots: Path) -> None:
    url = console_url(seeded)
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        page.goto(url + "/login")
        page.screenshot(path=str(shots / "login.png"))
        login(page, url, "admin", printed_password(seeded))
        assert page.locator("h1").inner_text() == "Dashboard"
        page.wait_for_selector(f"text={seeded.executor}")
        page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
        page.click("nav >> text=Jobs")
        page.wait_for_url(url + "/jobs")
        names = page.locator("table.list tbody tr td.job-name").all_inner_texts()
        assert names == ["nightly-backup", "report-mail", "health-ping"]
        page.screenshot(path=str(shots / "jobs.png"), full_page=True)
        page.click("text=nightly-backup")
        page.wait_for_url(url + "/jobs/nightly-backup")
        times = page.locator("ol.times li").all_inner_texts()
        assert len(times) == 10 and all("02:30:00 Europe/Berlin" in t and "UTC" in t for t in times)
        page.once("dialog", lambda dialog: dialog.accept())  # console.js asks before running
        page.click("button:has-text('Run now')")
        page.wait_for_selector("text=The run was started.")
        run_link = page.locator("table.list tbody tr td:first-child a").first
        run_link.wait_for()
        run_link.click()
        page.wait_for_selector(".status-succeeded", timeout=20_000)  # the page reloads itself while running
        assert "backing up" in page.locator("#output").inner_text()
        page.screenshot(path=str(shots / "run.png"), full_page=True)
        page.goto(url + "/jobs/report-mail")
        assert "<b>report</b>" in page.locator("pre.command").inner_text()  # shown as text, not bold
        assert page.locator("pre.command b").count() == 0
        page.screenshot(path=str(shots / "job.png"), full_page=True)
        # The page's JS helper calls the JSON API with the CSRF header (allowed by the CSP).
        paused = page.evaluate("() => crontrio.api('POST', '/jobs/report-mail/pause').then(job => job.paused)")
        assert paused is True
        refused = page.evaluate(
            "() => fetch('/api/v1/jobs/report-mail/resume', {method: 'POST', credentials: 'same-origin'}).then(r => r.status)"
        )
        assert refused == 403  # the same call without the header
        assert page.evaluate("() => crontrio.api('POST', '/jobs/report-mail/resume').then(job => job.paused || false)") is False
    finally:
        context.close()


def test_a_viewer_sees_no_write_controls(browser: Any, seeded: Trio, shots: Path) -> None:
    url = console_url(seeded)
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    try:
        login(page, url, "viv", "viv-password-1")
        page.goto(url + "/jobs/nightly-backup")
        assert page.locator("h1").inner_text().startswith("Job")
        assert page.locator("button:has-text('Run now'), button:has-text('Pause'), button:has-text('Resume')").count() == 0
        page.screenshot(path=str(shots / "job-viewer.png"), full_page=True)
    finally:
        context.close()


def test_the_chinese_interface_renders(browser: Any, seeded: Trio, shots: Path) -> None:
    url = console_url(seeded)
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        page.goto(url + "/login")
        assert page.locator("button[type=submit]").inner_text() == "登录"
        login(page, url, "admin", printed_password(seeded))
        assert page.locator("h1").inner_text() == "概览"
        page.goto(url + "/jobs")
        assert "名称" in page.locator("th").all_inner_texts()
        assert page.locator("td .badge", has_text="已暂停").count() == 1  # health-ping is paused
        # The glyphs are drawn with a real CJK font (not empty boxes): a
        # Chinese heading is about as wide as its characters at font size.
        width = page.evaluate("() => document.querySelector('h1').getBoundingClientRect().width")
        assert width > 20
        page.screenshot(path=str(shots / "jobs-zh.png"), full_page=True)
    finally:
        context.close()


def test_dark_mode_and_phone_width(browser: Any, seeded: Trio, shots: Path) -> None:
    url = console_url(seeded)
    context = browser.new_context(locale="en-US", color_scheme="dark", viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        login(page, url, "admin", printed_password(seeded))
        page.goto(url + "/jobs")
        background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(21, 23, 26)"
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, "the jobs page scrolls sideways at phone width"
        page.screenshot(path=str(shots / "jobs-dark-phone.png"), full_page=True)
    finally:
        context.close()
