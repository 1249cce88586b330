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
a Kill that only stops a run not yet started, which then ends `skipped`);
the firing itself checks again, after recording it, that the job is still
scheduled before sending it.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from crontrio.common import status
from crontrio.common.registry.base import Registry
from crontrio.dispatcher.executor_client import ExecutorClients
from crontrio.protos import crontrio_pb2 as pb

log = logging.getLogger(__name__)

# What `knows` says when a live executor answered with an error: it may
# have the run, so it must not be taken for "unknown there".
UNSURE = "unsure"
# Codes meaning the executor gave no answer (down, or too slow to tell).
NO_ANSWER = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class ExecutorLink:
    """Calls to executors on behalf of the firings of one dispatcher."""

    def __init__(self, registry: Registry, clients: ExecutorClients) -> None:
        self._registry = registry
        self.clients = clients
        # Executors the monitor reports as failing health checks: not routed to.
        self.unhealthy: frozenset[str] = frozenset()
        # Runs sent ahead of their time (dispatch_ahead_ms) that have not
        # started yet: job id -> {run id: executor address}. A job paused or
        # deleted meanwhile has them cancelled on their executors.
        self._sent_ahead: dict[int, dict[str, str]] = {}
        self._cancels: set[asyncio.Task[None]] = set()

    def live_addresses(self) -> list[str]:
        return sorted({e.address for e in self._registry.live()})

    def gone(self, address: str) -> bool:
        """The executor left the registry or fails its health checks: stop reattaching."""
        if address in self.unhealthy:
            return True
        return all(e.address != address for e in self._registry.live())

    async def knows(self, address: str, run_id: str) -> str | pb.RunFinished | None:
        """ "running", its result, None (unknown to it, or no answer), or
        UNSURE when it answered with an error (it may have the run)."""
        try:
            reply = await self.clients.stub(address).ListResults(pb.ListResultsRequest(run_ids=[run_id]), timeout=3)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in NO_ANSWER:
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

    async def holder_of(self, run_id: str) -> str:
        """The address of a live executor that knows `run_id` (running, held,
        or with its result journaled), or "". One that answered with an
        error may have it: with none that knows it, the run goes there, where
        Run (idempotent by run id) follows it if it has it, rather than to
        another executor, where it could run a second time."""
        addresses = self.live_addresses()
        answers = await asyncio.gather(*(self.knows(a, run_id) for a in addresses))
        known = [a for a, answer in zip(addresses, answers, strict=True) if answer is not None and answer != UNSURE]
        unsure = [a for a, answer in zip(addresses, answers, strict=True) if answer == UNSURE]
        if not known and unsure:
            log.warning("run %s: executor %s could not say whether it has the run; sending it there", run_id, unsure[0])
        return (known or unsure or [""])[0]

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

    # ------------------------------------------------------------ sent ahead

    def note_ahead(self, job_id: int, run_id: str, address: str) -> None:
        """`run_id` was sent to `address` before its time and has not started."""
        self._sent_ahead.setdefault(job_id, {})[run_id] = address

    def no_longer_ahead(self, job_id: int, run_id: str) -> None:
        runs = self._sent_ahead.get(job_id)
        if runs is not None:
            runs.pop(run_id, None)
            if not runs:
                del self._sent_ahead[job_id]

    def cancel_sent_ahead(self, job_id: int, reason: str) -> int:
        """Cancel the runs of `job_id` sent ahead that have not started: each
        ends `skipped` with `reason` (and is recorded so when its executor
        reports it). Returns how many were asked to stop."""
        runs = dict(self._sent_ahead.get(job_id, {}))
        for run_id, address in runs.items():
            task = asyncio.create_task(self._cancel_one(run_id, address, reason), name=f"cancel-{run_id}")
            self._cancels.add(task)
            task.add_done_callback(self._cancels.discard)
        return len(runs)

    async def _cancel_one(self, run_id: str, address: str, reason: str) -> None:
        request = pb.KillRequest(run_id=run_id, before_start_only=True, reason=reason)
        try:
            reply = await self.clients.stub(address).Kill(request, timeout=5)
        except grpc.aio.AioRpcError as exc:
            log.warning("run %s: could not cancel it on %s (%s); it runs as sent", run_id, address, exc.details())
            return
        if reply.killed:
            log.info("run %s cancelled on %s before its scheduled time: %s", run_id, address, reason)

