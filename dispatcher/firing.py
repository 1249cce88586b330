"""The life of a firing: claim it, apply the overlap policy, record it, run it
on one executor (or on each, for broadcast/sharded jobs), record the outcome,
retry with backoff, then start dependent jobs. DESIGN.md "The life of a
firing" steps 2-8.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import grpc

from crontrio.common import status
from crontrio.common.claims.base import CLAIM_TTL_MS, Claims
from crontrio.common.model import (
    ALWAYS,
    HTTP,
    KEYWORD_FAIL,
    ON_FAILURE,
    ON_SUCCESS,
    TRIGGER_SCHEDULE,
    Job,
    RunRecord,
    firing_id,
    iso_ms,
    make_run_id,
)
from crontrio.common.registry.base import ExecutorRef, Registry
from crontrio.dispatcher.executor_client import ExecutorClients
from crontrio.dispatcher.executor_session import SessionBrokenError
from crontrio.dispatcher.overlap import OverlapGate
from crontrio.dispatcher.recorder import RunRecorder
from crontrio.dispatcher.routing import Router, fans_out, matching_executors
from crontrio.protos import crontrio_pb2 as pb

log = logging.getLogger(__name__)

# How long to keep calling Run again (it is idempotent by run id) when the
# stream breaks: briefly when the run never started (the executor is likely
# down: fail and let the retry policy pick another), longer once it started
# (a network blip must not turn a healthy run into a lost one).
REATTACH_BEFORE_START_SECONDS = 3.0
REATTACH_AFTER_START_SECONDS = 15.0
# What _executor_knows says when a live executor answered with an error: it
# may have the run, so it must not be taken for "unknown there".
UNSURE = "unsure"
# Codes meaning the executor gave no answer (down, or too slow to tell).
NO_ANSWER = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# Outcomes that start `on_failure` dependents (skipped/queued firings start nothing).
FAILED_OUTCOMES = frozenset({status.FAILED, status.TIMEOUT, status.KILLED, status.LOST})

SpawnFn = Callable[[Coroutine[Any, Any, None], str], None]
DownstreamFn = Callable[[str], list[tuple[Job, str]]]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Outcome:
    status: str
    run_id: str
    executor: str = ""
    unreachable: bool = False


def retry_delay(job: Job, attempt_done: int, rng: random.Random) -> float:
    """Seconds before the attempt after `attempt_done`: interval x backoff^(n-1),
    capped, then +/- jitter so a fleet of failing jobs does not retry in lockstep."""
    delay = job.retry_interval_seconds * job.retry_backoff ** (attempt_done - 1)
    if job.retry_max_interval_seconds > 0:
        delay = min(delay, job.retry_max_interval_seconds)
    if job.retry_jitter > 0:
        delay *= 1 + rng.uniform(-job.retry_jitter, job.retry_jitter)
    return max(0.0, delay)


def build_run_request(job: Job, record: RunRecord, template: bytes | None = None) -> pb.RunRequest:
    """The RunRequest of one run. `template` (from `request_template`) is the
    serialized part every run of `job` shares: building the task's maps from
    Python dicts cost more than anything else per run at 1,000 runs/s."""
    if template is not None:
        request = pb.RunRequest.FromString(template)
        request.run_id = record.run_id
        request.scheduled_ms = record.scheduled_ms
        request.attempt = record.attempt
        return request
    request = pb.RunRequest(
        run_id=record.run_id,
        job_id=job.id,
        job_name=job.name,
        scheduled_ms=record.scheduled_ms,
        attempt=record.attempt,
        timeout_seconds=job.timeout_seconds,
        keywords=list(job.keywords),
    )
    if job.type == HTTP:
        request.http.CopyFrom(
            pb.HttpTask(
                url=job.command,
                method=job.http_method,
                headers=job.http_headers,
                body=job.http_body,
                expected_statuses=list(job.expected_statuses),
                follow_redirects=job.follow_redirects,
                skip_tls_verify=job.skip_tls_verify,
            )
        )
    else:
        env = dict(job.env)
        if job.route_strategy == "sharded":
            env["CRONTRIO_SHARD_INDEX"] = str(record.shard)
            env["CRONTRIO_SHARD_TOTAL"] = str(record.shard_total)
        request.shell.CopyFrom(pb.ShellTask(command=job.command, workdir=job.workdir, env=env, user=job.run_as_user))
    return request


def request_template(job: Job) -> bytes | None:
    """What every run of `job` sends alike, serialized; None for a job whose
    runs differ beyond the run's own fields (sharded: the shard's env)."""
    if job.route_strategy == "sharded":
        return None
    blank = RunRecord(run_id="", job_id=job.id, job_name=job.name, scheduled_ms=0, attempt=0, status="")
    return build_run_request(job, blank).SerializeToString()


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
        overlap: OverlapGate | None = None,
    ) -> None:
        self.dispatcher_id = dispatcher_id
        self._claims = claims
        self._recorder = recorder
        self._registry = registry
        self._clients = clients
        self._machine_groups = machine_groups or {}
        self._overlap = overlap
        self._rng = random.Random()
        # Runs this dispatcher has going per executor: what least_busy balances.
        self.in_flight: Counter[str] = Counter()
        self._router = Router(load=lambda address: self.in_flight[address])
        # job id -> (the Job it was built from, its request template). The
        # Job object is replaced on any change, so identity says it is current.
        self._templates: dict[int, tuple[Job, bytes | None]] = {}
        # Executors the monitor reports as failing health checks: not routed to.
        self.unhealthy: frozenset[str] = frozenset()
        # Called for firings another dispatcher claimed (see takeover.py).
        self.on_claimed_elsewhere: Callable[[Job, int], None] | None = None
        # Set by the app: jobs to start after a job ends, and a task spawner.
        self.downstream_of: DownstreamFn = lambda _name: []
        self.spawn: SpawnFn | None = None
        # Called with the job and the run id of a firing's last attempt (alerts).
        self.after_firing: Callable[[Job, str], Coroutine[Any, Any, None]] | None = None
        # Set by the app: is this job (by id) still scheduled (not paused, deleted or invalid)?
        self.still_scheduled: Callable[[int], bool] = lambda _job_id: True
        # Runs sent ahead of their time (dispatch_ahead_ms) that have not
        # started yet: job id -> {run id: executor address}. A job paused or
        # deleted meanwhile has them cancelled on their executors.
        self._sent_ahead: dict[int, dict[str, str]] = {}
        self._cancels: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ firings

    async def fire(self, job: Job, scheduled_ms: int, trigger: str = TRIGGER_SCHEDULE) -> None:
        """Fire `job` for `scheduled_ms`, unless another dispatcher claimed it."""
        if not await self._claims.claim(firing_id(job.id, scheduled_ms), self.dispatcher_id, CLAIM_TTL_MS):
            log.debug("firing %s already claimed elsewhere", firing_id(job.id, scheduled_ms))
            if self.on_claimed_elsewhere is not None:
                self.on_claimed_elsewhere(job, scheduled_ms)
            return
        await self.fire_claimed(job, scheduled_ms, trigger)

    async def fire_claimed(self, job: Job, scheduled_ms: int, trigger: str = TRIGGER_SCHEDULE) -> None:
        """A firing that is ours (claimed, or taken over): overlap policy, then run it."""
        if self._overlap is not None and not await self._overlap.admit(job, scheduled_ms, trigger, self._new_record):
            return
        await self.run_firing(job, scheduled_ms, trigger)

    async def adopt(self, job: Job, run: RunRecord) -> None:
        """Carry on with `run`, recorded by a dispatcher that died before any
        executor reported starting it (and whose ownership we just took over
        in the store, see takeover.py). If an executor already has it (sent,
        held for its time, or even finished), we follow it there, since Run is
        idempotent by run id; otherwise it is sent as its owner would have."""
        holder = await self.holder_of(run.run_id)
        log.warning(
            "job %s run %s: adopted from dead dispatcher %s (%s)",
            job.name,
            run.run_id,
            run.dispatcher,
            f"following it on {holder}" if holder else "no executor has it: sending it",
        )
        await self.run_firing(job, run.scheduled_ms, run.trigger, run.attempt, recorded=True, pin=holder)

    async def holder_of(self, run_id: str) -> str:
        """The address of a live executor that knows `run_id` (running, held,
        or with its result journaled), or "". One that answered with an
        error may have it: with none that knows it, the run goes there, where
        Run (idempotent by run id) follows it if it has it, rather than to
        another executor, where it could run a second time."""
        addresses = sorted({e.address for e in self._registry.live()})
        answers = await asyncio.gather(*(self._executor_knows(self._clients.stub(a), run_id) for a in addresses))
        known = [a for a, answer in zip(addresses, answers, strict=True) if answer is not None and answer != UNSURE]
        unsure = [a for a, answer in zip(addresses, answers, strict=True) if answer == UNSURE]
        if not known and unsure:
            log.warning("run %s: executor %s could not say whether it has the run; sending it there", run_id, unsure[0])
        return (known or unsure or [""])[0]

    async def run_firing(
        self, job: Job, scheduled_ms: int, trigger: str, first_attempt: int = 1, recorded: bool = False, pin: str = ""
    ) -> None:
        """Attempts from `first_attempt`, then what follows a firing's end
        (`pin`: the first attempt goes to that executor, see `adopt`)."""
        final = await self.run_attempts(job, scheduled_ms, first_attempt, trigger, recorded, pin)
        if final is None:
            return
        if self.after_firing is not None:
            try:
                await self.after_firing(job, final.run_id)
            except Exception as exc:  # noqa: BLE001 - an alerting problem must never break firing
                log.error("job %s: after-firing hook failed: %s", job.name, exc)
        if self._overlap is not None and self.spawn is not None:
            queued = await self._overlap.next_queued(job)
            if queued is not None:
                log.info("job %s: starting the queued firing %s", job.name, iso_ms(queued.scheduled_ms))
                self.spawn(self.run_firing(job, queued.scheduled_ms, queued.trigger, 1, recorded=True), f"queued-{queued.run_id}")
        self._start_dependents(job, scheduled_ms, final.status)

    async def run_attempts(
        self,
        job: Job,
        scheduled_ms: int,
        first_attempt: int,
        trigger: str = TRIGGER_SCHEDULE,
        recorded: bool = False,
        pin: str = "",
    ) -> Outcome | None:
        """Run attempts of one firing until one needs no retry; the last outcome."""
        attempt = first_attempt
        avoid = ""
        while True:
            outcome = await self._attempt(job, scheduled_ms, attempt, trigger, avoid, recorded, pin)
            recorded, pin = False, ""  # only the first attempt can have been recorded already (queued, adopted)
            if outcome is None or outcome.status not in status.RETRYABLE or attempt > job.retries:
                return outcome
            delay = retry_delay(job, attempt, self._rng)
            log.info(
                "job %s run %s %s; retry %d of %d in %.1fs", job.name, outcome.run_id, outcome.status, attempt, job.retries, delay
            )
            await asyncio.sleep(delay)
            attempt += 1
            # A retry after a lost or unreachable executor goes elsewhere when it can.
            avoid = outcome.executor if outcome.status == status.LOST or outcome.unreachable else ""

    def _new_record(self, job: Job, scheduled_ms: int, attempt: int, trigger: str, **fields: Any) -> RunRecord:
        shard = fields.pop("shard", 0)
        return RunRecord(
            run_id=make_run_id(job.id, scheduled_ms, attempt, shard),
            job_id=job.id,
            job_name=job.name,
            scheduled_ms=scheduled_ms,
            attempt=attempt,
            status=fields.pop("status", status.PENDING),
            dispatcher=self.dispatcher_id,
            created_ms=now_ms(),
            trigger=trigger,
            shard=shard,
            **fields,
        )

    async def _attempt(
        self,
        job: Job,
        scheduled_ms: int,
        attempt: int,
        trigger: str,
        avoid: str = "",
        recorded: bool = False,
        pin: str = "",
    ) -> Outcome | None:
        if pin:  # the executor that already has this run: nowhere else
            plan = [next((e for e in self._registry.live() if e.address == pin), ExecutorRef(address=pin))]
        else:
            candidates = matching_executors(job, self._registry.live(), self._machine_groups, self.unhealthy)
            if avoid and len(candidates) > 1:
                candidates = [e for e in candidates if e.address != avoid]
            plan = self._router.plan(job, candidates)
        if fans_out(job.route_strategy) and plan and not pin:
            return await self._fan_out(job, scheduled_ms, attempt, trigger, plan, recorded)
        record = self._new_record(job, scheduled_ms, attempt, trigger)
        if recorded:
            self._recorder.update(record.run_id, dispatcher=self.dispatcher_id)
        elif not await self._recorder.insert(record):
            # The unique key caught a firing another dispatcher already recorded.
            log.info("run %s already recorded by another dispatcher; not running it again", record.run_id)
            return None
        if record.scheduled_ms > now_ms() and not self.still_scheduled(job.id):
            # Paused or deleted between the claim ahead of time and now.
            reason = f"job {job.name} was paused or deleted before this firing's scheduled time"
            log.info("job %s run %s skipped: %s", job.name, record.run_id, reason)
            self._recorder.update(record.run_id, status=status.SKIPPED, error=reason, finished_ms=now_ms())
            return Outcome(status.SKIPPED, record.run_id)
        if not plan:
            reason = f"no executor: none live matches target {job.target or '(any)'!r}"
            log.warning("job %s run %s failed: %s", job.name, record.run_id, reason)
            self._recorder.update(record.run_id, status=status.FAILED, error=reason, finished_ms=now_ms())
            return Outcome(status.FAILED, record.run_id)
        log.info(
            "job %s fired for %s (%s): run %s (attempt %d) on %s",
            job.name,
            iso_ms(scheduled_ms),
            trigger,
            record.run_id,
            attempt,
            plan[0].address,
        )
        # failover plans list every candidate: try the next one while they are unreachable.
        outcome = Outcome(status.FAILED, record.run_id)
        for i, executor in enumerate(plan):
            last = i == len(plan) - 1
            outcome = await self._invoke(job, record, executor, record_unreachable=last)
            if not outcome.unreachable or last:
                break
            log.warning(
                "job %s run %s: executor %s unreachable, failing over to %s",
                job.name,
                record.run_id,
                executor.address,
                plan[i + 1].address,
            )
        return outcome

    async def _fan_out(
        self, job: Job, scheduled_ms: int, attempt: int, trigger: str, plan: list[ExecutorRef], recorded: bool = False
    ) -> Outcome | None:
        """broadcast/sharded: one run per executor; the attempt succeeds only if all do."""
        total = len(plan)
        records = [self._new_record(job, scheduled_ms, attempt, trigger, shard=i, shard_total=total) for i in range(total)]
        created = list(await asyncio.gather(*(self._recorder.insert(r) for r in records)))
        if recorded:  # shard 0 is the queued row this dispatcher just promoted
            created[0] = True
            self._recorder.update(records[0].run_id, shard_total=total, dispatcher=self.dispatcher_id)
        if not created[0]:
            log.info("firing %s attempt %d already recorded by another dispatcher", firing_id(job.id, scheduled_ms), attempt)
            return None
        log.info(
            "job %s fired for %s: %s to %d executors (attempt %d)",
            job.name,
            iso_ms(scheduled_ms),
            job.route_strategy,
            total,
            attempt,
        )
        outcomes = await asyncio.gather(
            *(self._invoke(job, r, e, record_unreachable=True) for r, e in zip(records, plan, strict=True) if created[r.shard])
        )
        failed = [o for o in outcomes if o.status != status.SUCCEEDED]
        if failed:
            return Outcome(failed[0].status, records[0].run_id, failed[0].executor, failed[0].unreachable)
        return Outcome(status.SUCCEEDED, records[0].run_id)

    def _start_dependents(self, job: Job, scheduled_ms: int, final_status: str) -> None:
        if self.spawn is None:
            return
        for downstream, when in self.downstream_of(job.name):
            matches = (
                when == ALWAYS
                or (when == ON_SUCCESS and final_status == status.SUCCEEDED)
                or (when == ON_FAILURE and final_status in FAILED_OUTCOMES)
            )
            if not matches:
                continue
            # +1 ms: never the same instant as a firing of its own schedule
            # (those are whole seconds), yet the same for every upstream that
            # fired at that time, so a job after two of them runs once.
            at = scheduled_ms + 1
            log.info("job %s ended %s: starting %s (%s)", job.name, final_status, downstream.name, when)
            self.spawn(self.fire(downstream, at, f"after:{job.name}"), f"after-{downstream.id}-{at}")

    # ------------------------------------------------------------ one run

    async def _invoke(self, job: Job, record: RunRecord, executor: ExecutorRef, record_unreachable: bool = True) -> Outcome:
        request = build_run_request(job, record, self._template(job))
        stub = self._clients.stub(executor.address)
        started = False
        failing_since: float | None = None
        delay = 0.2
        self.in_flight[executor.address] += 1
        ahead = self._sent_ahead.setdefault(job.id, {}) if record.scheduled_ms > now_ms() else None
        if ahead is not None:
            ahead[record.run_id] = executor.address
        try:
            session = self._clients.session(executor.address)
            if session is not None:
                try:
                    async for ev in session.run(request):
                        kind = ev.WhichOneof("event")
                        if kind == "started" and not started:
                            started = True
                            self._no_longer_ahead(job.id, record.run_id)
                            self._record_started(record, executor, ev.started)
                        elif kind == "finished":
                            return await self._finish(job, record, executor, ev.finished)
                        elif kind == "refused" and ev.refused.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]:
                            return self._give_up(job, record, executor, started, ev.refused.message, invalid=True)
                        # Any other refusal: Run below meets it too and handles it as ever.
                except SessionBrokenError as exc:
                    log.debug("run %s: %s; going on with Run", record.run_id, exc)
            while True:
                try:
                    async for event in stub.Run(request):
                        failing_since = None
                        kind = event.WhichOneof("event")
                        if kind == "started" and not started:
                            started = True
                            self._no_longer_ahead(job.id, record.run_id)
                            self._record_started(record, executor, event.started)
                        elif kind == "finished":
                            return await self._finish(job, record, executor, event.finished)
                    raise _StreamEndedError("the executor closed the stream before the run finished")
                except (grpc.aio.AioRpcError, _StreamEndedError) as exc:
                    reason = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
                    if isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                        return self._give_up(job, record, executor, started, reason or "", invalid=True)
                    if isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and not started:
                        # The executor refused to start it (it could not journal
                        # its start: a full disk): it never ran there.
                        if not record_unreachable:
                            return Outcome(status.FAILED, record.run_id, executor.address, unreachable=True)
                        return self._give_up(job, record, executor, False, reason or "", refused=True)
                    now = time.monotonic()
                    failing_since = now if failing_since is None else failing_since
                    window = REATTACH_AFTER_START_SECONDS if started else REATTACH_BEFORE_START_SECONDS
                    if now - failing_since >= window or self._gone(executor):
                        if not started:
                            # Before calling it unreachable, ask: an overloaded executor may
                            # have taken the run after all, and failing (then retrying) a run
                            # that is going would run it twice.
                            known = await self._executor_knows(stub, record.run_id)
                            if known == UNSURE:
                                # Alive but cannot say: the run may have started there.
                                return self._give_up(
                                    job, record, executor, True, f"{reason}; it could not say whether it has the run"
                                )
                            if known == "running":
                                failing_since, delay = None, 0.2
                                continue
                            if isinstance(known, pb.RunFinished):
                                return await self._finish(job, record, executor, known)
                        if not started and not record_unreachable:
                            return Outcome(status.FAILED, record.run_id, executor.address, unreachable=True)
                        return self._give_up(job, record, executor, started, reason or "")
                    log.warning(
                        "run %s: connection to executor %s broke (%s); reattaching", record.run_id, executor.address, reason
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
        finally:
            self.in_flight[executor.address] -= 1
            if ahead is not None:
                self._no_longer_ahead(job.id, record.run_id)

    def _no_longer_ahead(self, job_id: int, run_id: str) -> None:
        runs = self._sent_ahead.get(job_id)
        if runs is not None:
            runs.pop(run_id, None)
            if not runs:
                del self._sent_ahead[job_id]

    def job_unscheduled(self, job_id: int, reason: str) -> None:
        """The job was paused, deleted or made invalid: cancel its firings
        sent ahead, and forget its request template."""
        self._templates.pop(job_id, None)
        self.cancel_sent_ahead(job_id, reason)

    def cancel_sent_ahead(self, job_id: int, reason: str) -> int:
        """Cancel the runs of `job_id` this dispatcher sent ahead and that have
        not started: each ends `skipped` with `reason` (and is recorded so
        when its executor reports it). Returns how many were asked to stop."""
        runs = dict(self._sent_ahead.get(job_id, {}))
        for run_id, address in runs.items():
            task = asyncio.create_task(self._cancel_one(run_id, address, reason), name=f"cancel-{run_id}")
            self._cancels.add(task)
            task.add_done_callback(self._cancels.discard)
        return len(runs)

    async def _cancel_one(self, run_id: str, address: str, reason: str) -> None:
        request = pb.KillRequest(run_id=run_id, before_start_only=True, reason=reason)
        try:
            reply = await self._clients.stub(address).Kill(request, timeout=5)
        except grpc.aio.AioRpcError as exc:
            log.warning("run %s: could not cancel it on %s (%s); it runs as sent", run_id, address, exc.details())
            return
        if reply.killed:
            log.info("run %s cancelled on %s before its scheduled time: %s", run_id, address, reason)

    def _template(self, job: Job) -> bytes | None:
        cached = self._templates.get(job.id)
        if cached is None or cached[0] is not job:
            cached = self._templates[job.id] = (job, request_template(job))
        return cached[1]

    def _record_started(self, record: RunRecord, executor: ExecutorRef, ev: pb.RunStarted) -> None:
        self._recorder.update(
            record.run_id,
            status=status.RUNNING,
            executor=ev.executor or executor.address,
            host=ev.host,
            pid=ev.pid,
            started_ms=ev.started_ms,
        )

    async def _executor_knows(self, stub: Any, run_id: str) -> str | pb.RunFinished | None:
        """ "running", its result, None (unknown to it, or no answer), or
        UNSURE when it answered with an error (it may have the run)."""
        try:
            reply = await stub.ListResults(pb.ListResultsRequest(run_ids=[run_id]), timeout=3)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in NO_ANSWER:
                return None
            log.warning("run %s: executor could not say whether it has it: %s %s", run_id, exc.code().name, exc.details())
            return UNSURE
        if run_id in reply.running_run_ids:
            return "running"
        for result in reply.results:
            if result.run_id == run_id:
                return result
        return None

    def _gone(self, executor: ExecutorRef) -> bool:
        """The executor left the registry or fails its health checks: stop reattaching."""
        if executor.address in self.unhealthy:
            return True
        return all(e.address != executor.address for e in self._registry.live())

    def _give_up(
        self,
        job: Job,
        record: RunRecord,
        executor: ExecutorRef,
        started: bool,
        reason: str,
        invalid: bool = False,
        refused: bool = False,
    ) -> Outcome:
        """Record the run as failed or lost; `refused`: the executor would not
        start it (not for the request's sake: another executor may take it)."""
        if invalid:
            run_status, error = status.FAILED, f"executor {executor.address} refused the run: {reason}"
        elif refused:
            run_status, error = status.FAILED, f"executor {executor.address} refused the run, which did not start there: {reason}"
        elif started:
            run_status, error = status.LOST, f"executor lost: no contact with {executor.address}: {reason}"
        else:
            run_status, error = status.FAILED, f"executor {executor.address} unreachable: {reason}"
        log.warning("job %s run %s %s: %s", job.name, record.run_id, run_status, error)
        self._recorder.update(record.run_id, status=run_status, error=error, finished_ms=now_ms(), executor=executor.address)
        return Outcome(run_status, record.run_id, executor.address, unreachable=not started and not invalid)

    async def _finish(self, job: Job, record: RunRecord, executor: ExecutorRef, fin: pb.RunFinished) -> Outcome:
        run_status, error = fin.status, fin.error
        if fin.matched_keyword:
            if job.keyword_action == KEYWORD_FAIL and run_status == status.SUCCEEDED:
                run_status = status.FAILED
                error = f"output contains keyword {fin.matched_keyword!r}"
            else:
                error = (error + "; " if error else "") + f"output contains keyword {fin.matched_keyword!r} (notify only)"
        # Durable before the ack: once acknowledged, the executor forgets it.
        await self._recorder.update(
            record.run_id,
            status=run_status,
            exit_code=fin.exit_code,
            started_ms=fin.started_ms,
            finished_ms=fin.finished_ms,
            output=fin.output_tail,
            output_truncated=fin.output_truncated,
            error=error,
            pid=fin.pid,
            host=fin.host,
            executor=fin.executor or executor.address,
        )
        duration = max(0, fin.finished_ms - fin.started_ms) / 1000
        log.info(
            "job %s run %s %s (exit %d) in %.2fs on %s%s",
            job.name,
            record.run_id,
            run_status,
            fin.exit_code,
            duration,
            fin.executor or executor.address,
            f": {error}" if error else "",
        )
        session = self._clients.session(executor.address)
        if session is not None and session.ack(record.run_id):
            return Outcome(run_status, record.run_id, executor.address)
        try:
            await self._clients.stub(executor.address).Ack(pb.AckRequest(run_ids=[record.run_id]), timeout=5)
        except grpc.aio.AioRpcError as exc:
            # Harmless: the result stays in the executor's journal and a later
            # Run or the monitor's reconciliation collects it again.
            log.warning("ack of run %s to %s failed: %s", record.run_id, executor.address, exc.details())
        return Outcome(run_status, record.run_id, executor.address)


class _StreamEndedError(Exception):
    pass
