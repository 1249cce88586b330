"""job_batches builds the Jobs of a full load through their slots, not
Job.__init__: they must be the Jobs Job(*values) makes, every field set."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from crontrio.common.model import Dependency, Job
from crontrio.common.store import job_batches

FULL = Job(
    name="full",
    spec="H H * * MON-FRI",
    command="https://example.com/hook",
    id=7,
    timezone="Asia/Kolkata",
    type="http",
    http_method="POST",
    http_headers={"X-Trace": "1"},
    http_body="{}",
    expected_statuses=(200,),
    timeout_seconds=2.5,
    retries=3,
    enabled=False,
    env={"MODE": "x"},
    after=(Dependency("plain", "always"),),
    tags=("nightly",),
    created_ms=1,
    updated_ms=2,
    defect="",
)
PLAIN = Job(name="plain", spec="0 12 * * *", command="true", id=8)


def _columns(jobs: list[Job]) -> list[object]:
    return [[getattr(j, name) for j in jobs] for name in job_batches._FIELDS]


@pytest.mark.parametrize("by_slots", [True, False])
def test_jobs_built_a_field_at_a_time_equal_those_of_job_init(monkeypatch: pytest.MonkeyPatch, by_slots: bool) -> None:
    monkeypatch.setattr(job_batches, "_BY_SLOTS", by_slots)
    wanted = [FULL, PLAIN, FULL]
    built = job_batches._jobs(len(wanted), _columns(wanted))
    assert built == wanted
    assert all(type(j) is Job for j in built)
    for job, want in zip(built, wanted, strict=True):
        # Every field set (an unset slot would raise), with the very values given.
        assert all(getattr(job, f) is getattr(want, f) for f in job_batches._FIELDS)
        with pytest.raises(dataclasses.FrozenInstanceError):
            job.name = "x"  # type: ignore[misc]


def test_an_endless_column_fills_every_job_and_no_more() -> None:
    columns = _columns([PLAIN, PLAIN])
    columns[job_batches._FIELDS.index("defect")] = itertools.repeat("")
    assert job_batches._jobs(2, columns) == [PLAIN, PLAIN]


def test_slot_building_is_used_for_job_as_it_is() -> None:
    # Job has neither __post_init__ nor fields left out of __init__: were one
    # added, _BY_SLOTS turns false and Job.__init__ builds them again.
    assert job_batches._BY_SLOTS


def test_each_distinct_converts_each_text_once_and_refuses_any_other_type() -> None:
    calls: list[object] = []

    def convert(value: object) -> str:
        calls.append(value)
        return f"<{value}>"

    assert job_batches._each_distinct(("a", "a", "a"), convert) == ["<a>"] * 3
    assert job_batches._each_distinct(("a", None, "b", "a"), convert) == ["<a>", "<None>", "<b>", "<a>"]
    assert sorted(map(str, calls)) == ["None", "a", "a", "b"]  # once per distinct value of each column
    # A number, bytes or a float among texts (however many texts): the row-by-row path.
    for column in (("a", 1), (1,), ("a", "a", b"a"), (2.0, "x", "x")):
        with pytest.raises(job_batches._RowByRowError):
            job_batches._each_distinct(column, convert)
