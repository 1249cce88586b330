"""Runs sent ahead of their scheduled time (dispatcher.dispatch_ahead_ms):
held here until their instant, cancelled or handed back on drain
(docs/ARCHITECTURE.md, "dispatch ahead").

A run sent ahead is accepted at once: executor/runs.py journals its start and
counts it as running (Attach, ListResults and Kill see it), and this module
holds its task until the scheduled instant. Killed while held, it ends
``killed`` without having run; cancelled (its job paused or deleted
meanwhile), ``skipped``; replaced (its job edited), it starts with the new
request; handed back by a draining executor, ``not_started``, so that its
dispatcher sends it elsewhere.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping

from crontrio.common import status
from crontrio.common.clock import now_ms
from crontrio.common.config import MAX_DISPATCH_AHEAD_MS
from crontrio.common.errors import ValidationError
from crontrio.executor.run_handle import RunHandle
from crontrio.protos import crontrio_pb2

log = logging.getLogger(__name__)

# A run sent further ahead than a dispatcher ever sends one means the two
# clocks disagree: start it now rather than hold it for long.
MAX_HOLD_MS = MAX_DISPATCH_AHEAD_MS + 5_000


def hold_ms(request: crontrio_pb2.RunRequest, now: int) -> int:
    """How long to hold a run sent ahead of its time (dispatcher.dispatch_ahead_ms)
    before starting it: until its scheduled instant, 0 when that has come."""
    ahead = request.scheduled_ms - now
    if ahead <= 0:
        return 0
    if ahead > MAX_HOLD_MS:
        log.warning(
            "run %s is scheduled %.1fs ahead of this executor's clock; starting it now (are the hosts' clocks in sync?)",
            request.run_id,
            ahead / 1000,
        )
        return 0
    return ahead


class Instants:
    """The held runs of one executor grouped by the instant they wait for:
    one timer per distinct instant, which wakes every run held for it in one
    loop pass. A burst of thousands of runs sent ahead for the same second
    costs one timer, not one per run (a uvloop timer is a libuv handle,
    started and stopped per run)."""

    def __init__(self) -> None:
        # instant -> its runs' wake-ups, in arrival order (a dict as an
        # ordered set): the runs of an instant start in the order they came.
        self._waiting: dict[int, dict[asyncio.Future[None], None]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        """Distinct instants with a timer running (for tests)."""
        return len(self._timers)

    def _held(self) -> int:
        """Runs waiting, all instants together (for tests)."""
        return sum(map(len, self._waiting.values()))

    def wait(self, instant_ms: int, hold: int) -> asyncio.Future[None]:
        """A future done at ``instant_ms``, ``hold`` ms from now (the first
        run held for an instant sets its timer; the others join it)."""
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        waiting = self._waiting.get(instant_ms)
        if waiting is None:
            waiting = self._waiting[instant_ms] = {}
            self._timers[instant_ms] = loop.call_later(hold / 1000, self._due, instant_ms)
        waiting[wake] = None
        return wake

    def leave(self, instant_ms: int, wake: asyncio.Future[None]) -> None:
        """``wake`` no longer waits (its run was stopped, or it was woken);
        the last one to leave an instant stops its timer."""
        waiting = self._waiting.get(instant_ms)
        if waiting is None:
            return
        waiting.pop(wake, None)
        if not waiting:
            del self._waiting[instant_ms]
            self._timers.pop(instant_ms).cancel()

    def _due(self, instant_ms: int) -> None:
        self._timers.pop(instant_ms, None)
        for wake in self._waiting.pop(instant_ms, ()):
            if not wake.done():
                wake.set_result(None)


async def wait_until_due(handle: RunHandle, instants: Instants) -> bool:
    """Wait for the run's scheduled instant; False when it was stopped
    (killed or cancelled) meanwhile."""
    # A future per run on a timer per instant (Instants), not wait_for: at
    # the scheduled instant a burst of held runs wakes at once, and wait_for
    # would add a task and its cancellation to each, right on the critical path.
    instant = handle.request.scheduled_ms
    # Measured now, not when the run arrived: its start was journaled in
    # between (with the rest of its batch), and a hold taken before that
    # write set the instant's timer late by as long as the write took
    # (20-30 ms for a batch of 1,000, every run of the instant that late).
    wake = instants.wait(instant, max(instant - now_ms(), 0))
    handle.held = True
    handle.set_stopper(functools.partial(_resolve, wake))
    try:
        await wake
    finally:
        instants.leave(instant, wake)
        handle.held = False
        handle.clear_stopper()
    return not handle.stop_status


def unstarted_result(handle: RunHandle, *, finished_ms: int, host: str, address: str) -> crontrio_pb2.RunFinished:
    """The result of a held run stopped before its task started: nothing ran."""
    return crontrio_pb2.RunFinished(
        run_id=handle.run_id,
        status=handle.stop_status,
        finished_ms=finished_ms,
        error=f"{handle.stop_error} (before its scheduled start: the task never ran)",
        host=host,
        executor=address,
    )


def cancel_held(running: Mapping[str, RunHandle], run_id: str, reason: str) -> bool:
    """Cancel a run sent ahead that has not started yet: it ends
    ``skipped`` with ``reason``. False when it is not held here (unknown,
    or already started: then it runs to its end)."""
    handle = running.get(run_id)
    if handle is None or not handle.held or not handle.request_stop(status.SKIPPED, reason):
        return False
    log.info("run %s: cancelled before its scheduled start (%s)", run_id, reason)
    return True


def replace_held(running: Mapping[str, RunHandle], request: crontrio_pb2.RunRequest, default_output_limit: int) -> bool:
    """Its job was edited: a run sent ahead and not started yet goes on with
    ``request`` (already checked) instead of the request it came with. False
    when it is not held here (unknown, stopping, or already started: then it
    runs as first sent). Raises ValidationError when ``request`` is not the
    same run (job, scheduled instant, attempt)."""
    handle = running.get(request.run_id)
    if handle is None or not handle.held or handle.stop_status:
        return False
    held = handle.request
    for field in ("job_id", "scheduled_ms", "attempt"):
        if getattr(request, field) != getattr(held, field):
            raise ValidationError(f"replace_with.{field}", f"must be that of the held run ({getattr(held, field)})")
    # Nothing of the old request is in use while the run is held: its task
    # reads the request when the hold ends, and the tail and keyword scan
    # have seen no output yet.
    handle.replace_request(request, request.output_limit_bytes or default_output_limit)
    log.info("run %s: its request was replaced before its scheduled start (job %s edited)", request.run_id, request.job_name)
    return True


def hand_back_held(running: Mapping[str, RunHandle], reason: str) -> int:
    """Shutting down: end every run held for its scheduled time with
    ``not_started`` (nothing ran), so that its dispatcher sends it to
    another executor rather than this one starting it while it drains.
    Returns how many were handed back."""
    handed = 0
    for run_id, handle in list(running.items()):
        if handle.held and handle.request_stop(status.NOT_STARTED, reason):
            log.info("run %s: handed back before its scheduled start (%s)", run_id, reason)
            handed += 1
    return handed


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
