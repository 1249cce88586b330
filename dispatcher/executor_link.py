"""The dispatcher's link to its executors, apart from what a firing means:
who has a run, whether an executor is gone, acknowledging results, killing
a run wherever it is, and cancelling runs sent ahead of their time. It
records nothing in the store; `dispatcher/firing.py` (the life of a
firing) decides and records. See docs/ARCHITECTURE.md, "The life of a firing".

Dispatch ahead, in one place: the scheduler (`dispatcher/scheduler.py`)
starts the firings of `overlap = allow` jobs `dispatch_ahead_ms` before
their time, so they are claimed, recorded and sent early; the executor
(`executor/runs.py`) holds each such run until its scheduled instant. Until
it starts there, this link remembers it (`note_ahead`), so pausing or
deleting the job meanwhile cancels it on its executor (`cancel_sent_ahead`:
a Kill that only stops a run not yet started, which then ends `skipped`),
and editing it replaces the request its executor holds
(`replace_sent_ahead`: a Kill with `replace_with`); the firing itself checks
again, after recording it, that the job is still scheduled before sending it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import grpc

from crontrio.common import status
from crontrio.common.clock import now_ms
from crontrio.common.registry.base import Registry
from crontrio.dispatcher.connect_errors import never_connected, refused_connection, refused_unstarted, unstarted_proof
from crontrio.dispatcher.executor_client import ExecutorClients
from crontrio.dispatcher.executor_session import SessionBrokenError
from crontrio.dispatcher.run_holders import holders_of
from crontrio.protos import crontrio_pb2 as pb

log = logging.getLogger(__name__)

# What `knows` says when the executor could not say (no answer in time, a
# broken connection, an error): it may have the run, so it must not be
# taken for "unknown there".
UNSURE = "unsure"


# How long to keep calling Run again (it is idempotent by run id) when the
# stream breaks: briefly when the run never started (the executor is likely
# down: fail and let the retry policy pick another), longer once it started
# (a network blip must not turn a healthy run into a lost one).
REATTACH_BEFORE_START_SECONDS = 3.0
REATTACH_AFTER_START_SECONDS = 15.0


# What `ExecutorLink.run` yields: `Started` at most once, then one of the others.
@dataclass(frozen=True)
class Started:
    """The run started on the executor."""

    event: pb.RunStarted


@dataclass(frozen=True)
class Finished:
    """The run's result, not yet acknowledged (record it, then `ack`)."""

    result: pb.RunFinished


@dataclass(frozen=True)
class Refused:
    """The executor would not take it: `invalid`, for the request's sake;
    else it could not start it (it never ran there) and nowhere else was left."""

    reason: str
    invalid: bool = False


@dataclass(frozen=True)
class NotStarted:
    """Proof that it never started on this executor, and `elsewhere()` said
    it can go to another: `error` says why (unrecorded: the caller sends it on)."""

    error: str


@dataclass(frozen=True)
class Unreachable:
    """No contact with the executor within the reattach window; `started`:
    the run may be going there (lost), else it did not start there."""

    reason: str
    started: bool = False


LinkEvent = Started | Finished | Refused | NotStarted | Unreachable

# How soon to ask again to replace a run sent ahead its executor does not hold yet.
REPLACE_RETRY_SECONDS = 0.1


@dataclass
class SentAhead:
    """A run sent ahead of its time that has not started: where, and the
    request its executor holds (as far as this link knows)."""

    address: str
    request: pb.RunRequest
    # A replacement (its job was edited) not yet held there, and what to call once it is.
    wanted: tuple[pb.RunRequest, Callable[[pb.RunRequest], None]] | None = None
    pushing: asyncio.Task[None] | None = None


class _StreamEndedError(Exception):
    pass


class _HandedBackError(_StreamEndedError):
    """The executor handed the run back unstarted, and there is nowhere else to send it."""


class ExecutorLink:
    """Calls to executors on behalf of the firings of one dispatcher."""

    def __init__(self, registry: Registry, clients: ExecutorClients) -> None:
        self._registry = registry
        self.clients = clients
        # Executors the monitor reports as failing health checks: not routed to.
        self.unhealthy: frozenset[str] = frozenset()
        # Runs sent ahead of their time (dispatch_ahead_ms) that have not
        # started yet: job id -> {run id: where it went, with what}. A job
        # paused or deleted meanwhile has them cancelled on their executors;
        # an edited one has their requests replaced there.
        self._sent_ahead: dict[int, dict[str, SentAhead]] = {}
        self._cancels: set[asyncio.Task[None]] = set()
        # Called for each run sent ahead as it is handed to its executor (dispatcher/ahead_cost.py).
        self.on_sent_ahead: Callable[[], None] = lambda: None

    def live_addresses(self) -> list[str]:
        return sorted({e.address for e in self._registry.live()})

    def gone(self, address: str) -> bool:
        """The executor left the registry or fails its health checks: stop reattaching."""
        if address in self.unhealthy:
            return True
        return all(e.address != address for e in self._registry.live())

    async def knows(self, address: str, run_id: str) -> str | pb.RunFinished | None:
        """ "running", its result, None (unknown to it, or nothing listens
        there), or UNSURE when it could not say (it may have the run).

        The rule of dispatcher/run_holders.py: only an answer or a refused
        connection means "not here". An executor too busy to answer in time
        may have started the run; taking that for "not here" let the retry
        policy run it a second time elsewhere."""
        try:
            reply = await self.clients.stub(address).ListResults(pb.ListResultsRequest(run_ids=[run_id]), timeout=3)
        except grpc.aio.AioRpcError as exc:
            if refused_connection(exc):
                return None
            log.warning("run %s: executor could not say whether it has it: %s %s", run_id, exc.code().name, exc.details())
            return UNSURE
        if run_id in reply.running_run_ids:
            return "running"
        for result in reply.results:
            # A run it handed back unstarted is not its: it may run elsewhere.
            if result.run_id == run_id and result.status != status.NOT_STARTED:
                return result
        return None

    async def holders_of(self, run_ids: Sequence[str]) -> dict[str, str]:
        """Per run id, the address of the live executor that has it (running,
        held, or with its result journaled), or "" when none has it. Asked
        of every executor once for all of them (dispatcher/run_holders.py);
        a run nobody claims goes to an executor that could not say, rather
        than to another one, where it could run a second time."""
        return await holders_of(self.clients, self.live_addresses, run_ids)

    async def ack(self, address: str, run_id: str) -> None:
        """Tell the executor its result is recorded, so it forgets it."""
        session = self.clients.session(address)
        if session is not None and session.ack(run_id):
            return
        try:
            await self.clients.stub(address).Ack(pb.AckRequest(run_ids=[run_id]), timeout=5)
        except grpc.aio.AioRpcError as exc:
            # Harmless: the result stays in the executor's journal and a later
            # Run or the monitor's reconciliation collects it again.
            log.warning("ack of run %s to %s failed: %s", run_id, address, exc.details())

    async def kill_anywhere(self, run_id: str) -> str:
        """Kill `run_id` on whichever live executor has it; its address, or ""."""

        async def kill(address: str) -> str:
            try:
                reply = await self.clients.stub(address).Kill(pb.KillRequest(run_id=run_id), timeout=10)
            except grpc.aio.AioRpcError as exc:
                log.warning("kill of run %s: executor %s unreachable: %s", run_id, address, exc.details())
                return ""
            return address if reply.killed else ""

        return next((a for a in await asyncio.gather(*(kill(a) for a in self.live_addresses())) if a), "")

    # ------------------------------------------------------------ one run

    async def run(
        self,
        request: pb.RunRequest,
        address: str,
        elsewhere: Callable[[], bool] = lambda: False,
        may_still_start: Callable[[], bool] = lambda: False,
    ) -> AsyncIterator[LinkEvent]:
        """Send `request` to the executor at `address` and follow it there:
        `Started` (at most once), then one last event: `Finished`,
        `Refused`, `NotStarted` or `Unreachable`. The run goes over the
        executor's Session, else (no session, or it broke) over the per-run
        Run call, called again (it is idempotent by run id) while the
        connection breaks, within the reattach windows.

        `elsewhere()`: is there another executor to send it to? Asked when
        there is proof the run never started here; if so, `NotStarted` ends
        it, else this executor is retried as for any broken connection.
        `may_still_start()`: a run provably not started here may still
        start in time, so keep waiting for this executor (e.g. restarting).
        A `Finished` result is not acknowledged: the consumer records it
        first, then calls `ack`."""
        run_id = request.run_id
        stub = self.clients.stub(address)
        started = False
        # Whether the request may have reached the executor and started there:
        # until a call may have delivered it, or again once the executor said
        # it did not start it, a failed call proves it never started there.
        maybe_delivered = False
        failing_since: float | None = None
        delay = 0.2
        ahead = request.scheduled_ms > now_ms()
        if ahead:
            self.note_ahead(request, address)
            self.on_sent_ahead()
        try:
            session = self.clients.session(address)
            if session is not None:
                sent_back = False  # handed back or refused unstarted, with nowhere else to go
                try:
                    async for ev in session.run(request):
                        kind = ev.WhichOneof("event")
                        # started_ms 0: a run ended before its start (killed or handed
                        # back while held), not a start.
                        if kind == "started" and not started and ev.started.started_ms:
                            started = True
                            self.no_longer_ahead(request.job_id, run_id)
                            yield Started(ev.started)
                        elif kind == "finished":
                            if ev.finished.status == status.NOT_STARTED:
                                if elsewhere():
                                    yield await self._handed_back(address, run_id, ev.finished)
                                    return
                                sent_back = True
                                break  # nowhere else to go: Run below retries this executor
                            yield Finished(ev.finished)
                            return
                        elif kind == "refused" and ev.refused.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]:
                            yield Refused(ev.refused.message, invalid=True)
                            return
                        elif kind == "refused" and ev.refused.code == grpc.StatusCode.UNAVAILABLE.value[0]:
                            # Draining: the executor did not accept it.
                            if elsewhere():
                                yield NotStarted(f"executor {address} refused it: {ev.refused.message}")
                                return
                            sent_back = True
                        # Any other refusal: Run below meets it too and handles it as ever.
                    maybe_delivered = not sent_back
                except SessionBrokenError as exc:
                    maybe_delivered = not exc.never_connected
                    log.debug("run %s: %s; going on with Run", run_id, exc)
            while True:
                # The request as its executor holds it (an edit of the job may
                # have replaced it there); Run attaches to it by run id.
                request = self.sent_request(request)
                try:
                    async for event in stub.Run(request):
                        failing_since = None
                        kind = event.WhichOneof("event")
                        if kind == "started" and not started and event.started.started_ms:
                            started = True
                            self.no_longer_ahead(request.job_id, run_id)
                            yield Started(event.started)
                        elif kind == "finished":
                            if event.finished.status == status.NOT_STARTED:
                                if elsewhere():
                                    yield await self._handed_back(address, run_id, event.finished)
                                    return
                                raise _HandedBackError(f"the executor handed the run back unstarted: {event.finished.error}")
                            yield Finished(event.finished)
                            return
                    raise _StreamEndedError("the executor closed the stream before the run finished")
                except (grpc.aio.AioRpcError, _StreamEndedError) as exc:
                    reason = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
                    if isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                        yield Refused(reason or "", invalid=True)
                        return
                    if isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and not started:
                        # The executor refused to start it (it could not journal
                        # its start: a full disk): it never ran there.
                        if elsewhere():
                            yield NotStarted(f"executor {address} refused it: {reason}")
                        else:
                            yield Refused(reason or "")
                        return
                    if isinstance(exc, _HandedBackError):
                        maybe_delivered = False  # it said so: never started there
                    elif isinstance(exc, grpc.aio.AioRpcError) and not started:
                        why = unstarted_proof(exc, maybe_delivered, request.scheduled_ms, now_ms())
                        if why and elsewhere():
                            yield NotStarted(f"executor {address} {why}: {reason}")
                            return
                        if refused_unstarted(exc):
                            maybe_delivered = False
                        elif not never_connected(exc):
                            maybe_delivered = True
                    else:
                        maybe_delivered = True
                    now = time.monotonic()
                    failing_since = now if failing_since is None else failing_since
                    window = REATTACH_AFTER_START_SECONDS if started else REATTACH_BEFORE_START_SECONDS
                    give_up = now - failing_since >= window or self.gone(address)
                    if give_up and not started and not maybe_delivered and may_still_start():
                        # Provably not started there and nowhere else to go: wait for this
                        # executor (e.g. restarting) as long as it may start in time.
                        give_up = False
                    if give_up:
                        if not started and maybe_delivered:
                            # Before calling it unreachable, ask: an overloaded executor may
                            # have taken the run after all, and failing (then retrying) a run
                            # that is going would run it twice.
                            known = await self.knows(address, run_id)
                            if known == UNSURE:
                                # Alive but cannot say: the run may have started there.
                                yield Unreachable(f"{reason}; it could not say whether it has the run", started=True)
                                return
                            if known == "running":
                                failing_since, delay = None, 0.2
                                continue
                            if isinstance(known, pb.RunFinished):
                                yield Finished(known)
                                return
                        yield Unreachable(reason or "", started=started)
                        return
                    log.warning("run %s: connection to executor %s broke (%s); reattaching", run_id, address, reason)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
        finally:
            if ahead:
                self.no_longer_ahead(request.job_id, run_id)

    async def _handed_back(self, address: str, run_id: str, fin: pb.RunFinished) -> NotStarted:
        """The executor handed the run back unstarted (it is shutting down)
        and it goes elsewhere: acknowledged there, so that executor forgets
        it (and would refuse it if it ever came back)."""
        await self.ack(address, run_id)
        return NotStarted(f"executor {address} handed it back unstarted: {fin.error}")

    # ------------------------------------------------------------ sent ahead

    def note_ahead(self, request: pb.RunRequest, address: str) -> None:
        """`request` was sent to `address` before its time and has not started."""
        self._sent_ahead.setdefault(request.job_id, {})[request.run_id] = SentAhead(address, request)

    def no_longer_ahead(self, job_id: int, run_id: str) -> None:
        runs = self._sent_ahead.get(job_id)
        if runs is not None:
            runs.pop(run_id, None)
            if not runs:
                del self._sent_ahead[job_id]

    def sent_ahead(self, job_id: int) -> dict[str, SentAhead]:
        """The runs of `job_id` sent ahead and not started (as far as we know), by run id."""
        return dict(self._sent_ahead.get(job_id, {}))

    def sent_request(self, request: pb.RunRequest) -> pb.RunRequest:
        """The request its executor holds for `request`'s run, replaced or not."""
        sent = self._sent_ahead.get(request.job_id, {}).get(request.run_id)
        return sent.request if sent is not None else request

    def cancel_sent_ahead(self, job_id: int, reason: str) -> int:
        """Cancel the runs of `job_id` sent ahead that have not started: each
        ends `skipped` with `reason` (and is recorded so when its executor
        reports it). Returns how many were asked to stop."""
        runs = dict(self._sent_ahead.get(job_id, {}))
        for run_id in runs:
            self.cancel_one_ahead(job_id, run_id, reason)
        return len(runs)

    def cancel_one_ahead(self, job_id: int, run_id: str, reason: str) -> bool:
        """Cancel one run of `job_id` sent ahead and not started (as `cancel_sent_ahead`)."""
        sent = self._sent_ahead.get(job_id, {}).get(run_id)
        if sent is None:
            return False
        sent.wanted = None  # a replacement still on its way is moot
        task = asyncio.create_task(self._cancel_one(run_id, sent.address, reason), name=f"cancel-{run_id}")
        self._cancels.add(task)
        task.add_done_callback(self._cancels.discard)
        return True

    def replace_sent_ahead(self, request: pb.RunRequest, on_replaced: Callable[[pb.RunRequest], None]) -> bool:
        """Replace the request of a run sent ahead and not started by
        `request` (same run id) on its executor; `on_replaced(request)` once
        the executor holds it. The newest request wins when edits follow
        each other. False when the run is no longer ahead."""
        sent = self._sent_ahead.get(request.job_id, {}).get(request.run_id)
        if sent is None:
            return False
        sent.wanted = (request, on_replaced)
        if sent.pushing is None or sent.pushing.done():
            sent.pushing = asyncio.create_task(self._push_replacement(sent), name=f"replace-{request.run_id}")
            self._cancels.add(sent.pushing)
            sent.pushing.add_done_callback(self._cancels.discard)
        return True

    async def _push_replacement(self, sent: SentAhead) -> None:
        """Send `sent.wanted` until its executor holds it or the run is no
        longer held: a run sent moments ago may not have reached its executor
        yet (the session queues), so "not held here" is asked again until its
        instant; one that started there runs as first sent."""
        while sent.wanted is not None:
            request, on_replaced = sent.wanted
            run_id = request.run_id
            kill = pb.KillRequest(run_id=run_id, before_start_only=True, replace_with=request)
            try:
                reply = await self.clients.stub(sent.address).Kill(kill, timeout=5)
            except grpc.aio.AioRpcError as exc:
                log.warning(
                    "run %s: could not replace its request on %s (%s); it runs as sent", run_id, sent.address, exc.details()
                )
                return
            if reply.killed:
                sent.request = request
                if sent.wanted is not None and sent.wanted[0] is request:
                    sent.wanted = None
                on_replaced(request)
                log.info("run %s: its request was replaced on %s before its scheduled time (job edited)", run_id, sent.address)
                continue
            if self._sent_ahead.get(request.job_id, {}).get(run_id) is not sent or now_ms() >= request.scheduled_ms:
                log.info("run %s: no longer held on %s; it runs as first sent", run_id, sent.address)
                return
            await asyncio.sleep(REPLACE_RETRY_SECONDS)

    async def _cancel_one(self, run_id: str, address: str, reason: str) -> None:
        request = pb.KillRequest(run_id=run_id, before_start_only=True, reason=reason)
        try:
            reply = await self.clients.stub(address).Kill(request, timeout=5)
        except grpc.aio.AioRpcError as exc:
            log.warning("run %s: could not cancel it on %s (%s); it runs as sent", run_id, address, exc.details())
            return
        if reply.killed:
            log.info("run %s cancelled on %s before its scheduled time: %s", run_id, address, reason)
