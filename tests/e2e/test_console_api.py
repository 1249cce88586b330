"""The JSON API (/api/v1) on a real trio: every endpoint, proto3 JSON,
errors naming the field with nothing stored, roles, CSRF for cookie
sessions, paging that loses nothing, the read-only console alone."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from testing_support.services import ServiceProcess, free_port, wait_for
from testing_support.trio import Trio
from tests.e2e.console_helpers import (
    add_user,
    admin_password,
    api_token,
    bearer,
    browser_login,
    console_trio,
    csrf_of,
    url,  # fixtures
)

__all__ = ["console_trio", "url"]
pytestmark = pytest.mark.xdist_group("console")


@pytest.fixture(scope="module")
def root(console_trio: Trio, url: str) -> httpx.Client:
    """An API client with the first admin's session token."""
    token = api_token(url, "admin", admin_password(console_trio))
    return httpx.Client(base_url=url + "/api/v1", headers=bearer(token), timeout=30)


@pytest.fixture(scope="module")
def tokens(console_trio: Trio, url: str) -> dict[str, str]:
    add_user(console_trio, "val", "viewer", "val-password-1")
    add_user(console_trio, "oscar", "operator", "oscar-password-1")
    return {"viewer": api_token(url, "val", "val-password-1"), "operator": api_token(url, "oscar", "oscar-password-1")}


def error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]  # type: ignore[no-any-return]


def test_no_or_a_bad_token_is_401(url: str) -> None:
    response = httpx.get(url + "/api/v1/jobs")
    assert response.status_code == 401 and error(response)["code"] == "UNAUTHENTICATED"
    forged = httpx.get(url + "/api/v1/jobs", headers=bearer("cts_forged"))
    assert forged.status_code == 401 and error(forged)["code"] == "UNAUTHENTICATED"
    malformed = httpx.get(url + "/api/v1/jobs", headers={"Authorization": "Basic abc"})
    assert malformed.status_code == 401
    assert httpx.get(url + "/api/v1/nothing-here", headers=bearer("x")).status_code == 404


def test_job_lifecycle_in_proto3_json(root: httpx.Client, console_trio: Trio) -> None:
    created = root.post(
        "/jobs", json={"name": "api-job", "spec": "0 3 * * *", "timezone": "Europe/Berlin", "command": "echo one"}
    )
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["name"] == "api-job" and job["timezone"] == "Europe/Berlin" and int(job["nextFireMs"]) > 0  # int64 as string
    assert root.post("/jobs", json={"name": "api-job", "spec": "@daily", "command": "x"}).status_code == 409
    assert root.get("/jobs/api-job").json()["command"] == "echo one"
    patched = root.patch("/jobs/api-job", json={"command": "echo two", "env": {"A": "1"}})
    assert patched.status_code == 200, patched.text
    assert (
        patched.json()["command"] == "echo two"
        and patched.json()["spec"] == "0 3 * * *"
        and patched.json()["env"] == {"A": "<redacted>"}  # secrets: redacted in every reply
        and patched.json()["secretsRedacted"] is True
    )
    assert root.get("/jobs/api-job", params={"reveal": "true"}).json()["env"] == {"A": "1"}
    # A PATCH that round-trips the placeholder keeps the stored value.
    assert root.patch("/jobs/api-job", json={"command": "echo two"}).status_code == 200
    assert root.get("/jobs/api-job", params={"reveal": "true"}).json()["env"] == {"A": "1"}
    assert root.post("/jobs/api-job/pause").json()["paused"] is True
    assert "paused" not in root.post("/jobs/api-job/resume").json()
    run = root.post("/jobs/api-job/run").json()
    run_id = run["firstRunId"]
    wait_for(lambda: root.get(f"/runs/{run_id}").json().get("status") == "succeeded", 20, "the run to succeed")
    got = root.get(f"/runs/{run_id}").json()
    assert base64.b64decode(got["output"]) == b"two\n" and got["jobName"] == "api-job"
    assert run_id in [r["runId"] for r in root.get("/runs", params={"job": "api-job"}).json()["runs"]]
    assert root.post(f"/runs/{run_id}/kill").status_code == 409  # finished: FAILED_PRECONDITION
    assert root.delete("/jobs/api-job").json() == {"deleted": True}
    gone = root.get("/jobs/api-job")
    assert gone.status_code == 404 and error(gone)["code"] == "NOT_FOUND"
    actions = [(e["action"], e["actor"]) for e in root.get("/audit", params={"target": "api-job"}).json()["entries"]]
    assert actions[0] == ("job.delete", "admin") and ("job.create", "admin") in actions


def test_bad_input_is_400_naming_the_field_and_stores_nothing(root: httpx.Client, console_trio: Trio) -> None:
    cases = [
        ({"name": "bad-spec", "spec": "61 * * * *", "command": "true"}, "spec"),
        ({"name": "bad-tz", "spec": "@daily", "timezone": "Mars/Olympus", "command": "true"}, "timezone"),
        ({"name": "bad-field", "spec": "@daily", "command": "true", "colour": "red"}, "colour"),
        ({"name": "bad-type", "spec": "@daily", "command": "true", "timeoutSeconds": "soon"}, "timeout_seconds"),
    ]
    for body, field in cases:
        response = root.post("/jobs", json=body)
        assert response.status_code == 400, response.text
        assert error(response)["code"] == "INVALID_ARGUMENT" and error(response)["field"] == field, (field, response.text)
        assert root.get(f"/jobs/{body['name']}").status_code == 404
    assert not console_trio.sql("SELECT 1 FROM jobs WHERE name LIKE 'bad-%'")
    not_json = root.post("/jobs", content=b"name=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert not_json.status_code in (400, 415) and error(not_json)["field"] == "body"
    broken = root.post("/jobs", content=b"{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and error(broken)["field"] == "body"
    validated = root.post("/jobs:validate", json={"name": "v", "spec": "*/5 * * * *", "command": "true"})
    assert validated.status_code == 200 and int(validated.json()["nextFireMs"]) > 0
    assert error(root.post("/jobs:validate", json={"name": "v", "spec": "nope", "command": "true"}))["field"] == "spec"
    assert root.get("/jobs/v").status_code == 404  # validate stores nothing
    patch = root.post("/jobs", json={"name": "patch-me", "spec": "@daily", "command": "true"})
    assert patch.status_code == 201
    bad_patch = root.patch("/jobs/patch-me", json={"spec": "not a spec"})
    assert bad_patch.status_code == 400 and error(bad_patch)["field"] == "spec"
    assert root.get("/jobs/patch-me").json()["spec"] == "@daily"
    other = root.post("/jobs", json={"name": "patch-other", "spec": "@daily", "command": "true"}).json()
    hijack = root.patch("/jobs/patch-me", json={"id": other["id"], "name": "renamed"})
    assert hijack.status_code == 400 and error(hijack)["field"] == "id"
    assert root.get("/jobs/patch-other").status_code == 200 and root.get("/jobs/renamed").status_code == 404
    assert root.patch("/jobs/patch-me", json={"name": "patched-name"}).json()["name"] == "patched-name"  # a rename


def test_spec_preview_executors_dispatchers(root: httpx.Client, console_trio: Trio) -> None:
    preview = root.get("/spec/preview", params={"spec": "0 12 * * *", "tz": "Asia/Shanghai", "count": "3", "after": "1"})
    assert preview.status_code == 200 and [int(ms) for ms in preview.json()["fireMs"]] == [14400000, 100800000, 187200000]
    assert error(root.get("/spec/preview", params={"spec": "0 12 * * *", "count": "many"}))["field"] == "count"
    assert error(root.get("/spec/preview", params={"spec": "bad"}))["field"] == "spec"
    # H is spread per job name: the preview for a job shows that job's real next time.
    hashed = root.post("/jobs", json={"name": "hashed-job", "spec": "H H * * *", "command": "true"}).json()
    first = root.get("/spec/preview", params={"spec": "H H * * *", "job": "hashed-job", "count": "1"}).json()["fireMs"][0]
    assert first == hashed["nextFireMs"]
    assert [e["address"] for e in root.get("/executors").json()["executors"]] == [console_trio.executor]
    assert root.get("/dispatchers").json()["dispatchers"][0]["address"] == console_trio.dispatcher
    assert root.get("/whoami").json() == {
        "name": "admin",
        "role": "admin",
        "kind": "session",
        "expiresMs": root.get("/whoami").json()["expiresMs"],
    }


def test_roles_viewer_403_on_writes_operator_may_operate(root: httpx.Client, url: str, tokens: dict[str, str]) -> None:
    assert root.post("/jobs", json={"name": "roles-job", "spec": "@yearly", "command": "true"}).status_code == 201
    viewer = httpx.Client(base_url=url + "/api/v1", headers=bearer(tokens["viewer"]), timeout=30)
    operator = httpx.Client(base_url=url + "/api/v1", headers=bearer(tokens["operator"]), timeout=30)
    assert viewer.get("/jobs/roles-job").status_code == 200 and viewer.get("/runs").status_code == 200
    writes = [
        ("POST", "/jobs", {"name": "by-viewer", "spec": "@daily", "command": "true"}),
        ("PATCH", "/jobs/roles-job", {"command": "false"}),
        ("DELETE", "/jobs/roles-job", None),
        ("POST", "/jobs/roles-job/run", None),
        ("POST", "/jobs/roles-job/pause", None),
        ("POST", "/jobs/roles-job/resume", None),
        ("POST", "/runs/1-1-1/kill", None),
    ]
    for method, path, body in writes:
        response = viewer.request(method, path, json=body)
        assert response.status_code == 403 and error(response)["code"] == "PERMISSION_DENIED", (method, path, response.text)
    assert root.get("/jobs/roles-job").json()["command"] == "true" and root.get("/jobs/by-viewer").status_code == 404
    assert operator.post("/jobs/roles-job/pause").status_code == 200
    assert operator.post("/jobs", json={"name": "by-operator", "spec": "@daily", "command": "true"}).status_code == 403
    assert operator.delete("/jobs/roles-job").status_code == 403


def test_kill_a_running_run(root: httpx.Client) -> None:
    assert root.post("/jobs", json={"name": "sleeper", "spec": "@yearly", "command": "sleep 30"}).status_code == 201
    run_id = root.post("/jobs/sleeper/run").json()["firstRunId"]
    wait_for(lambda: root.get(f"/runs/{run_id}").json().get("status") == "running", 20, "the run to start")
    killed = root.post(f"/runs/{run_id}/kill")
    assert killed.status_code == 200 and killed.json()["killed"] is True
    wait_for(lambda: root.get(f"/runs/{run_id}").json().get("status") == "killed", 20, "the run to end killed")


def test_paging_loses_nothing(root: httpx.Client) -> None:
    names = {f"page-{i:02d}" for i in range(7)}
    for name in names:
        assert root.post("/jobs", json={"name": name, "spec": "@yearly", "command": "true"}).status_code == 201
    seen: list[str] = []
    token = ""
    for _ in range(10):
        page = root.get("/jobs", params={"q": "page-", "pageSize": "3", "pageToken": token}).json()
        seen += [j["name"] for j in page["jobs"]]
        token = page["nextPageToken"]
        if not token:
            break
    assert sorted(seen) == sorted(names)
    run_ids = set()
    for _ in range(4):
        run_ids.add(root.post("/jobs/page-00/run").json()["firstRunId"])
    wait_for(lambda: len(root.get("/runs", params={"job": "page-00"}).json()["runs"]) == 4, 20, "4 runs recorded")
    collected: list[str] = []
    token = ""
    for _ in range(10):
        page = root.get("/runs", params={"job": "page-00", "pageSize": "3", "pageToken": token}).json()
        collected += [r["runId"] for r in page["runs"]]
        token = page["nextPageToken"]
        if not token:
            break
    assert sorted(collected) == sorted(run_ids)
    assert error(root.get("/jobs", params={"pageToken": "garbage"}))["field"] == "page_token"


def test_cookie_sessions_need_the_csrf_header_for_writes(console_trio: Trio, url: str) -> None:
    client = browser_login(url, "admin", admin_password(console_trio))
    csrf = csrf_of(client.get("/jobs").text)
    assert client.get("/api/v1/jobs").status_code == 200  # reads need no token
    body = {"name": "via-cookie", "spec": "@yearly", "command": "true"}
    refused = client.post("/api/v1/jobs", json=body)
    assert refused.status_code == 403 and error(refused)["field"] == "X-CSRF-Token"
    assert client.post("/api/v1/jobs", json=body, headers={"X-CSRF-Token": "nope"}).status_code == 403
    assert client.get("/api/v1/jobs/via-cookie").status_code == 404
    assert client.post("/api/v1/jobs", json=body, headers={"X-CSRF-Token": csrf}).status_code == 201


def test_failed_api_logins_are_429_after_a_few(url: str) -> None:
    codes = [httpx.post(url + "/api/v1/login", json={"user": "mallory", "password": "guess"}).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    last = httpx.post(url + "/api/v1/login", json={"user": "mallory", "password": "guess"})
    assert error(last)["code"] == "RESOURCE_EXHAUSTED" and "try again in" in error(last)["message"]


@pytest.fixture
def read_only_console(console_trio: Trio) -> Iterator[str]:
    port = free_port()
    env = {"CRONTRIO_CONSOLE_LISTEN": f"127.0.0.1:{port}", "CRONTRIO_CONSOLE_READ_ONLY": "true"}
    proc = ServiceProcess("console", console_trio.conf, console_trio.root / "console.log", env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(
            lambda: proc.proc.poll() is None and httpx.get(url + "/login", timeout=2).status_code == 200, 20, "console alone"
        )
        yield url
    finally:
        assert proc.stop() == 0, proc.log_text()


def test_python_m_console_alone_read_only(console_trio: Trio, read_only_console: str, root: httpx.Client) -> None:
    url = read_only_console
    assert root.post("/jobs", json={"name": "ro-job", "spec": "@yearly", "command": "true"}).status_code == 201
    token = api_token(url, "admin", admin_password(console_trio))
    assert httpx.get(url + "/api/v1/jobs/ro-job", headers=bearer(token)).status_code == 200
    refused = httpx.post(url + "/api/v1/jobs/ro-job/run", headers=bearer(token))
    assert refused.status_code == 403 and "read-only" in error(refused)["message"]
    client = browser_login(url, "admin", admin_password(console_trio))
    page = client.get("/jobs/ro-job")
    assert "Run now" not in page.text and "read-only" in page.text
    assert client.post("/jobs/ro-job/run", data={"csrf": csrf_of(page.text)}).status_code == 403
    assert not console_trio.sql("SELECT 1 FROM runs WHERE job_name = 'ro-job'")
    assert httpx.get(url + "/healthz").status_code == 404  # only the monitor serves /healthz


def test_downstream_jobs_and_the_next_firings(root: httpx.Client) -> None:
    assert root.post("/jobs", json={"name": "up-1", "spec": "30 12 1 1 *", "command": "true"}).status_code == 201
    after = {"spec": "", "command": "true", "after": [{"job": "up-1", "when": "always"}]}
    for name in ("down-b", "down-a"):
        assert root.post("/jobs", json={"name": name, **after}).status_code == 201
    down = root.get("/jobs", params={"downstreamOf": "up-1"}).json()
    assert [j["name"] for j in down["jobs"]] == ["down-a", "down-b"] and down["nextPageToken"] == ""
    assert root.get("/jobs", params={"downstreamOf": "down-a"}).json()["jobs"] == []
    assert root.post("/jobs", json={"name": "daily-soon", "spec": "@daily", "command": "true"}).status_code == 201
    upcoming = root.get("/jobs", params={"nextFirings": "true", "pageSize": "100"}).json()["jobs"]
    times = [int(j["nextFireMs"]) for j in upcoming]
    assert times == sorted(times) and {"daily-soon", "up-1"} <= {j["name"] for j in upcoming}
    names = [j["name"] for j in upcoming]
    assert names.index("daily-soon") < names.index("up-1") and "down-a" not in names  # no schedule of its own
