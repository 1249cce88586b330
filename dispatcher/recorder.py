"""Run history writes, grouped into one transaction per short interval.

At 1,000 firings a second, a transaction per write would be the bottleneck
(and on SQLite, the single writer lock). Callers enqueue; a background task
commits everything queued in one transaction and resolves the futures of
callers that need to know the outcome (inserts, and updates that must be
durable before the executor is told it may forget a result). Batches form
naturally: what is queued while a commit runs goes into the next one, so a
lone firing is not delayed; `batch_ms` > 0 adds a fixed wait to make batches
larger still (fewer, bigger transactions for a database across a network).

A firing's insert is bounded twice over, so that a database that is locked
or down cannot make the dispatcher pile up firings in memory and start them
all at once, late, when it comes back: at most `max_backlog` firing inserts
are queued for writing, the others wait for room in turn, and any that is
not written by its deadline (its misfire grace) is dropped
(RecordDroppedError; the caller treats the firing as misfired, see
dispatcher/misfire.py). Waiting, not refusing, is what a healthy database
with a big burst needs: 100,000 jobs due at one second are written within
seconds, while refusing beyond the backlog recorded 90,000 of them
`missed`. A stuck database still costs memory for at most a grace's worth
of firings. Other writes (run outcomes, catch-up records) are never
dropped: losing those would lose history.

A run's start is written a little late (`update_soon`): most runs end within
a fraction of a second, and an update of the same run queued meanwhile takes
the start's fields with it, one row write instead of two (in a burst of
HTTP jobs, the start's UPDATE was a third of the dispatcher's database
work). Nothing else reads the row of a run this dispatcher follows before
its end: the monitor settles only runs of dead dispatchers, and a start not
written when the dispatcher dies is the same as one lost in the batch being
written then (its run is adopted from its recorded firing).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from crontrio.common.clock import SYSTEM_CLOCK, Clock
from crontrio.common.model import RunRecord
from crontrio.dispatcher.metrics import DispatcherMetrics

log = logging.getLogger(__name__)

# A write that waited longer than this means the database (or this process's
# CPU) cannot keep up with the firing rate: queued writes then grow without
# bound, and so does the dispatcher's memory. Say so, at most once a minute.
BEHIND_WARN_SECONDS = 5.0
BEHIND_WARN_EVERY_SECONDS = 60.0
DEFAULT_MAX_BACKLOG = 100_000
# How long `update_soon` holds a write for a later update of the same run.
SOON_SECONDS = 0.3


class RecordDroppedError(Exception):
    """A firing's insert was not written: the backlog was full, or its
    deadline passed before a commit could take it."""


@dataclass
class _Batch:
    inserts: list[RunRecord] = field(default_factory=list)
    insert_futures: list[asyncio.Future[bool]] = field(default_factory=list)
    # Per insert: the wall-clock ms after which it is dropped unwritten (0: never).
    insert_deadlines: list[int] = field(default_factory=list)
    # How many inserts have a deadline (firings, as opposed to history): kept
    # as a count, since every firing's insert asks for it.
    bounded: int = 0
    updates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    update_futures: list[asyncio.Future[None]] = field(default_factory=list)
    # When its first write was queued (monotonic; 0: empty).
    since: float = 0.0

    def queued(self, clock: Clock) -> None:
        if not self.since:
            self.since = clock.monotonic()

    def __bool__(self) -> bool:
        return bool(self.inserts or self.updates)

    def drop_expired(self, now_ms: int) -> int:
        """Take out the inserts whose deadline has passed; returns how many."""
        keep = [i for i, d in enumerate(self.insert_deadlines) if not d or d > now_ms]
        dropped = len(self.inserts) - len(keep)
        if dropped:
            for i, (future, d) in enumerate(zip(self.insert_futures, self.insert_deadlines, strict=True)):
                if d and d <= now_ms and not future.done():
                    future.set_exception(RecordDroppedError(f"not written within its deadline ({self.inserts[i].run_id})"))
            self.inserts = [self.inserts[i] for i in keep]
            self.insert_futures = [self.insert_futures[i] for i in keep]
            self.insert_deadlines = [self.insert_deadlines[i] for i in keep]
            self.bounded -= dropped
        return dropped


class RunWriter(Protocol):
    """All the recorder needs of the store (AsyncStore has it)."""

    async def write_runs(self, inserts: Sequence[RunRecord], updates: Sequence[tuple[str, dict[str, Any]]]) -> list[bool]: ...


class RunRecorder:
    def __init__(
        self,
        store: RunWriter,
        batch_ms: int = 20,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._clock = clock
        self._store = store
        self._batch_seconds = batch_ms / 1000
        self._max_backlog = max_backlog
        self._pending = _Batch()
        self._committing = _Batch()  # the batch being written (and retried)
        self._commit_since = 0.0  # monotonic start of the commit under way (0: none)
        self._full_warned = False
        # Firing inserts waiting for room in the backlog, first come first in.
        # A future per waiter and one timer for them all, not a wait_for
        # each: a burst of 100,000 firings can wait at once. In order of
        # arrival (let in), and by deadline (dropped); a future done in one
        # is skipped in the other.
        self._room_waiters: deque[asyncio.Future[None]] = deque()
        self._room_deadlines: list[tuple[int, int, str, asyncio.Future[None]]] = []  # heap: deadline, order, run id
        self._room_order = itertools.count()
        self._expiry: asyncio.TimerHandle | None = None
        self._expiry_at = 0
        # Of those, let in and not queued yet (they queue on their next step).
        self._granted = 0
        self._has_work = asyncio.Event()
        # update_soon's writes: run id -> fields, and when each is due (loop
        # time) in the order queued; one timer, for the oldest.
        self._soon: dict[str, dict[str, Any]] = {}
        self._soon_due: deque[tuple[float, str]] = deque()
        self._soon_timer: asyncio.TimerHandle | None = None
        self._soon_seconds = SOON_SECONDS
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._warned_at = -BEHIND_WARN_EVERY_SECONDS
        # How long the last committed batch's oldest write waited (seconds).
        self.behind_seconds = 0.0
        self.metrics = DispatcherMetrics()  # replaced by the app's (dispatcher/metrics.py)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="run-recorder")

    @property
    def max_backlog(self) -> int:
        return self._max_backlog

    def writing_seconds(self) -> float:
        """How long the write under way has taken so far (0 when none is)."""
        return self._clock.monotonic() - self._commit_since if self._commit_since else 0.0

    @property
    def backlog(self) -> int:
        """Firing inserts waiting to be written (bounded by max_backlog)."""
        return self._pending.bounded + self._committing.bounded

    async def insert(self, record: RunRecord, *, deadline_ms: int = 0) -> bool:
        """Record a new run; False if that firing attempt is already recorded (by anyone).

        With `deadline_ms` (a firing's insert) it is bounded: while
        `max_backlog` such inserts are queued it waits its turn, and it
        raises RecordDroppedError once the deadline (wall-clock ms) passes
        before a commit takes it."""
        if deadline_ms:
            if deadline_ms <= self._clock.now_ms():
                raise RecordDroppedError(f"past its deadline already ({record.run_id})")
            if self.backlog + self._granted >= self._max_backlog or self._room_waiters:
                await self._wait_for_room(record.run_id, deadline_ms)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.inserts.append(record)
        self._pending.insert_futures.append(future)
        self._pending.insert_deadlines.append(deadline_ms)
        if deadline_ms:
            self._pending.bounded += 1
        self._pending.queued(self._clock)
        self._has_work.set()
        return await future

    async def _wait_for_room(self, run_id: str, deadline_ms: int) -> None:
        """Wait until the backlog has room for one more firing insert (those
        that came first go first); RecordDroppedError once ``deadline_ms``
        has passed. The caller queues its insert as soon as this returns."""
        if not self._full_warned:
            self._full_warned = True
            log.warning(
                "run history backlog is full (%d firings waiting to be written): further firings wait for room "
                "and are handled as misfires if not written within their misfire grace",
                self.backlog,
            )
        room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._room_waiters.append(room)
        heapq.heappush(self._room_deadlines, (deadline_ms, next(self._room_order), run_id, room))
        self._arm_expiry()
        try:
            await room
        except asyncio.CancelledError:
            if room.done() and not room.cancelled() and room.exception() is None:
                self._granted -= 1  # let in just as it was cancelled: pass the room on
                self._give_room()
            raise  # (a cancelled waiter left in the queue is skipped there)
        self._granted -= 1

    def _give_room(self) -> None:
        """Let in as many waiting firing inserts as the backlog has room for."""
        free = self._max_backlog - self.backlog - self._granted
        while free > 0 and self._room_waiters:
            room = self._room_waiters.popleft()
            if not room.done():
                room.set_result(None)
                self._granted += 1
                free -= 1

    def _arm_expiry(self) -> None:
        """The one timer, at the earliest deadline of a waiting firing."""
        if not self._room_deadlines:
            return
        first = self._room_deadlines[0][0]
        if self._expiry is not None:
            if self._expiry_at <= first:
                return
            self._expiry.cancel()  # an earlier deadline came in
        self._expiry_at = first
        delay = (first - self._clock.now_ms()) / 1000
        self._expiry = asyncio.get_running_loop().call_later(max(delay, 0.0), self._expire_waiters)

    def _expire_waiters(self) -> None:
        """Drop the waiting firings whose deadline has passed."""
        self._expiry = None
        now = self._clock.now_ms()
        deadlines = self._room_deadlines
        while deadlines and (deadlines[0][0] <= now or deadlines[0][3].done()):
            _, _, run_id, room = heapq.heappop(deadlines)
            if not room.done():
                room.set_exception(
                    RecordDroppedError(f"not written within its deadline: the run history backlog stayed full ({run_id})")
                )
        # The ones dropped leave the queue of arrival too, from its front
        # (arrival is nearly deadline order): a database stuck for an hour
        # must not keep an hour of dropped firings there.
        waiters = self._room_waiters
        while waiters and waiters[0].done():
            waiters.popleft()
        if self._closing:
            self._has_work.set()  # the loop may be waiting only for these to end
        self._arm_expiry()

    def update(self, run_id: str, **fields: Any) -> asyncio.Future[None]:
        """Queue an update; await the returned future when it must be durable."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        held = self._soon.pop(run_id, None)
        if held is not None:  # the run's start goes with it (its own fields win)
            fields = {**held, **fields}
        self._pending.updates.append((run_id, fields))
        self._pending.update_futures.append(future)
        self._pending.queued(self._clock)
        self._has_work.set()
        return future

    def update_soon(self, run_id: str, **fields: Any) -> None:
        """Queue an update that may wait ``SOON_SECONDS`` for a later update
        of the same run to go with (a run's start: its end often follows at
        once). Nobody can wait for it to be durable."""
        held = self._soon.get(run_id)
        if held is not None:
            held.update(fields)
            return
        loop = asyncio.get_running_loop()
        self._soon[run_id] = dict(fields)
        self._soon_due.append((loop.time() + self._soon_seconds, run_id))
        if self._soon_timer is None:
            self._soon_timer = loop.call_at(self._soon_due[0][0], self._soon_is_due)

    def _soon_is_due(self) -> None:
        """Move the held writes whose time has come to the next batch."""
        self._soon_timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._soon_due and (self._closing or self._soon_due[0][0] <= now):
            _, run_id = self._soon_due.popleft()
            fields = self._soon.pop(run_id, None)
            if fields is not None:  # else it went with a later update
                self._pending.updates.append((run_id, fields))
                self._pending.queued(self._clock)
                self._has_work.set()
        if self._soon_due:
            self._soon_timer = loop.call_at(self._soon_due[0][0], self._soon_is_due)

    async def _loop(self) -> None:
        while True:
            await self._has_work.wait()
            if self._batch_seconds and not self._closing:
                await asyncio.sleep(self._batch_seconds)  # let the batch fill
            self._has_work.clear()
            batch, self._pending = self._pending, _Batch()
            if batch.bounded:
                batch.drop_expired(self._clock.now_ms())
            if batch:
                self._committing = batch
                self._commit_since = self._clock.monotonic()
                try:
                    await self._commit(batch)
                finally:
                    self._committing = _Batch()
                    self._commit_since = 0.0
                self._give_room()
                if self._full_warned and not self._room_waiters and self.backlog < self._max_backlog // 2:
                    self._full_warned = False
                    log.warning("run history backlog is down to %d firings: no firing waits for room now", self.backlog)
            # Closing: done once nothing is queued and no firing waits for room.
            if self._closing and not self._pending and not self._granted and all(r.done() for r in self._room_waiters):
                if self._expiry is not None:
                    self._expiry.cancel()
                return

    async def _commit(self, batch: _Batch) -> None:
        # A failed commit is retried: losing run history silently is worse
        # than a late write. Callers keep waiting meanwhile.
        delay = 0.1
        while True:
            try:
                created = await self._store.write_runs(batch.inserts, batch.updates)
                break
            except Exception as exc:  # noqa: BLE001 - any DB error: log loudly, retry
                log.error(
                    "writing %d run inserts / %d updates failed, retrying in %.1fs: %s",
                    len(batch.inserts),
                    len(batch.updates),
                    delay,
                    exc,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                # Firings that missed their deadline meanwhile are not written late.
                if batch.bounded:
                    batch.drop_expired(self._clock.now_ms())
        self._note_delay(batch, len(self._pending.inserts) + len(self._pending.updates))
        self.metrics.committed(batch.inserts, created, batch.updates)
        for future, was_created in zip(batch.insert_futures, created, strict=True):
            if not future.done():
                future.set_result(was_created)
        for done in batch.update_futures:
            if not done.done():
                done.set_result(None)

    def _note_delay(self, batch: _Batch, still_queued: int) -> None:
        now = self._clock.monotonic()
        self.behind_seconds = now - batch.since
        if self.behind_seconds > BEHIND_WARN_SECONDS and now - self._warned_at >= BEHIND_WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning(
                "run history writes are %.1fs behind (%d inserts / %d updates just written, %d more queued): "
                "the database or this dispatcher's CPU cannot keep up with the firing rate",
                self.behind_seconds,
                len(batch.inserts),
                len(batch.updates),
                still_queued,
            )

    async def close(self) -> None:
        """Write everything queued, then stop."""
        self._closing = True
        if self._soon_timer is not None:
            self._soon_timer.cancel()
        self._soon_is_due()  # closing: every held write is due now
        self._has_work.set()
        if self._task is not None:
            await self._task
