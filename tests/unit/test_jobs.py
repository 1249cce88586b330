from __future__ import annotations

import pytest

from crontrio.common.cron import CronSchedule
from crontrio.common.errors import ValidationError
from crontrio.common.jobs import validate_job
from crontrio.common.model import Dependency, Job

GOOD = Job(name="backup", spec="30 2 * * *", command="/usr/local/bin/backup.sh")


def test_valid_job_is_normalised() -> None:
    job = validate_job(
        Job(
            name=" web.ping ",
            spec="*/5  * * * *",
            command=" https://example.com/x ",
            type="HTTP",
            http_method="post",
            timezone="europe/berlin",
        )
    )
    assert (job.name, job.spec, job.command, job.type, job.http_method, job.timezone) == (
        "web.ping",
        "*/5 * * * *",
        "https://example.com/x",
        "http",
        "POST",
        "Europe/Berlin",
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": "x" * 129}, "name"),
        ({"spec": "61 * * * *"}, "spec"),
        ({"spec": "0 0 31 2 *"}, "spec"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"type": "ftp"}, "type"),
        ({"command": ""}, "command"),
        ({"type": "http", "command": "not a url"}, "command"),
        ({"type": "http", "command": "ftp://host/x"}, "command"),
        ({"type": "http", "command": "https://x", "http_method": "DELETE"}, "method"),
        ({"http_headers": {"Bad Header": "x"}}, "headers"),
        ({"expected_statuses": (99,)}, "expected_statuses"),
        ({"timeout_seconds": -1.0}, "timeout"),
        ({"timeout_seconds": float("nan")}, "timeout"),
        ({"timeout_seconds": 8 * 24 * 3600.0}, "timeout"),
        ({"timeout_action": "ignore"}, "timeout_action"),
        ({"timeout_action": ""}, "timeout_action"),
        ({"retries": -1}, "retries"),
        ({"retries": 101}, "retries"),
        ({"retry_interval_seconds": -0.5}, "retry_interval"),
        ({"workdir": "relative/dir"}, "workdir"),
        ({"env": {"1BAD": "x"}}, "env"),
        ({"target": "two words"}, "target"),
        # Checks the load skips for the empty and in-range values most jobs
        # hold (validate_job_schedule's fast path) still refuse each bad one.
        ({"target": " lead"}, "target"),
        ({"target": "x" * 256}, "target"),
        ({"http_body": "x" * (16 * 1024 * 1024 + 1)}, "body"),
        ({"expected_statuses": (200, 600)}, "expected_statuses"),
        ({"timeout_seconds": float("inf")}, "timeout"),
        ({"retry_interval_seconds": float("nan")}, "retry_interval"),
        ({"catch_up_window_seconds": -1.0}, "catch_up_window"),
        ({"catch_up_window_seconds": float("nan")}, "catch_up_window"),
        ({"retry_backoff": 0.5}, "retry_backoff"),
        ({"retry_backoff": 11.0}, "retry_backoff"),
        ({"retry_max_interval_seconds": -1.0}, "retry_max_interval"),
        ({"retry_jitter": 1.5}, "retry_jitter"),
        ({"retry_jitter": float("nan")}, "retry_jitter"),
        ({"overlap_policy": "sometimes"}, "overlap"),
        ({"misfire_policy": "later"}, "misfire"),
        ({"route_strategy": "nearest"}, "route"),
        ({"run_as_user": "Not A User"}, "user"),
        ({"run_as_user": "alice", "type": "http", "command": "https://x"}, "user"),
        ({"keywords": ("",)}, "keywords"),
        ({"keywords": tuple(f"k{i}" for i in range(101))}, "keywords"),
        ({"keyword_action": "shrug"}, "keyword_action"),
        ({"after": (Dependency("backup"),)}, "after"),
        ({"after": (Dependency("bad name"),)}, "after"),
        ({"after": (Dependency("up"), Dependency("up"))}, "after"),
        ({"after": (Dependency("up", "sometimes"),)}, "after"),
        ({"notify_policy": "always-ish"}, "notify"),
        ({"notify_channels": ("pigeon",)}, "notify_channels"),
        ({"notify_emails": ("a b",)}, "notify_emails"),
        ({"notify_emails": ("",)}, "notify_emails"),
        ({"notify_phones": ("12",)}, "notify_phones"),
        ({"description": "bell\x07"}, "description"),
        ({"description": "x" * 1025}, "description"),
        ({"owner": "two words"}, "owner"),
        ({"owner": "x" * 129}, "owner"),
        ({"tags": ("Upper",)}, "tags"),
        ({"tags": ("a", "a")}, "tags"),
        ({"defect": "unreadable stored value: http_headers: expected a JSON object"}, "job"),
    ],
)
def test_each_bad_field_is_named(changes: dict[str, object], field: str) -> None:
    import dataclasses

    with pytest.raises(ValidationError) as err:
        validate_job(dataclasses.replace(GOOD, **changes))  # type: ignore[arg-type]
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")


def test_values_the_fast_path_skips_are_accepted() -> None:
    """Set (not empty) but valid values of the fields whose checks are skipped when empty pass too."""
    import dataclasses

    job = dataclasses.replace(
        GOOD,
        http_headers={"X-Trace": "1"},
        http_body="{}",
        expected_statuses=(200, 204),
        workdir="/srv",
        env={"MODE": "nightly"},
        target="host-1",
        run_as_user="backup",
        keywords=("ERROR",),
        after=(Dependency("restore", "on_failure"),),
        notify_channels=("email",),
        notify_emails=("ops@example.com",),
        notify_phones=("+15551234567",),
        description="nightly\tbackup\n",
        owner="team-ops",
        tags=("nightly", "db"),
    )
    assert validate_job(job) is job


def test_validate_job_schedule_returns_the_parsed_schedule() -> None:
    from crontrio.common.jobs import schedule_of, validate_job_schedule

    job, cron = validate_job_schedule(GOOD)
    assert job is GOOD  # already normal: not copied
    assert cron is not None and cron is schedule_of(job)
    _, hashed_cron = validate_job_schedule(Job(name="h-job", spec="H H * * *", command="true"))
    assert hashed_cron is not None
    assert hashed_cron.next_n(0, 3) == CronSchedule.parse("H H * * *", hash_key="h-job").next_n(0, 3)
    after_only = Job(name="after", spec="", command="true", after=(Dependency("backup"),))
    assert validate_job_schedule(after_only) == (after_only, None)
