"""Validation of a job's description, owner and tags: limits, the field named."""

from __future__ import annotations

import dataclasses

import pytest

from crontrio.common.convert import job_from_pb, job_to_pb
from crontrio.common.errors import ValidationError
from crontrio.common.jobs import validate_job
from crontrio.common.model import Job

BASE = Job(name="j", spec="@daily", command="true")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"description": "x" * 1025}, "description"),
        ({"description": "bell\x07"}, "description"),
        ({"description": "cr\r"}, "description"),
        ({"owner": "two words"}, "owner"),
        ({"owner": "o" * 129}, "owner"),
        ({"owner": "esc\x1b"}, "owner"),
        ({"tags": ("Upper",)}, "tags"),
        ({"tags": ("has space",)}, "tags"),
        ({"tags": ('q"uote',)}, "tags"),
        ({"tags": ("",)}, "tags"),
        ({"tags": ("t" * 33,)}, "tags"),
        ({"tags": ("a", "a")}, "tags"),
        ({"tags": tuple(f"t{i}" for i in range(21))}, "tags"),
    ],
)
def test_bad_meta_is_refused_naming_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        validate_job(dataclasses.replace(BASE, **changes))  # type: ignore[arg-type]
    assert err.value.field == field


def test_good_meta_passes_and_survives_the_message() -> None:
    job = dataclasses.replace(
        BASE,
        description="Line one\n\tline two, ünïcode",
        owner="alice@example.com",
        tags=(*[f"t{i}" for i in range(19)], "a.b_c-d"),
    )
    assert validate_job(job) == job
    assert job_from_pb(job_to_pb(job)) == job
