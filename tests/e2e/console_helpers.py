"""A trio whose monitor serves the web console, and HTTP clients that log in."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from testing_support.services import wait_for
from testing_support.trio import Trio, make_trio, stop_trio


def console_url(t: Trio) -> str:
    conf = t.conf.read_text()
    match = re.search(r"^http_listen = (\S+)", conf, re.M)
    assert match
    return f"http://{match.group(1)}"


def wait_http(url: str, what: str) -> None:
    wait_for(lambda: httpx.get(url + "/healthz", timeout=2).status_code == 200, 20, what)


@pytest.fixture(scope="module")
def console_trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    t = make_trio(tmp_path_factory.mktemp("console"))
    try:
        for service in ("executor", "dispatcher", "monitor"):
            t.start(service)
        wait_http(console_url(t), "the monitor's HTTP port")
        yield t
    finally:
        stop_trio(t)


def admin_password(t: Trio) -> str:
    return (t.root / "var" / "initial-admin-password").read_text().strip()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def browser_login(url: str, user: str, password: str) -> httpx.Client:
    """A client holding a console session cookie, logged in through the form."""
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
    form = client.get("/login")
    response = client.post("/login", data={"user": user, "password": password, "csrf": csrf_of(form.text), "next": "/jobs"})
    assert response.status_code == 302, response.text
    return client


def api_token(url: str, user: str, password: str) -> str:
    reply = httpx.post(url + "/api/v1/login", json={"user": user, "password": password}, timeout=30)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def add_user(t: Trio, name: str, role: str, password: str) -> None:
    """Through the admin API as the loopback "local" admin (no [tokens] here)."""
    import grpc

    from crontrio.protos import crontrio_pb2 as pb
    from crontrio.protos import crontrio_pb2_grpc as pb_grpc

    with grpc.insecure_channel(t.dispatcher) as channel:
        pb_grpc.AdminStub(channel).CreateUser(pb.CreateUserRequest(name=name, role=role, password=password), timeout=30)


# Module fixtures the console test modules share (import them by name).


@pytest.fixture(scope="module")
def url(console_trio: Trio) -> str:
    return console_url(console_trio)


@pytest.fixture(scope="module")
def admin(console_trio: Trio, url: str) -> httpx.Client:
    return browser_login(url, "admin", admin_password(console_trio))


@pytest.fixture(scope="module")
def api(console_trio: Trio, url: str) -> httpx.Client:
    token = api_token(url, "admin", admin_password(console_trio))
    return httpx.Client(base_url=url + "/api/v1", headers=bearer(token), timeout=30)
