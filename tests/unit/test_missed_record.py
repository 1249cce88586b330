"""common.missed: the one MISSED record the dispatcher and the monitor write."""

from __future__ import annotations

from crontrio.common import status
from crontrio.common.missed import missed_record
from crontrio.common.model import TRIGGER_CATCH_UP, TRIGGER_SCHEDULE, Job, make_run_id


def test_a_missed_record_is_the_first_attempt_finished_when_found() -> None:
    job = Job(id=7, name="nightly", spec="0 3 * * *", command="true")
    record = missed_record(job, 1_000, "nobody ran it", at_ms=5_000, dispatcher="d1", trigger=TRIGGER_CATCH_UP)
    assert record.run_id == make_run_id(7, 1_000, 1)
    assert (record.job_id, record.job_name, record.scheduled_ms, record.attempt) == (7, "nightly", 1_000, 1)
    assert record.status == status.MISSED
    assert (record.created_ms, record.finished_ms) == (5_000, 5_000)
    assert (record.error, record.dispatcher, record.trigger) == ("nobody ran it", "d1", TRIGGER_CATCH_UP)


def test_the_monitor_records_without_a_dispatcher_under_the_schedule_trigger() -> None:
    job = Job(id=1, name="j", spec="* * * * *", command="true")
    record = missed_record(job, 60_000, "missed", at_ms=61_000)
    assert (record.dispatcher, record.trigger) == ("", TRIGGER_SCHEDULE)
