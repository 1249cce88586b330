"""The jobs document of `cronctl job export/import`: every field round-trips,
and every problem is found at once, naming the job and the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crontrio.common.job_transfer import FIELDS, DocumentError, document, jobs_of
from crontrio.common.model import Dependency, Job

FULL = Job(
    name="full",
    spec="*/5 * * * *",
    command="https://example.com/hook",
    timezone="Europe/Berlin",
    type="http",
    http_method="POST",
    http_headers={"Authorization": "Bearer s3cret"},
    http_body='{"a": 1}',
    expected_statuses=(200, 204),
    timeout_seconds=30.5,
    timeout_action="alert",
    retries=3,
    retry_interval_seconds=10,
    enabled=False,
    target="group:web",
    overlap_policy="skip",
    misfire_policy="run_once",
    catch_up_window_seconds=600,
    retry_backoff=2,
    retry_max_interval_seconds=300,
    retry_jitter=0.1,
    route_strategy="failover",
    follow_redirects=True,
    skip_tls_verify=True,
    keywords=("ERROR",),
    keyword_action="notify",
    after=(Dependency("upstream", "always"),),
    notify_policy="on_failure",
    notify_channels=("email",),
    notify_emails=("ops@example.com",),
    notify_phones=("+15550100",),
    description="Calls the hook.\nTwice an hour.",
    owner="team-web",
    tags=("web", "hooks"),
)


def test_every_field_round_trips_through_json() -> None:
    text = json.dumps(document([FULL]))
    (back,) = jobs_of(json.loads(text))
    assert back == FULL
    entry = json.loads(text)["jobs"][0]
    assert set(entry) == set(FIELDS)
    assert entry["http_headers"] == {"Authorization": "Bearer s3cret"}  # real values, not <redacted>


def _doc(*jobs: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"format": "crontrio.jobs", "version": 1, "jobs": list(jobs), **top}


def test_every_problem_is_listed_naming_job_and_field() -> None:
    with pytest.raises(DocumentError) as err:
        jobs_of(
            _doc(
                {"name": "ok", "spec": "@daily", "command": "true"},
                {"name": "badspec", "spec": "61 * * * *", "command": "true"},
                {"name": "badtype", "spec": "@daily", "command": "true", "retries": "three"},
                {"name": "unknown", "spec": "@daily", "command": "true", "colour": "red"},
                {"name": "badtag", "spec": "@daily", "command": "true", "tags": ["Not A Slug"]},
                {"spec": "@daily", "command": "true"},
                {"name": "ok", "spec": "@daily", "command": "true"},
            )
        )
    problems = err.value.problems
    assert problems[0].startswith("job badspec: spec:")
    assert problems[1].startswith("job badtype: retries: expected a whole number")
    assert problems[2].startswith("job unknown: colour: unknown field")
    assert problems[3].startswith("job badtag: tags:")
    assert problems[4].startswith("job #6: name: is required")
    assert problems[5] == "job ok: name: listed twice in the document"
    assert len(problems) == 6


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"jobs": []}, "format:"),
        (_doc(version=2), "version: this crontrio reads version 1"),
        ({"format": "crontrio.jobs", "version": 1, "jobs": {}}, "jobs: expected a list"),
        ([], "format:"),
    ],
)
def test_a_document_of_another_shape_or_version_is_refused(data: Any, fragment: str) -> None:
    with pytest.raises(DocumentError) as err:
        jobs_of(data)
    assert fragment in str(err.value)
