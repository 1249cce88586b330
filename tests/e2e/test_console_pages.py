"""The web console's pages on a real trio (the monitor serves the console):
login and logout, cookies, CSRF, security headers, roles, XSS, languages."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from crontrio.console.text import at
from testing_support.services import wait_for
from testing_support.trio import Trio
from tests.e2e.console_helpers import (  # fixtures
    add_user,
    admin,
    admin_password,
    api_token,
    bearer,
    browser_login,
    console_trio,
    csrf_of,
    url,
)

__all__ = ["admin", "console_trio", "url"]  # the module-scoped fixture
pytestmark = pytest.mark.xdist_group("console")


def test_security_headers_on_every_page(url: str, admin: httpx.Client) -> None:
    for response in (httpx.get(url + "/login"), admin.get("/jobs"), httpx.get(url + "/api/v1/jobs"), admin.get("/")):
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    # No inline script or style in the pages themselves.
    page = admin.get("/jobs").text
    assert "<script>" not in page and "<style" not in page and " style=" not in page and "onclick" not in page


def test_pages_need_a_login_and_wrong_passwords_are_refused(url: str) -> None:
    response = httpx.get(url + "/jobs?q=a")
    location = urlsplit(response.headers["Location"])
    assert response.status_code == 302 and location.path == "/login" and parse_qs(location.query)["next"] == ["/jobs?q=a"]
    client = httpx.Client(base_url=url, timeout=30)
    form = client.get("/login")
    refused = client.post("/login", data={"user": "admin", "password": "not it", "csrf": csrf_of(form.text)})
    assert refused.status_code == 401 and "wrong user name or password" in refused.text
    # The login form itself is CSRF-protected.
    no_csrf = httpx.post(url + "/login", data={"user": "admin", "password": "not it"})
    assert no_csrf.status_code == 403


def test_login_sets_a_strict_httponly_cookie_and_logout_ends_the_session(console_trio: Trio, url: str) -> None:
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
    form = client.get("/login")
    response = client.post(
        "/login",
        data={"user": "admin", "password": admin_password(console_trio), "csrf": csrf_of(form.text), "next": "//evil.example"},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/"  # no open redirect
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith("crontrio_session="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    stolen = client.cookies.get("crontrio_session")
    page = client.get("/jobs")
    assert page.status_code == 200 and "admin" in page.text
    assert client.post("/logout", data={"csrf": csrf_of(page.text)}).status_code == 302
    # The old cookie is worthless now: the dispatcher ended the session.
    replay = httpx.get(url + "/jobs", cookies={"crontrio_session": stolen or ""})
    assert replay.status_code == 302 and "expired=1" in replay.headers["Location"]
    # An action with the dead session leads to the login, then back to the page (not the action).
    action = httpx.post(url + "/jobs/some-job/run", cookies={"crontrio_session": stolen or ""}, data={"csrf": csrf_of(page.text)})
    assert action.status_code == 302 and parse_qs(urlsplit(action.headers["Location"]).query)["next"] == ["/jobs/some-job"]
    forged = httpx.get(url + "/jobs", cookies={"crontrio_session": "eyJ0IjoiY3RzX3gifQ.AAAA"})
    assert forged.status_code == 302 and forged.headers["Location"].startswith("/login")


@pytest.fixture(scope="module")
def viewer(console_trio: Trio, url: str) -> httpx.Client:
    add_user(console_trio, "vicky", "viewer", "vicky-password-1")
    return browser_login(url, "vicky", "vicky-password-1")


def _add_job(url: str, token: str, **fields: object) -> None:
    created = httpx.post(url + "/api/v1/jobs", json=fields, headers=bearer(token), timeout=30)
    assert created.status_code == 201, created.text


def test_actions_need_the_csrf_token(console_trio: Trio, url: str, admin: httpx.Client) -> None:
    token = api_token(url, "admin", admin_password(console_trio))
    _add_job(url, token, name="csrf-target", spec="@yearly", command="echo hi")
    refused = admin.post("/jobs/csrf-target/pause", data={})
    assert refused.status_code == 403
    forged = admin.post("/jobs/csrf-target/pause", data={"csrf": "forged"})
    assert forged.status_code == 403
    assert "paused" not in httpx.get(url + "/api/v1/jobs/csrf-target", headers=bearer(token)).json()  # false: omitted
    page = admin.get("/jobs/csrf-target")
    done = admin.post("/jobs/csrf-target/pause", data={"csrf": csrf_of(page.text)})
    assert done.status_code == 302 and done.headers["Location"] == "/jobs/csrf-target?msg=pause"
    assert (
        "enabled" not in httpx.get(url + "/api/v1/jobs/csrf-target", headers=bearer(token)).json()
    )  # false: omitted in proto3 JSON
    audit = httpx.get(url + "/api/v1/audit", params={"target": "csrf-target"}, headers=bearer(token)).json()["entries"]
    assert [(e["action"], e["actor"]) for e in audit] == [("job.pause", "admin"), ("job.create", "admin")]
    logins = httpx.get(url + "/api/v1/audit", params={"target": "admin"}, headers=bearer(token)).json()["entries"]
    login = next(e for e in logins if e["action"] == "user.login")
    assert json.loads(login["after"]) == {"peer": "ipv4:127.0.0.1", "client": "127.0.0.1"}  # the browser, via the console


def test_a_viewer_sees_no_write_controls_and_cannot_post(
    console_trio: Trio, url: str, viewer: httpx.Client, admin: httpx.Client
) -> None:
    token = api_token(url, "admin", admin_password(console_trio))
    _add_job(url, token, name="look-only", spec="@yearly", command="true")
    page = viewer.get("/jobs/look-only")
    assert page.status_code == 200 and "look-only" in page.text
    assert "/look-only/run" not in page.text and "/pause" not in page.text and "Run now" not in page.text
    assert "Run now" in admin.get("/jobs/look-only").text  # the same page for an admin has them
    refused = viewer.post("/jobs/look-only/run", data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 403  # the dispatcher said PERMISSION_DENIED
    assert not console_trio.sql("SELECT 1 FROM runs WHERE job_name = 'look-only'")


def test_html_in_commands_output_and_queries_stays_text(console_trio: Trio, url: str, admin: httpx.Client) -> None:
    token = api_token(url, "admin", admin_password(console_trio))
    refused = httpx.post(
        url + "/api/v1/jobs",
        json={"name": "<script>alert(1)</script>", "spec": "@yearly", "command": "true"},
        headers=bearer(token),
    )
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "name"
    command = "printf '<img src=x onerror=alert(1)>\\033[31mred\\033[0m\\n'; echo '<script>alert(2)</script>'"
    _add_job(url, token, name="xss", spec="@yearly", command=command)
    job_page = admin.get("/jobs/xss").text
    assert "<img src=x" not in job_page and "&lt;img src=x onerror=alert(1)&gt;" in job_page
    run_id = httpx.post(url + "/api/v1/jobs/xss/run", headers=bearer(token)).json()["firstRunId"]
    wait_for(
        lambda: httpx.get(f"{url}/api/v1/runs/{run_id}", headers=bearer(token)).json().get("status") == "succeeded",
        20,
        "the run to succeed",
    )
    run_page = admin.get(f"/runs/{run_id}").text
    assert "&lt;img src=x onerror=alert(1)&gt;red" in run_page  # ANSI colour codes stripped
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in run_page
    assert "<script>alert" not in run_page and "\x1b" not in run_page and "[31m" not in run_page
    search = admin.get("/jobs", params={"q": '"><script>alert(3)</script>'}).text
    assert "<script>alert(3)" not in search and "&lt;script&gt;alert(3)" in search


def test_dashboard_lists_and_the_chinese_interface(console_trio: Trio, url: str, admin: httpx.Client) -> None:
    dashboard = admin.get("/")
    assert dashboard.status_code == 200 and console_trio.executor in dashboard.text
    chinese = admin.get("/jobs", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert '<html lang="zh-CN">' in chinese.text and "任务" in chinese.text and "按名称搜索" in chinese.text
    assert "Jobs" not in chinese.text.split("<main>")[0]
    switched = admin.get("/lang", params={"to": "zh-CN", "next": "/runs"})
    assert switched.status_code == 302 and switched.headers["Location"] == "/runs"
    assert "运行记录" in admin.get("/runs", headers={"Accept-Language": "en"}).text  # the switch wins over the browser
    admin.get("/lang", params={"to": "en", "next": "/"})
    assert "Runs in progress" in admin.get("/").text
    assert admin.get("/jobs/no-such-job").status_code == 404


def test_a_job_page_shows_its_real_fire_times_even_with_h(console_trio: Trio, url: str, admin: httpx.Client) -> None:
    token = api_token(url, "admin", admin_password(console_trio))
    _add_job(url, token, name="spread-out", spec="H H * * *", command="true")
    next_ms = int(httpx.get(url + "/api/v1/jobs/spread-out", headers=bearer(token)).json()["nextFireMs"])
    page = admin.get("/jobs/spread-out").text
    first = page.split('<ol class="times">')[1].split("</li>")[0]
    assert at(next_ms, "UTC") in first


def test_a_user_changes_their_own_password_in_the_console(console_trio: Trio, url: str) -> None:
    add_user(console_trio, "paula", "viewer", "paula-password-1")
    client = browser_login(url, "paula", "paula-password-1")
    other = browser_login(url, "paula", "paula-password-1")
    page = client.get("/account")
    assert page.status_code == 200 and "paula" in page.text
    csrf = csrf_of(page.text)
    mismatch = client.post(
        "/account/password",
        data={"csrf": csrf, "current_password": "paula-password-1", "password": "paula-password-2", "password_again": "other"},
    )
    assert mismatch.status_code == 400 and "do not match" in mismatch.text
    wrong = client.post(
        "/account/password",
        data={"csrf": csrf, "current_password": "nope", "password": "paula-password-2", "password_again": "paula-password-2"},
    )
    assert wrong.status_code == 400 and "current password is wrong" in wrong.text
    short = client.post(
        "/account/password",
        data={"csrf": csrf, "current_password": "paula-password-1", "password": "short", "password_again": "short"},
    )
    assert short.status_code == 400 and "at least 10 characters" in short.text
    done = client.post(
        "/account/password",
        data={
            "csrf": csrf,
            "current_password": "paula-password-1",
            "password": "paula-password-2",
            "password_again": "paula-password-2",
        },
    )
    assert done.status_code == 302 and done.headers["Location"] == "/account?changed=1"
    assert client.get("/account").status_code == 200  # this session stays
    assert other.get("/account").status_code == 302  # the other one ended
    assert api_token(url, "paula", "paula-password-2")


def test_audit_page_and_runs_filtered_by_status(console_trio: Trio, url: str, admin: httpx.Client) -> None:
    token = api_token(url, "admin", admin_password(console_trio))
    _add_job(url, token, name="audited-page", spec="@yearly", command="exit 3")
    run_id = httpx.post(url + "/api/v1/jobs/audited-page/run", headers=bearer(token)).json()["firstRunId"]
    wait_for(
        lambda: httpx.get(f"{url}/api/v1/runs/{run_id}", headers=bearer(token)).json().get("status") == "failed",
        20,
        "the failure",
    )
    audit = admin.get("/audit", params={"target": "audited-page"})
    assert audit.status_code == 200
    rows = audit.text.split("<tbody>")[1]
    assert rows.index("job.run") < rows.index("job.create") and "<td>admin</td>" in rows
    failed = admin.get("/runs", params={"job": "audited-page", "status": "failed"}).text
    succeeded = admin.get("/runs", params={"job": "audited-page", "status": "succeeded"}).text
    assert run_id in failed and run_id not in succeeded
