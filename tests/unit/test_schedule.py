from __future__ import annotations

from crontrio.common.cron import CronSchedule
from crontrio.common.model import Job
from crontrio.common.schedule import Schedule

T0 = 1_800_000_000_000  # 2027-01-15T08:00:00Z, a whole minute
WEEK = 7 * 24 * 3600_000  # a catch-up window that drops nothing


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


def test_jobs_sharing_a_parsed_schedule_fire_independently() -> None:
    cron = CronSchedule.parse("*/2 * * * * *", "UTC")
    assert CronSchedule.parse("*/2 * * * * *", "UTC") is cron  # parsed once, shared
    s = Schedule()
    s.upsert(Job(id=1, name="a", spec="*/2 * * * * *", command="true"), cron, T0)
    s.upsert(Job(id=2, name="b", spec="*/2 * * * * *", command="true"), cron, T0)
    due, _ = s.pop_due(T0 + 2000, 60_000)
    assert sorted((j.id, ms - T0) for j, ms in due) == [(1, 2000), (2, 2000)]
    # Taking one out, or moving it to another schedule, leaves the other alone.
    s.remove(1)
    s.upsert(*job(2, "*/3 * * * * *"), T0 + 2000)
    s.upsert(Job(id=3, name="c", spec="*/2 * * * * *", command="true"), cron, T0 + 2000)
    due, _ = s.pop_due(T0 + 6000, 60_000)
    assert [(j.id, ms - T0) for j, ms in due] == [(2, 3000), (3, 4000), (2, 6000), (3, 6000)]


def test_an_early_estimate_never_fires_and_yields_the_exact_time() -> None:
    # T0 is a Friday 08:00 UTC; the estimate only knows "12:30 some day".
    weekly = CronSchedule.parse("30 12 * * MON", "UTC")
    assert weekly.estimate_next_after(T0) == (T0 + 45 * 360_000, False)
    s = Schedule()
    s.upsert(Job(id=1, name="weekly", spec="30 12 * * MON", command="true"), weekly, T0)
    s.upsert(*job(2, "0 0 9 * * *"), T0)  # daily at 09:00 UTC
    assert s.next_due_ms() == T0 + 3600_000
    monday = T0 + (3 * 24 * 10 + 45) * 360_000
    due, _ = s.pop_due(T0 + 5 * 3600_000, WEEK)  # past Friday 12:30: nothing for the weekly job
    assert [(j.id, ms - T0) for j, ms in due] == [(2, 3600_000)]
    assert s.next_fire_ms(1) == monday
    due, _ = s.pop_due(monday, WEEK)
    assert [(j.id, ms) for j, ms in due] == [
        (2, T0 + 25 * 3600_000),
        (2, T0 + 49 * 3600_000),
        (2, T0 + 73 * 3600_000),
        (1, monday),
    ]


def test_asking_for_a_fire_time_does_not_fire_twice() -> None:
    s = Schedule()
    s.upsert(*job(1, "0 12 * * *"), T0)
    s.upsert(*job(2, "30 12 * * MON"), T0)
    # Asking resolves the estimates; the heap must still hold one item per job.
    assert s.next_fire_ms(1) == T0 + 4 * 3600_000
    assert s.next_fire_ms(2) == T0 + 765 * 360_000
    due, _ = s.pop_due(T0 + 4 * 24 * 3600_000, WEEK)
    assert [(j.id, ms - T0) for j, ms in due] == [
        (1, 4 * 3600_000),
        (1, 28 * 3600_000),
        (1, 52 * 3600_000),
        (1, 76 * 3600_000),
        (2, 765 * 360_000),
    ]


def test_a_spec_edit_takes_the_new_schedule() -> None:
    s = Schedule()
    s.upsert(*job(1, "0 12 * * *"), T0)
    assert s.next_fire_ms(1) == T0 + 4 * 3600_000
    s.upsert(*job(1, "0 9 * * *"), T0 + 1000)
    assert s.next_fire_ms(1) == T0 + 3600_000
    due, _ = s.pop_due(T0 + 5 * 3600_000, WEEK)
    assert [ms - T0 for _, ms in due] == [3600_000]  # 12:00 is gone with the old spec


def test_soonest_gives_the_next_firings_in_order_even_behind_lower_bounds() -> None:
    s = Schedule()
    specs = ["0 3 * * *", "30 2 * * *", "*/7 * * * *", "0 0 1 * *", "15 8 * * *", "0 12 * * MON", "45 23 31 12 *"]
    for i, spec in enumerate(specs, 1):
        s.upsert(*job(i, spec), T0)
    s.remove(3)
    expected = sorted((CronSchedule.parse(spec, "UTC").next_after(T0), i) for i, spec in enumerate(specs, 1) if i != 3)
    got = s.soonest(4)
    assert [(ms, j.id) for ms, j in got] == expected[:4]
    assert [(ms, j.id) for ms, j in s.soonest(100)] == expected
    # Looking changes nothing that fires.
    due, _ = s.pop_due(expected[0][0], WEEK)
    assert [(j.id, ms) for j, ms in due] == [(expected[0][1], expected[0][0])]
