"""The life of a firing: claim it, record it, run it on an executor, record
the outcome, retry on failure. DESIGN.md "The life of a firing" steps 2-8.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from common import status
from common.claims.base import CLAIM_TTL_MS, Claims
from common.model import HTTP, Job, RunRecord, firing_id, iso_ms, make_run_id
from common.registry.base import ExecutorRef, Registry
from dispatcher.executor_client import ExecutorClients
from dispatcher.recorder import RunRecorder
from dispatcher.routing import RoundRobinRouter, matching_executors
from protos import crontrio_pb2 as pb

log = logging.getLogger(__name__)

# How long to keep calling Run again (it is idempotent by run id) when the
# stream breaks: briefly when the run never started (the executor is likely
# down: fail and let the retry policy pick another), longer once it started
# (a network blip must not turn a healthy run into a lost one).
REATTACH_BEFORE_START_SECONDS = 3.0
REATTACH_AFTER_START_SECONDS = 15.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Outcome:
    status: str
    run_id: str
    executor: str = ""
    unreachable: bool = False


def build_run_request(job: Job, record: RunRecord) -> pb.RunRequest:
    request = pb.RunRequest(
        run_id=record.run_id,
        job_id=job.id,
        job_name=job.name,
        scheduled_ms=record.scheduled_ms,
        attempt=record.attempt,
        timeout_seconds=job.timeout_seconds,
    )
    if job.type == HTTP:
        request.http.CopyFrom(
            pb.HttpTask(
                url=job.command,
                method=job.http_method,
                headers=job.http_headers,
                body=job.http_body,
                expected_statuses=list(job.expected_statuses),
            )
        )
    else:
        request.shell.CopyFrom(pb.ShellTask(command=job.command, workdir=job.workdir, env=job.env))
    return request


class FiringRunner:
    """Runs firings for one dispatcher."""

    def __init__(
        self,
        dispatcher_id: str,
        claims: Claims,
        recorder: RunRecorder,
        registry: Registry,
        clients: ExecutorClients,
        machine_groups: dict[str, list[str]] | None = None,
    ) -> None:
        self.dispatcher_id = dispatcher_id
        self._claims = claims
        self._recorder = recorder
        self._registry = registry
        self._clients = clients
        self._router = RoundRobinRouter()
        self._machine_groups = machine_groups or {}
        # Executors the monitor reports as failing health checks: not routed to.
        self.unhealthy: frozenset[str] = frozenset()
        # Called for firings another dispatcher claimed (see takeover.py).
        self.on_claimed_elsewhere: Callable[[Job, int], None] | None = None

    async def fire(self, job: Job, scheduled_ms: int) -> None:
        """Fire `job` for `scheduled_ms`, unless another dispatcher claimed it."""
        if not await self._claims.claim(firing_id(job.id, scheduled_ms), self.dispatcher_id, CLAIM_TTL_MS):
            log.debug("firing %s already claimed elsewhere", firing_id(job.id, scheduled_ms))
            if self.on_claimed_elsewhere is not None:
                self.on_claimed_elsewhere(job, scheduled_ms)
            return
        await self.run_attempts(job, scheduled_ms, first_attempt=1)

    async def run_attempts(self, job: Job, scheduled_ms: int, first_attempt: int) -> None:
        """Run attempts of one firing from `first_attempt` until one needs no retry."""
        attempt = first_attempt
        avoid = ""
        while True:
            outcome = await self._attempt(job, scheduled_ms, attempt, avoid)
            if outcome is None or outcome.status not in status.RETRYABLE or attempt > job.retries:
                return
            log.info(
                "job %s run %s %s; retry %d of %d in %.1fs",
                job.name,
                outcome.run_id,
                outcome.status,
                attempt,
                job.retries,
                job.retry_interval_seconds,
            )
            await asyncio.sleep(job.retry_interval_seconds)
            attempt += 1
            # A retry after a lost or unreachable executor goes elsewhere when it can.
            avoid = outcome.executor if outcome.status == status.LOST or outcome.unreachable else ""

    async def _attempt(self, job: Job, scheduled_ms: int, attempt: int, avoid: str = "") -> Outcome | None:
        record = RunRecord(
            run_id=make_run_id(job.id, scheduled_ms, attempt),
            job_id=job.id,
            job_name=job.name,
            scheduled_ms=scheduled_ms,
            attempt=attempt,
            status=status.PENDING,
            dispatcher=self.dispatcher_id,
            created_ms=now_ms(),
        )
        if not await self._recorder.insert(record):
            # The unique key caught a firing another dispatcher already recorded.
            log.info("run %s already recorded by another dispatcher; not running it again", record.run_id)
            return None
        candidates = matching_executors(job, self._registry.live(), self._machine_groups, self.unhealthy)
        if avoid and len(candidates) > 1:
            candidates = [e for e in candidates if e.address != avoid]
        executor = self._router.pick(job, candidates)
        if executor is None:
            reason = f"no executor: none live matches target {job.target or '(any)'!r}"
            log.warning("job %s run %s failed: %s", job.name, record.run_id, reason)
            self._recorder.update(record.run_id, status=status.FAILED, error=reason, finished_ms=now_ms())
            return Outcome(status.FAILED, record.run_id)
        log.info(
            "job %s fired for %s: run %s (attempt %d) on %s",
            job.name,
            iso_ms(scheduled_ms),
            record.run_id,
            attempt,
            executor.address,
        )
        return await self._invoke(job, record, executor)

    async def _invoke(self, job: Job, record: RunRecord, executor: ExecutorRef) -> Outcome:
        request = build_run_request(job, record)
        stub = self._clients.stub(executor.address)
        started = False
        failing_since: float | None = None
        delay = 0.2
        while True:
            try:
                async for event in stub.Run(request):
                    failing_since = None
                    kind = event.WhichOneof("event")
                    if kind == "started" and not started:
                        started = True
                        ev = event.started
                        self._recorder.update(
                            record.run_id,
                            status=status.RUNNING,
                            executor=ev.executor or executor.address,
                            host=ev.host,
                            pid=ev.pid,
                            started_ms=ev.started_ms,
                        )
                    elif kind == "finished":
                        return await self._finish(job, record, executor, event.finished)
                raise _StreamEndedError("the executor closed the stream before the run finished")
            except (grpc.aio.AioRpcError, _StreamEndedError) as exc:
                reason = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
                now = time.monotonic()
                failing_since = now if failing_since is None else failing_since
                window = REATTACH_AFTER_START_SECONDS if started else REATTACH_BEFORE_START_SECONDS
                if now - failing_since >= window or self._gone(executor):
                    return self._give_up(job, record, executor, started, reason or "")
                log.warning("run %s: connection to executor %s broke (%s); reattaching", record.run_id, executor.address, reason)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _gone(self, executor: ExecutorRef) -> bool:
        """The executor left the registry or fails its health checks: stop reattaching."""
        if executor.address in self.unhealthy:
            return True
        return all(e.address != executor.address for e in self._registry.live())

    def _give_up(self, job: Job, record: RunRecord, executor: ExecutorRef, started: bool, reason: str) -> Outcome:
        if started:
            run_status, error = status.LOST, f"executor lost: no contact with {executor.address}: {reason}"
        else:
            run_status, error = status.FAILED, f"executor {executor.address} unreachable: {reason}"
        log.warning("job %s run %s %s: %s", job.name, record.run_id, run_status, error)
        self._recorder.update(record.run_id, status=run_status, error=error, finished_ms=now_ms())
        return Outcome(run_status, record.run_id, executor.address, unreachable=not started)

    async def _finish(self, job: Job, record: RunRecord, executor: ExecutorRef, fin: pb.RunFinished) -> Outcome:
        # Durable before the ack: once acknowledged, the executor forgets it.
        await self._recorder.update(
            record.run_id,
            status=fin.status,
            exit_code=fin.exit_code,
            started_ms=fin.started_ms,
            finished_ms=fin.finished_ms,
            output=fin.output_tail,
            output_truncated=fin.output_truncated,
            error=fin.error,
            pid=fin.pid,
            host=fin.host,
            executor=fin.executor or executor.address,
        )
        duration = max(0, fin.finished_ms - fin.started_ms) / 1000
        log.info(
            "job %s run %s %s (exit %d) in %.2fs on %s%s",
            job.name,
            record.run_id,
            fin.status,
            fin.exit_code,
            duration,
            fin.executor or executor.address,
            f": {fin.error}" if fin.error else "",
        )
        try:
            await self._clients.stub(executor.address).Ack(pb.AckRequest(run_ids=[record.run_id]), timeout=5)
        except grpc.aio.AioRpcError as exc:
            # Harmless: the result stays in the executor's journal and a later
            # Run or the monitor's reconciliation collects it again.
            log.warning("ack of run %s to %s failed: %s", record.run_id, executor.address, exc.details())
        return Outcome(fin.status, record.run_id, executor.address)


class _StreamEndedError(Exception):
    pass
