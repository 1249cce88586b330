"""The console's job form (add, edit, clone) and delete on a real trio:
every cronctl field, errors shown at the field the admin API names with
nothing stored, secrets kept on edit, a delete that warns about the jobs
running after it."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from crontrio.console.jobform import FIELDS
from testing_support.services import wait_for
from testing_support.trio import Trio
from tests.e2e.console_helpers import (  # fixtures
    add_user,
    admin,
    api,
    browser_login,
    console_trio,
    csrf_of,
    url,
)

__all__ = ["admin", "api", "console_trio", "url"]
pytestmark = pytest.mark.xdist_group("console")


def field_error(page: str, name: str) -> str:
    match = re.search(rf'id="err-{name}"[^>]*>([^<]*)<', page)
    return html.unescape(match.group(1)) if match else ""


def textarea(page: str, name: str) -> str:
    match = re.search(rf'<textarea[^>]*name="{name}"[^>]*>([^<]*)</textarea>', page)
    assert match, name
    return html.unescape(match.group(1))


def form_values(page: str) -> dict[str, str]:
    """What a browser would send from the job form as shown (inputs, textareas, selects, checkboxes)."""
    values: dict[str, str] = {}
    for tag in re.findall(r"<input [^>]*>", page):
        name, value = re.search(r'name="([^"]+)"', tag), re.search(r'value="([^"]*)"', tag)
        if name and ('type="checkbox"' not in tag or " checked" in tag):
            values[name.group(1)] = html.unescape(value.group(1)) if value else "on"
    for name, text in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>([^<]*)</textarea>', page):
        values[name] = html.unescape(text)
    for name, options in re.findall(r'<select[^>]*name="([^"]+)">(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', options) or re.search(r'<option value="([^"]*)"', options)
        values[name] = html.unescape(chosen.group(1)) if chosen else ""
    return values


def post_form(client: httpx.Client, path: str, csrf_page: str, **values: str) -> httpx.Response:
    return client.post(path, data={"csrf": csrf_of(csrf_page), **values})


def test_the_form_has_every_cronctl_field(admin: httpx.Client) -> None:
    page = admin.get("/jobs:new")
    assert page.status_code == 200
    for name in FIELDS:
        assert f'name="{name}"' in page.text, name
    # The common case is short: only the first group is unfolded.
    assert page.text.count("<details") >= 7 and " open>" not in page.text


def test_a_bad_spec_is_shown_at_its_field_and_nothing_is_stored(admin: httpx.Client, api: httpx.Client) -> None:
    form = admin.get("/jobs:new").text
    refused = post_form(admin, "/jobs:new", form, name="form-job", spec="61 * * * *", command="echo hi", type="shell")
    assert refused.status_code == 400
    assert "spec" in field_error(refused.text, "spec") or field_error(refused.text, "spec")
    assert api.get("/jobs/form-job").status_code == 404
    # Two bad fields at once: the one the form cannot read and the one the API refuses.
    both = post_form(admin, "/jobs:new", form, name="form-job", spec="61 * * * *", command="x", retries="many")
    assert both.status_code == 400 and field_error(both.text, "retries") and field_error(both.text, "spec")
    assert 'id="group-retries" open' in both.text  # the group with the error unfolds
    assert api.get("/jobs/form-job").status_code == 404
    # A field the admin API names under its option name (timeout) lands at timeout_seconds.
    slow = post_form(admin, "/jobs:new", form, name="form-job", spec="@daily", command="x", timeout_seconds="-5")
    assert slow.status_code == 400 and "timeout" in field_error(slow.text, "timeout_seconds")
    fixed = post_form(
        admin,
        "/jobs:new",
        form,
        name="form-job",
        spec="30 2 * * *",
        timezone="Europe/Berlin",
        command="echo hi",
        type="shell",
        retries="2",
        env="TOKEN=s3cret\nMODE=fast",
        keywords="ERROR",
        overlap_policy="skip",
        paused="on",
    )
    assert fixed.status_code == 302 and fixed.headers["location"] == "/jobs/form-job?msg=created"
    stored = api.get("/jobs/form-job", params={"reveal": "true"}).json()
    assert stored["timezone"] == "Europe/Berlin" and stored["retries"] == 2 and stored["overlapPolicy"] == "skip"
    assert stored["paused"] is True
    assert stored["env"] == {"TOKEN": "s3cret", "MODE": "fast"} and stored["keywords"] == ["ERROR"]


def test_the_preview_is_shown_with_the_form(admin: httpx.Client) -> None:
    form = admin.get("/jobs:new").text
    page = post_form(admin, "/jobs:new", form, name="", spec="0 9 * * *", timezone="Asia/Shanghai", command="x")
    times = re.findall(r"<li>([^<]*Asia/Shanghai)", page.text)
    assert len(times) == 5 and all("09:00:00 Asia/Shanghai" in t for t in times)


def test_edit_keeps_redacted_secrets_and_clone_does_not_copy_them(admin: httpx.Client, api: httpx.Client) -> None:
    body = {
        "name": "secretive",
        "spec": "@daily",
        "command": "true",
        "env": {"PASSWORD": "hunter2", "PLAIN": "x"},
        "description": "Copies\nthe books",
        "owner": "team-books",
        "tags": ["books", "nightly"],
        "retries": 2,
    }
    assert api.post("/jobs", json=body).status_code == 201
    form = admin.get("/jobs/secretive/edit")
    shown = textarea(form.text, "env")
    assert "hunter2" not in form.text and "PASSWORD=<redacted>" in shown
    values = {**form_values(form.text), "spec": "@hourly"}  # what the browser sends after one change
    saved = admin.post("/jobs/secretive/edit", data=values)
    assert saved.status_code == 302, saved.text
    stored = api.get("/jobs/secretive", params={"reveal": "true"}).json()
    assert stored["spec"] == "@hourly" and stored["env"] == {"PASSWORD": "hunter2", "PLAIN": "x"}
    job_page = admin.get("/jobs/secretive").text
    assert (
        "Copies\nthe books" in job_page
        and "team-books" in job_page
        and '<a class="badge tag" href="/jobs?tag=nightly">nightly</a>' in job_page
    )
    # Every other field is as it was.
    assert (stored["description"], stored["owner"], stored["tags"], stored["retries"]) == (
        "Copies\nthe books",
        "team-books",
        ["books", "nightly"],
        2,
    )
    clone = admin.get("/jobs:new", params={"clone": "secretive"})
    assert 'value="secretive-copy"' in clone.text and "PASSWORD=\n" in textarea(clone.text, "env") + "\n"
    assert "hunter2" not in clone.text and "&lt;redacted&gt;" not in textarea(clone.text, "env")


def test_delete_warns_about_downstream_jobs(admin: httpx.Client, api: httpx.Client) -> None:
    assert api.post("/jobs", json={"name": "extract", "spec": "@daily", "command": "true"}).status_code == 201
    after = {"spec": "", "command": "true", "after": [{"job": "extract"}]}
    assert api.post("/jobs", json={"name": "load", **after}).status_code == 201
    assert api.post("/jobs", json={"name": "load-paused", "paused": True, **after}).status_code == 201
    job_page = admin.get("/jobs/extract").text
    assert re.search(r'id="downstream">.*load.*load-paused', job_page)
    assert re.search(r'id="upstream">.*extract', admin.get("/jobs/load").text)
    confirm = admin.get("/jobs/extract/delete")
    assert 'id="dependents"' in confirm.text and "/jobs/load-paused" in confirm.text
    assert 'id="dependents"' not in admin.get("/jobs/load/delete").text
    assert api.get("/jobs/extract").status_code == 200  # asking is not deleting
    gone = post_form(admin, "/jobs/extract/delete", confirm.text)
    assert gone.status_code == 302 and api.get("/jobs/extract").status_code == 404


def test_a_viewer_gets_no_form_controls_and_cannot_post(console_trio: Trio, url: str, api: httpx.Client) -> None:
    add_user(console_trio, "vic", "viewer", "vic-password-1")
    viewer = browser_login(url, "vic", "vic-password-1")
    assert api.post("/jobs", json={"name": "viewed", "spec": "@daily", "command": "true"}).status_code == 201
    page = viewer.get("/jobs/viewed").text
    assert "/jobs/viewed/edit" not in page and "/jobs/viewed/delete" not in page
    assert "/jobs:new" not in viewer.get("/jobs").text
    refused = post_form(viewer, "/jobs:new", page, name="by-viewer", spec="@daily", command="true")
    assert refused.status_code == 403 and api.get("/jobs/by-viewer").status_code == 404
    assert post_form(viewer, "/jobs/viewed/delete", page).status_code == 403
    assert api.get("/jobs/viewed").status_code == 200


def names_listed(page: str) -> list[str]:
    return re.findall(r'<td class="job-name"><a href="[^"]*">([^<]*)</a>', page)


def test_jobs_filtered_by_state(admin: httpx.Client, api: httpx.Client) -> None:
    for name, extra in (("st-ok", {}), ("st-paused", {"paused": True}), ("st-failing", {}), ("st-recovered", {})):
        command = "false" if name in ("st-failing", "st-recovered") else "true"
        assert api.post("/jobs", json={"name": name, "spec": "@yearly", "command": command, **extra}).status_code == 201
    failed = [api.post(f"/jobs/{name}/run").json()["firstRunId"] for name in ("st-failing", "st-recovered")]
    wait_for(lambda: all(api.get(f"/runs/{r}").json().get("status") == "failed" for r in failed), 30, "the runs to fail")
    assert api.patch("/jobs/st-recovered", json={"command": "true"}).status_code == 200
    ok = api.post("/jobs/st-recovered/run").json()["firstRunId"]
    wait_for(lambda: api.get(f"/runs/{ok}").json().get("status") == "succeeded", 30, "the run to succeed")
    assert names_listed(admin.get("/jobs", params={"q": "st-", "state": "paused"}).text) == ["st-paused"]
    assert names_listed(admin.get("/jobs", params={"q": "st-", "state": "failing"}).text) == ["st-failing"]
    assert names_listed(admin.get("/jobs", params={"q": "st-", "state": "invalid"}).text) == []
    assert len(names_listed(admin.get("/jobs", params={"q": "st-"}).text)) == 4


def test_bulk_actions_ask_first_then_act_on_each_job(admin: httpx.Client, api: httpx.Client) -> None:
    for name in ("bulk-a", "bulk-b", "bulk-c"):
        assert api.post("/jobs", json={"name": name, "spec": "@yearly", "command": "true"}).status_code == 201
    after = {"spec": "", "command": "true", "after": [{"job": "bulk-a"}]}
    assert api.post("/jobs", json={"name": "bulk-after", **after}).status_code == 201
    page = admin.get("/jobs", params={"q": "bulk-"}).text
    chosen = {"action": "pause", "job": ["bulk-a", "bulk-b"]}
    assert admin.post("/jobs:bulk", data={**chosen, "confirmed": "yes"}).status_code == 403  # no CSRF token
    confirm = admin.post("/jobs:bulk", data={"csrf": csrf_of(page), **chosen})
    assert confirm.status_code == 200 and 'name="confirmed" value="yes"' in confirm.text
    assert not api.get("/jobs/bulk-a").json().get("paused")  # asking is not doing
    done = admin.post("/jobs:bulk", data={"csrf": csrf_of(page), **chosen, "confirmed": "yes"})
    assert done.status_code == 200 and done.text.count('class="ok"') == 2
    assert api.get("/jobs/bulk-a").json()["paused"] and api.get("/jobs/bulk-b").json()["paused"]
    assert not api.get("/jobs/bulk-c").json().get("paused")
    doomed = {"action": "delete", "job": ["bulk-a", "bulk-c"]}
    warned = admin.post("/jobs:bulk", data={"csrf": csrf_of(page), **doomed})
    assert 'id="dependents"' in warned.text and "bulk-after" in warned.text
    admin.post("/jobs:bulk", data={"csrf": csrf_of(page), **doomed, "confirmed": "yes"})
    assert api.get("/jobs/bulk-a").status_code == 404 and api.get("/jobs/bulk-c").status_code == 404
    assert api.get("/jobs/bulk-b").status_code == 200
