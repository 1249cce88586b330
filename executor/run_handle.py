"""One run on this executor and the callers following it (docs/ARCHITECTURE.md).

A RunHandle is what executor/runs.py keeps for a run from its start until its
result is journaled: its RunStarted, the tail of its output, its keyword
scan, how to stop it, and its followers. Each subscriber is one caller (a
Run or Attach stream) with its own queue, bounded in bytes of live output: a
slow caller loses live chunks, never RunStarted, RunFinished or the tail.
A watcher (a Session) wants only RunStarted and RunFinished: it is called
with them as they are published, with no queue and no task of its own (a
task per run that woke twice per run was a tenth of an executor's CPU in
a burst).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TypeAlias

from crontrio.executor.keywords import KeywordScanner
from crontrio.executor.output_tail import OutputTail
from crontrio.protos import crontrio_pb2

log = logging.getLogger(__name__)

# Live output queued for one slow caller before its chunks are dropped; the
# tail in RunFinished stays exact whatever a caller misses.
SUBSCRIBER_BUFFER_BYTES = 1024 * 1024

Milestone: TypeAlias = "crontrio_pb2.RunStarted | crontrio_pb2.RunFinished"


class Subscriber:
    """One caller's queue of events for a run, bounded in bytes of output."""

    def __init__(self, budget: int) -> None:
        self._events: deque[tuple[crontrio_pb2.RunEvent, int]] = deque()
        self._budget = budget
        self._buffered = 0
        # The reader's wake-up while it waits, a bare future: an
        # asyncio.Event would cost a future and its bookkeeping per wait
        # anyway, and a run's two milestones are two waits per follower.
        self._waiter: asyncio.Future[None] | None = None
        self.dropped_bytes = 0

    def put(self, event: crontrio_pb2.RunEvent) -> None:
        """Queue an event that must not be lost (started, finished, catch-up)."""
        self._events.append((event, 0))
        self._wake()

    def offer_output(self, data: bytes) -> bool:
        """Queue a live chunk unless this caller is too far behind."""
        if self._buffered + len(data) > self._budget:
            self.dropped_bytes += len(data)
            return False
        self._events.append((crontrio_pb2.RunEvent(output=crontrio_pb2.RunOutput(data=data)), len(data)))
        self._buffered += len(data)
        self._wake()
        return True

    async def get(self) -> crontrio_pb2.RunEvent:
        while not self._events:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        event, size = self._events.popleft()
        self._buffered -= size
        return event

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class RunHandle:
    """One run on this executor, from its start until its result is journaled."""

    def __init__(self, request: crontrio_pb2.RunRequest, output_limit: int) -> None:
        self.request = request
        self.run_id = request.run_id
        self.tail = OutputTail(output_limit)
        # The whole output is scanned for keywords, not only what the tail keeps.
        self.keywords = KeywordScanner(request.keywords) if request.keywords else None
        self.started: crontrio_pb2.RunStarted | None = None
        self.finished: crontrio_pb2.RunFinished | None = None
        self.task: asyncio.Task[None] | None = None
        # Why the run is being stopped (timeout or killed), first reason wins.
        self.stop_status = ""
        self.stop_error = ""
        self._stopper: Callable[[], object] | None = None
        self._stoppable = True
        self._subscribers: set[Subscriber] = set()
        self._watchers: list[Callable[[Milestone], None]] = []
        # True while a run sent ahead waits for its scheduled instant.
        self.held = False

    def replace_request(self, request: crontrio_pb2.RunRequest, output_limit: int) -> None:
        """Swap the request of a run held for its instant (executor/held_runs.py
        `replace_held`): what was built from the old one goes with it."""
        self.request = request
        self.tail = OutputTail(output_limit)
        self.keywords = KeywordScanner(request.keywords) if request.keywords else None

    # -- subscribers -----------------------------------------------------------

    def subscribe(self) -> Subscriber:
        """A new caller: it first gets what it missed (RunStarted, the tail so
        far as one chunk), then live events."""
        sub = Subscriber(SUBSCRIBER_BUFFER_BYTES)
        if self.started is not None:
            sub.put(crontrio_pb2.RunEvent(started=self.started))
            if len(self.tail):
                sub.put(crontrio_pb2.RunEvent(output=crontrio_pb2.RunOutput(data=self.tail.snapshot())))
        if self.finished is not None:
            sub.put(crontrio_pb2.RunEvent(finished=self.finished))
        else:
            self._subscribers.add(sub)
        return sub

    def watch(self, on_milestone: Callable[[Milestone], None]) -> None:
        """Call ``on_milestone`` with RunStarted and RunFinished: at once
        with those already published, then as they are. It runs inside the
        publishing call, so it must be quick and must not raise."""
        if self.started is not None:
            on_milestone(self.started)
        if self.finished is not None:
            on_milestone(self.finished)
        else:
            self._watchers.append(on_milestone)

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    async def events(self) -> AsyncIterator[crontrio_pb2.RunEvent]:
        """This run's events for one caller, ending with RunFinished."""
        # Subscribing here, on first iteration, rather than when the RPC
        # arrives means an abandoned iterator never holds a queue; catch-up
        # makes the late start lossless.
        sub = self.subscribe()
        try:
            while True:
                event = await sub.get()
                yield event
                if event.HasField("finished"):
                    return
        finally:
            self.unsubscribe(sub)

    # -- publishing --------------------------------------------------------------

    def publish_started(self, started: crontrio_pb2.RunStarted) -> None:
        """RunStarted, then whatever the task printed before it (kept in the
        tail only, like the catch-up of a late subscriber)."""
        self.started = started
        event = crontrio_pb2.RunEvent(started=started)
        early = crontrio_pb2.RunEvent(output=crontrio_pb2.RunOutput(data=self.tail.snapshot())) if len(self.tail) else None
        for sub in self._subscribers:
            sub.put(event)
            if early is not None:
                sub.put(early)
        for watcher in self._watchers:
            watcher(started)

    def publish_output(self, data: bytes, *, scan: bool = True) -> None:
        """Output of the task; ``scan=False`` for text the executor adds
        (an HTTP status line), which is not searched for keywords."""
        self.tail.append(data)
        if scan and self.keywords is not None:
            self.keywords.feed(data)
        if self.started is None:
            return  # callers get it right after RunStarted, from the tail
        for sub in self._subscribers:
            first_drop = sub.dropped_bytes == 0
            if not sub.offer_output(data) and first_drop:
                log.warning("run %s: a caller reads too slowly; dropping its live output (the tail is kept)", self.run_id)

    def publish_finished(self, finished: crontrio_pb2.RunFinished) -> None:
        self.finished = finished
        event = crontrio_pb2.RunEvent(finished=finished)
        for sub in self._subscribers:
            sub.put(event)
        self._subscribers.clear()
        watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            watcher(finished)

    # -- stopping ----------------------------------------------------------------

    def set_stopper(self, stopper: Callable[[], object]) -> None:
        """The running task says how to stop it; a stop requested before it
        was running takes effect now."""
        self._stopper = stopper
        if self.stop_status:
            stopper()

    def clear_stopper(self) -> None:
        """The previous stopper no longer applies (a hold ended); a stop
        requested from now until the next ``set_stopper`` takes effect then."""
        self._stopper = None

    def stopped_running(self) -> None:
        """The task is over (only output is still being collected): a Kill
        now has nothing to kill."""
        self._stopper = None
        self._stoppable = False

    def request_stop(self, why: str, error: str) -> bool:
        """Stop the run with status ``why``; False when it is no longer running."""
        if not self._stoppable:
            return False
        if not self.stop_status:
            self.stop_status, self.stop_error = why, error
        if self._stopper is not None:
            self._stopper()
        return True
