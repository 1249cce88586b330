"""The horizon grows with the coming burst: a big burst of overlap=allow
firings is started dispatch_ahead_ms + (its firings x per-firing cost)
before its instant, rounded up to half a second off the whole seconds, at
most MAX_DISPATCH_AHEAD_MS, and only while the firings held ahead stay
within max_firings_ahead (injected clock)."""

from __future__ import annotations

import asyncio

import pytest

from crontrio.common.config import MAX_DISPATCH_AHEAD_MS
from crontrio.common.cron import CronSchedule
from crontrio.common.model import OVERLAP_ALLOW, OVERLAP_SKIP, Job
from crontrio.common.schedule import Schedule
from crontrio.dispatcher.ahead_cost import AheadCost
from crontrio.dispatcher.scheduler import Scheduler, between_instants
from testing_support.services import wait_until

# A whole minute plus 30 s: the burst's instant T; T2 is 4 s later.
T = 1_800_000_000_000 - 1_800_000_000_000 % 60_000 + 30_000
T2 = T + 4_000
AHEAD = 1_000
# What every pass pops: dispatch_ahead_ms, moved off the whole seconds.
BASE = 1_500


def add_jobs(schedule: Schedule, count: int, at_ms: int, first_id: int, policy: str = OVERLAP_ALLOW) -> None:
    """`count` jobs firing at `at_ms` (once a minute), added well before it."""
    spec = f"{at_ms // 1000 % 60} * * * * *"
    cron = CronSchedule.parse(spec, "UTC")
    for i in range(first_id, first_id + count):
        schedule.upsert(Job(id=i, name=f"j{i}", spec=spec, command="true", overlap_policy=policy), cron, at_ms - 20_000)


def scheduler(schedule: Schedule, per_firing_ms: float, max_ahead: int = 10_000) -> Scheduler:
    async def fire(_job: Job, _fire_ms: int) -> None:
        return None

    cost = AheadCost(initial_ms=per_firing_ms)
    return Scheduler(schedule, fire, dispatch_ahead_ms=AHEAD, max_firings_ahead=max_ahead, ahead_cost=cost)


def test_the_lead_grows_with_the_size_of_the_burst() -> None:
    schedule = Schedule()
    add_jobs(schedule, 2_000, T, 1)  # lead 1,000 + 2,000 x 1 ms = 3 s, sent at T - 3.5 s
    add_jobs(schedule, 10, T2, 10_000)  # lead 1,000 + 10 ms, sent at T2 - 1.5 s
    s = scheduler(schedule, per_firing_ms=1.0)
    # Far from it, the loop must still look again before the burst's lead comes.
    far = s.horizon(T - 15_000)
    assert far.until_ms == T - 15_000 + BASE
    assert far.wake_ms is not None and T - 15_000 < far.wake_ms <= T - 3_500, far
    early = s.horizon(T - 3_501)
    assert early.until_ms == T - 3_501 + BASE, "started before its lead"
    assert early.wake_ms == T - 3_500, "the loop must look again when the burst's lead comes"
    assert s.horizon(T - 3_500).until_ms == T
    # The small burst after it keeps (about) the base lead.
    assert s.horizon(T2 - 1_501).until_ms < T2
    assert s.horizon(T2 - 1_500).until_ms == T2


def test_the_lead_is_at_most_max_dispatch_ahead() -> None:
    schedule = Schedule()
    add_jobs(schedule, 200, T, 1)  # 1,000 + 200 x 100 ms = 21 s: capped
    s = scheduler(schedule, per_firing_ms=100.0)
    assert s.horizon(T - MAX_DISPATCH_AHEAD_MS - 1).until_ms < T
    assert s.horizon(T - MAX_DISPATCH_AHEAD_MS).until_ms == T


def test_the_lead_grows_only_within_the_cap_on_firings_held_ahead() -> None:
    schedule = Schedule()
    add_jobs(schedule, 100, T, 1)
    add_jobs(schedule, 100, T2, 1_000)
    s = scheduler(schedule, per_firing_ms=50.0, max_ahead=150)  # leads of 6 s each, sent 6.5 s ahead
    assert s.horizon(T - 6_500).until_ms == T
    # Both bursts' leads have come, but only one fits under the cap...
    both = s.horizon(T2 - 6_500)
    assert both.until_ms == T
    # ...and a burst bigger than the cap is never started early at all.
    big = Schedule()
    add_jobs(big, 151, T, 1)
    assert scheduler(big, per_firing_ms=50.0, max_ahead=150).horizon(T - 6_500).until_ms == T - 6_500 + BASE


class CountedSchedule(Schedule):
    """A Schedule that counts the loop's passes (one pop_due each)."""

    passes = 0

    def pop_due(self, *args: object, **kwargs: object) -> tuple[list[tuple[Job, int]], int]:
        self.passes += 1
        return super().pop_due(*args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_the_loop_starts_the_burst_at_its_lead_and_holds_to_the_cap() -> None:
    schedule = CountedSchedule()
    add_jobs(schedule, 100, T, 1)
    add_jobs(schedule, 100, T2, 1_000)
    add_jobs(schedule, 5, T, 5_000, OVERLAP_SKIP)
    clock = [T - 6_501]
    fired: list[tuple[int, int]] = []  # (fire_ms, clock when fired)

    async def fire(_job: Job, fire_ms: int) -> None:
        fired.append((fire_ms, clock[0]))

    s = Scheduler(
        schedule,
        fire,
        clock=lambda: clock[0],
        dispatch_ahead_ms=AHEAD,
        max_firings_ahead=150,
        ahead_cost=AheadCost(initial_ms=50.0),
    )
    loop_task = asyncio.create_task(s.run())

    async def advance(to_ms: int, expected: int) -> None:
        """Set the clock, and wait for a pass of the loop and its firings."""
        passes = schedule.passes
        clock[0] = to_ms
        s.wake()
        await wait_until(lambda: schedule.passes != passes and len(fired) >= expected, 10, f"a pass firing {expected}")

    try:
        await advance(T - 6_500, 100)  # T's lead came: its 100 allow firings, not the skip ones
        await advance(T2 - 6_500, 100)
        assert {ms for ms, _ in fired} == {T}, "T2 started beyond the cap, or skip firings ahead"
        # T passes: its firings are no longer held ahead, T2 fits now (and the
        # skip-policy firings of T are started at their time, not ahead).
        await advance(T + 1, 205)
        assert sorted({ms for ms, _ in fired}) == [T, T2]
        assert all(now >= T for ms, now in fired[100:] if ms == T), "a skip-policy firing was started ahead"
    finally:
        s.stop()
        await loop_task


def test_ahead_cost_is_measured_from_batches() -> None:
    now = [100.0]
    cost = AheadCost(initial_ms=0.6, clock=lambda: now[0])
    cost.batch(1_000)
    now[0] += 2.0  # 1,000 firings prepared in 2 s: 2 ms each
    for _ in range(1_000):
        cost.prepared()
    assert 0.6 < cost.per_firing_ms() <= 2.0
    before = cost.per_firing_ms()
    cost.batch(10)  # too small to measure
    now[0] += 5.0
    for _ in range(10):
        cost.prepared()
    assert cost.per_firing_ms() == before


def test_batches_are_sent_half_way_between_whole_seconds() -> None:
    # Instants are whole seconds; a batch sent on one reaches the executors
    # as they start that instant's runs.
    assert between_instants(AHEAD) == BASE
    assert [between_instants(ms) for ms in (0, 300, 500, 501, 1_000, 1_100, 1_500, 2_999, 3_000)] == [
        500,
        500,
        500,
        1_500,
        1_500,
        1_500,
        1_500,
        3_500,
        3_500,
    ]
    schedule = Schedule()
    add_jobs(schedule, 1_000, T, 1)  # every-second-like: 1,000 x 0.1 ms on the 1 s lead
    s = scheduler(schedule, per_firing_ms=0.1)
    assert s.horizon(T - 1_501).until_ms < T
    sent = s.horizon(T - 1_500)
    assert sent.until_ms == T and (T - 1_500) % 1_000 == 500


@pytest.mark.asyncio
async def test_each_pass_takes_what_is_due_within_the_lead_moved_off_the_whole_seconds() -> None:
    # No room to grow the lead (max_firings_ahead 0): what a pass takes is
    # dispatch_ahead_ms moved to the half second, so a second's firings go
    # out half-way through the second before, not on it.
    schedule = CountedSchedule()
    add_jobs(schedule, 10, T, 1)
    clock = [T - BASE - 1]
    fired: list[int] = []

    async def fire(_job: Job, fire_ms: int) -> None:
        fired.append(clock[0])

    s = Scheduler(schedule, fire, clock=lambda: clock[0], dispatch_ahead_ms=AHEAD, max_firings_ahead=0)
    loop_task = asyncio.create_task(s.run())
    try:
        await wait_until(lambda: schedule.passes > 0, 10, "the loop's first pass")
        assert fired == []
        passes = schedule.passes
        clock[0] = T - BASE
        s.wake()
        await wait_until(lambda: schedule.passes != passes and len(fired) >= 10, 10, "a pass firing the 10")
        assert set(fired) == {T - BASE} and (T - BASE) % 1_000 == 500
    finally:
        s.stop()
        await loop_task
