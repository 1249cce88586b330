"""GET /api/v1/jobs:export and POST /api/v1/jobs:import on a real trio: the
cronctl document over HTTP, admin only, idempotent, nothing stored from a
document with a bad job or (without ?update=true) a conflict."""

from __future__ import annotations

import httpx
import pytest

from testing_support.trio import Trio
from tests.e2e.console_helpers import add_user, admin_password, api_token, bearer, console_trio, console_url

__all__ = ["console_trio"]
pytestmark = pytest.mark.xdist_group("console")


def test_export_import_through_the_json_api(console_trio: Trio) -> None:
    url = console_url(console_trio)
    root = httpx.Client(
        base_url=url + "/api/v1", headers=bearer(api_token(url, "admin", admin_password(console_trio))), timeout=30
    )
    add_user(console_trio, "vic", "viewer", "vic-password-1")
    viewer = httpx.Client(base_url=url + "/api/v1", headers=bearer(api_token(url, "vic", "vic-password-1")), timeout=30)
    job = {"name": "api-xp", "spec": "@daily", "command": "true", "env": {"KEY": "s3cret"}, "tags": ["api"], "owner": "web"}
    assert root.post("/jobs", json=job).status_code == 201

    assert viewer.get("/jobs:export", params={"name": "api-xp"}).status_code == 403  # reveal needs admin
    exported = root.get("/jobs:export", params={"name": "api-xp"})
    assert exported.status_code == 200, exported.text
    doc = exported.json()
    (entry,) = doc["jobs"]
    assert (entry["env"], entry["tags"], entry["owner"]) == ({"KEY": "s3cret"}, ["api"], "web")

    again = root.post("/jobs:import", json=doc)
    assert again.status_code == 200, again.text
    assert again.json()["jobs"] == [{"name": "api-xp", "action": "unchanged"}]

    entry["owner"] = "ops"
    conflict = root.post("/jobs:import", json=doc)
    assert conflict.status_code == 409 and "api-xp" in conflict.json()["error"]["message"]
    dry = root.post("/jobs:import", params={"update": "true", "dryRun": "true"}, json=doc)
    assert dry.json() == {"dryRun": True, "stored": False, "jobs": [{"name": "api-xp", "action": "update"}]}
    assert root.get("/jobs/api-xp").json()["owner"] == "web"
    assert root.post("/jobs:import", params={"update": "true"}, json=doc).status_code == 200
    assert root.get("/jobs/api-xp").json()["owner"] == "ops"

    doc["jobs"].append({"name": "api-bad", "spec": "61 * * * *", "command": "true"})
    entry["owner"] = "nobody"
    bad = root.post("/jobs:import", params={"update": "true"}, json=doc)
    assert bad.status_code == 400
    assert any(p.startswith("job api-bad: spec:") for p in bad.json()["error"]["problems"])
    assert root.get("/jobs/api-xp").json()["owner"] == "ops"  # nothing stored
    assert root.get("/jobs/api-bad").status_code == 404
