"""The web console's pages on a real trio (the monitor serves the console):
login and logout, cookies, CSRF, security headers, roles, XSS, languages."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.conftest import Trio
from tests.e2e.console_helpers import admin_password, api_token, bearer, browser_login, console_trio, console_url, csrf_of
from tests.services import wait_for

__all__ = ["console_trio"]  # the module-scoped fixture
pytestmark = pytest.mark.xdist_group("console")


@pytest.fixture(scope="module")
def url(console_trio: Trio) -> str:
    return console_url(console_trio)


@pytest.fixture(scope="module")
def admin(console_trio: Trio, url: str) -> httpx.Client:
    return browser_login(url, "admin", admin_password(console_trio))


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
        "/login", data={"user": "admin", "password": admin_password(console_trio), "csrf": csrf_of(form.text), "next": "//evil.example"}
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
    forged = httpx.get(url + "/jobs", cookies={"crontrio_session": "eyJ0IjoiY3RzX3gifQ.AAAA"})
    assert forged.status_code == 302 and forged.headers["Location"].startswith("/login")
