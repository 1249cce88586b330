from __future__ import annotations

from common.cron import CronSchedule
from common.model import Job
from common.schedule import Schedule

T0 = 1_800_000_000_000  # 2027-01-15T08:00:00Z, a whole minute


def job(job_id: int, spec: str, **kw: object) -> tuple[Job, CronSchedule]:
    fields: dict[str, object] = {"command": "true", **kw}
    j = Job(id=job_id, name=f"j{job_id}", spec=spec, **fields)  # type: ignore[arg-type]
    return j, CronSchedule.parse(spec, "UTC")


def test_pop_due_returns_due_firings_in_time_order_and_advances() -> None:
    s = Schedule()
    s.upsert(*job(1, "*/2 * * * * *"), T0)
    s.upsert(*job(2, "*/3 * * * * *"), T0)
    due, dropped = s.pop_due(T0 + 6000, max_catch_up_ms=60_000)
    assert dropped == 0
    assert [(j.id, ms - T0) for j, ms in due] == [(1, 2000), (2, 3000), (1, 4000), (1, 6000), (2, 6000)]
    assert s.next_due_ms() == T0 + 8000


def test_unchanged_reload_keeps_a_pending_fire_time() -> None:
    s = Schedule()
    s.upsert(*job(1, "* * * * * *"), T0)
    assert s.next_due_ms() == T0 + 1000
    # Reloaded just after the fire time, before the loop popped it: not skipped.
    s.upsert(*job(1, "* * * * * *", command="echo new"), T0 + 1010)
    due, _ = s.pop_due(T0 + 1020, 60_000)
    assert [(j.command, ms) for j, ms in due] == [("echo new", T0 + 1000)]


def test_changed_spec_replans_and_stale_heap_items_are_ignored() -> None:
    s = Schedule()
    s.upsert(*job(1, "* * * * * *"), T0)
    s.upsert(*job(1, "*/10 * * * * *"), T0)
    due, _ = s.pop_due(T0 + 10_000, 60_000)
    assert [ms - T0 for _, ms in due] == [10_000]


def test_removed_job_never_fires() -> None:
    s = Schedule()
    s.upsert(*job(1, "* * * * * *"), T0)
    assert s.remove(1)
    assert s.pop_due(T0 + 5000, 60_000) == ([], 0)
    assert s.next_due_ms() is None
    assert not s.remove(1)


def test_a_backlog_beyond_the_catch_up_window_is_dropped_not_burst() -> None:
    s = Schedule()
    s.upsert(*job(1, "* * * * * *"), T0)
    due, dropped = s.pop_due(T0 + 120_000, max_catch_up_ms=3000)
    assert dropped == 1
    # Only firings within the window run; the rest are counted as dropped.
    assert [ms - T0 for _, ms in due] == [118_000, 119_000, 120_000]
