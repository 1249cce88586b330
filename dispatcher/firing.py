"""The life of a firing: claim it, apply the overlap policy, record it, run it
on one executor (or on each, for broadcast/sharded jobs), record the outcome,
retry with backoff, then start dependent jobs: docs/ARCHITECTURE.md, "The
life of a firing", steps 3-9. This module decides; around it:
dispatcher/executor_link.py talks to executors (sessions, the Run fallback,
reattaching, acks, kills) and records nothing, dispatcher/outcome.py records
what became of each run (and times overruns), dispatcher/fan_out.py runs a
broadcast/sharded firing on each executor, dispatcher/run_records.py builds
the records.

Top to bottom: `fire` claims (`claim`: firings due together, in one call),
`fire_claimed` admits (the overlap policy), `run_firing` runs the attempts
then the follow-ups, `run_attempts` retries, `_attempt` records and routes,
`_run_on` sends (failing over while it never started), `_invoke` follows one
run to its end.

(Just over 500 lines: the life reads in one file, top to bottom; each part
that could leave without splitting that story already has.)
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from crontrio.common import status
from crontrio.common.claims.base import CLAIM_TTL_MS, Claims
from crontrio.common.clock import now_ms
from crontrio.common.convert import build_run_request, request_template
from crontrio.common.model import ALWAYS, ON_FAILURE, ON_SUCCESS, TRIGGER_SCHEDULE, Job, RunRecord, firing_id, iso_ms
from crontrio.common.registry.base import ExecutorRef, Registry
from crontrio.dispatcher.claim_share import SHARE_GRACE_SECONDS, split_share
from crontrio.dispatcher.executor_client import ExecutorClients
from crontrio.dispatcher.executor_link import ExecutorLink, Finished, LinkEvent, NotStarted, Refused, Started, Unreachable
from crontrio.dispatcher.fan_out import FanOut
from crontrio.dispatcher.metrics import CLAIMED_ELSEWHERE, FIRED, DispatcherMetrics
from crontrio.dispatcher.misfire import MisfireTracker
from crontrio.dispatcher.outcome import Outcome, RunOutcomes, not_started
from crontrio.dispatcher.overlap import OverlapGate
from crontrio.dispatcher.recorder import RecordDroppedError, RunRecorder
from crontrio.dispatcher.routing import Router, fans_out, matching_executors
from crontrio.dispatcher.run_records import RunRecords

log = logging.getLogger(__name__)

# Outcomes that start `on_failure` dependents (skipped/queued firings start nothing).
FAILED_OUTCOMES = frozenset({status.FAILED, status.TIMEOUT, status.KILLED, status.LOST})

SpawnFn = Callable[[Coroutine[Any, Any, None], str], None]
DownstreamFn = Callable[[str], list[tuple[Job, str]]]


def retry_delay(job: Job, attempt_done: int, rng: random.Random) -> float:
    """Seconds before the attempt after `attempt_done`: interval x backoff^(n-1),
    capped, then +/- jitter so a fleet of failing jobs does not retry in lockstep."""
    delay = job.retry_interval_seconds * job.retry_backoff ** (attempt_done - 1)
    if job.retry_max_interval_seconds > 0:
        delay = min(delay, job.retry_max_interval_seconds)
    if job.retry_jitter > 0:
        delay *= 1 + rng.uniform(-job.retry_jitter, job.retry_jitter)
    return max(0.0, delay)


def _no_downstream(_name: str) -> list[tuple[Job, str]]:
    return []


def _always_scheduled(_job_id: int) -> bool:
    return True


@dataclass(frozen=True)
class FiringHooks:
    """What the life of a firing calls out to, given at construction
    (dispatcher/app.py wires them to the job sync, the alerts and takeover)."""

    # Runs follow-up work (queued firings, dependents) as tasks shutdown waits for.
    spawn: SpawnFn | None = None
    # Jobs to start after a job ends, with their condition.
    downstream_of: DownstreamFn = _no_downstream
    # Is this job (by id) still scheduled (not paused, deleted or invalid)?
    still_scheduled: Callable[[int], bool] = _always_scheduled
    # Called with the job and the run id of a firing's last attempt (alerts).
    after_firing: Callable[[Job, str], Coroutine[Any, Any, None]] | None = None
    # Called with the job and run id of a run past its timeout under
    # timeout_action "alert" (it marks the run once and alerts once).
    on_overrun: Callable[[Job, str], Coroutine[Any, Any, Any]] | None = None
    # Called for firings another dispatcher claimed (see takeover.py).
    on_claimed_elsewhere: Callable[[Job, int], None] | None = None
    # Called as each firing sent ahead is handed to its executor (dispatcher/ahead_cost.py).
    sent_ahead: Callable[[], None] | None = None


@dataclass
class _AheadRun:
    """A run sent ahead of its time, until it ends: `job` is the job as its
    executor runs it (replaced when an edit reached the executor)."""

    job: Job
    record: RunRecord


def _now_as(ahead: _AheadRun, job: Job, _request: object) -> None:
    ahead.job = job


class FiringRunner:
    """Runs firings for one dispatcher."""

    def __init__(
        self,
        records: RunRecords,
        claims: Claims,
        recorder: RunRecorder,
        registry: Registry,
        clients: ExecutorClients,
        machine_groups: dict[str, list[str]] | None = None,
        overlap: OverlapGate | None = None,
        hooks: FiringHooks | None = None,
        misfires: MisfireTracker | None = None,
        metrics: DispatcherMetrics | None = None,
    ) -> None:
        self.dispatcher_id = records.dispatcher_id
        self._records = records
        self._claims = claims
        self._recorder = recorder
        self._registry = registry
        self._clients = clients
        # Calls to executors that record nothing: who has a run, ack, kill, runs sent ahead.
        self.link = ExecutorLink(registry, clients)
        self._machine_groups = machine_groups or {}
        self._overlap = overlap
        self._rng = random.Random()
        # Runs this dispatcher has going per executor: what least_busy balances.
        self.in_flight: Counter[str] = Counter()
        self._router = Router(load=lambda address: self.in_flight[address])
        # job id -> (the Job it was built from, its request template). The
        # Job object is replaced on any change, so identity says it is current.
        self._templates: dict[int, tuple[Job, bytes | None]] = {}
        # Executor -> when it last passed a health check (the monitor's report; display only).
        self.last_seen: dict[str, int] = {}
        self.hooks = hooks if hooks is not None else FiringHooks()
        # The ids of the live dispatchers (etcd), set once they are watched
        # (dispatcher/app.py serve); None: alone (embedded), claim everything.
        self.live_dispatchers: Callable[[], list[str]] | None = None
        if self.hooks.sent_ahead is not None:
            self.link.on_sent_ahead = self.hooks.sent_ahead
        # Scheduled firings not recorded in time go there, not late to an executor.
        self.misfires = misfires
        self.metrics = metrics if metrics is not None else DispatcherMetrics()
        # What became of each run, recorded (and the overrun timers).
        self.outcomes = RunOutcomes(recorder, self.link, self.metrics, self.hooks.on_overrun)
        self._fan_out = FanOut(records, recorder, self._run_on)
        # Runs sent ahead of their time and not ended, by run id (see `job_edited`).
        self._ahead: dict[str, _AheadRun] = {}

    # ------------------------------------------------------------ firings

    async def fire(self, job: Job, scheduled_ms: int, trigger: str = TRIGGER_SCHEDULE) -> None:
        """Fire `job` for `scheduled_ms`, unless another dispatcher claimed it."""
        if not await self._claims.claim(firing_id(job.id, scheduled_ms), self.dispatcher_id, CLAIM_TTL_MS):
            self._claimed_elsewhere(job, scheduled_ms)
            return
        await self.fire_claimed(job, scheduled_ms, trigger)

    async def claim(self, firings: list[tuple[Job, int]]) -> list[tuple[Job, int]]:
        """Claim firings due together in one call (one Redis round trip per
        chunk, not one per firing); the ones won, each to be started with
        `fire_claimed`. The others are another dispatcher's, as in `fire`.
        With live peers, only this dispatcher's share is claimed now and the
        rest a moment later (dispatcher/claim_share.py): the firings of a
        burst are spread over the dispatchers instead of going to whichever
        asks first."""
        ids = [firing_id(job.id, scheduled_ms) for job, scheduled_ms in firings]
        peers = self.live_dispatchers() if self.live_dispatchers is not None else []
        (mine, mine_ids), (theirs, theirs_ids) = (
            _unzip(part) for part in split_share(list(zip(firings, ids, strict=True)), ids, self.dispatcher_id, peers)
        )
        if theirs and self.hooks.spawn is not None:
            self.hooks.spawn(self._claim_after_grace(theirs, theirs_ids), f"claim-share-{len(theirs)}")
        elif theirs:
            mine, mine_ids = mine + theirs, mine_ids + theirs_ids
        return await self._claim_now(mine, mine_ids)

    async def _claim_now(self, firings: list[tuple[Job, int]], ids: list[str]) -> list[tuple[Job, int]]:
        if not firings:
            return []
        answers = await self._claims.claim_many(ids, self.dispatcher_id, CLAIM_TTL_MS)
        won: list[tuple[Job, int]] = []
        for firing, ours in zip(firings, answers, strict=True):
            if ours:
                won.append(firing)
            else:
                self._claimed_elsewhere(*firing)
        return won

    async def _claim_after_grace(self, firings: list[tuple[Job, int]], ids: list[str]) -> None:
        """Other dispatchers' share: claimed once they have had time to claim
        it; what is still free (a dead or slow peer's) is fired here."""
        await asyncio.sleep(SHARE_GRACE_SECONDS)
        assert self.hooks.spawn is not None
        for job, scheduled_ms in await self._claim_now(firings, ids):
            self.hooks.spawn(self.fire_claimed(job, scheduled_ms), f"fire-{job.id}-{scheduled_ms}")

    def _claimed_elsewhere(self, job: Job, scheduled_ms: int) -> None:
        log.debug("firing %s already claimed elsewhere", firing_id(job.id, scheduled_ms))
        self.metrics.firing(CLAIMED_ELSEWHERE)
        if self.hooks.on_claimed_elsewhere is not None:
            self.hooks.on_claimed_elsewhere(job, scheduled_ms)

    async def fire_claimed(self, job: Job, scheduled_ms: int, trigger: str = TRIGGER_SCHEDULE) -> None:
        """A firing that is ours (claimed, or taken over): overlap policy, then run it."""
        if self._overlap is not None:
            # Its skipped/queued record is a firing's insert too: bounded alike (dispatcher/misfire.py).
            misfires = self.misfires if trigger == TRIGGER_SCHEDULE else None
            deadline = misfires.deadline_ms(scheduled_ms) if misfires is not None else 0
            try:
                if not await self._overlap.admit(job, scheduled_ms, trigger, deadline_ms=deadline):
                    return
            except RecordDroppedError as exc:
                assert misfires is not None  # only bounded inserts are dropped
                misfires.note(job, scheduled_ms, str(exc))
                return
        await self.run_firing(job, scheduled_ms, trigger)

    async def adopt(self, adopted: list[tuple[Job, RunRecord]]) -> None:
        """Carry on with runs recorded by dispatchers that died before any
        executor reported starting them (and whose ownership we just took
        over in the store, see takeover.py). A run an executor already has
        (sent, held for its time, or even finished) is followed there, since
        Run is idempotent by run id; the others are sent as their owner would
        have. Who has which is asked once for the whole batch (one
        ListResults per executor, `ExecutorLink.holders_of`), and every run
        starts in this loop turn, so those bound for one executor go to it
        as one RunBatch on its session: a survivor adopts thousands at once
        when a peer dies in a burst."""
        holders = await self.link.holders_of([run.run_id for _, run in adopted])
        for owner, count in sorted(Counter(run.dispatcher for _, run in adopted).items()):
            followed = sum(1 for _, run in adopted if run.dispatcher == owner and holders[run.run_id])
            log.warning(
                "adopted from dead dispatcher %s: %d run(s), %d followed on the executor that has it, %d sent",
                owner,
                count,
                followed,
                count - followed,
            )
        firings: list[tuple[Coroutine[Any, Any, None], str]] = []
        for job, run in adopted:
            holder = holders[run.run_id]
            log.debug(
                "job %s run %s: adopted from %s (%s)",
                job.name,
                run.run_id,
                run.dispatcher,
                f"following it on {holder}" if holder else "no executor has it: sending it",
            )
            firing = self.run_firing(job, run.scheduled_ms, run.trigger, run.attempt, recorded=True, pin=holder)
            firings.append((firing, f"adopt-{run.run_id}"))
        if self.hooks.spawn is None:
            await asyncio.gather(*(firing for firing, _ in firings))
            return
        for firing, name in firings:
            self.hooks.spawn(firing, name)

    async def run_firing(
        self, job: Job, scheduled_ms: int, trigger: str, first_attempt: int = 1, recorded: bool = False, pin: str = ""
    ) -> None:
        """Attempts from `first_attempt`, then what follows a firing's end
        (`pin`: the first attempt goes to that executor, see `adopt`)."""
        if first_attempt == 1:  # a firing (its retries are not new firings)
            self.metrics.firing(FIRED)
        final = await self.run_attempts(job, scheduled_ms, first_attempt, trigger, recorded, pin)
        if final is None:
            return
        if self.hooks.after_firing is not None:
            try:
                await self.hooks.after_firing(job, final.run_id)
            except Exception as exc:  # noqa: BLE001 - an alerting problem must never break firing
                log.error("job %s: after-firing hook failed: %s", job.name, exc)
        if self._overlap is not None and self.hooks.spawn is not None:
            queued = await self._overlap.next_queued(job)
            if queued is not None:
                log.info("job %s: starting the queued firing %s", job.name, iso_ms(queued.scheduled_ms))
                self.hooks.spawn(
                    self.run_firing(job, queued.scheduled_ms, queued.trigger, 1, recorded=True), f"queued-{queued.run_id}"
                )
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
            candidates = matching_executors(job, self._registry.live(), self._machine_groups, self.link.unhealthy)
            if avoid and len(candidates) > 1:
                candidates = [e for e in candidates if e.address != avoid]
            plan = self._router.plan(job, candidates)
        # A scheduled firing must be recorded within the misfire grace, or it
        # does not run now (dispatcher/misfire.py); retries, catch-up and
        # dependents are late by design.
        misfires = self.misfires if trigger == TRIGGER_SCHEDULE and attempt == 1 and not recorded else None
        if fans_out(job.route_strategy) and plan and not pin:
            return await self._fan_out.attempt(job, scheduled_ms, attempt, trigger, plan, recorded, misfires)
        record = self._records.new(job, scheduled_ms, attempt, trigger)
        if recorded:
            self._recorder.update(record.run_id, dispatcher=self.dispatcher_id)
        else:
            try:
                deadline = misfires.deadline_ms(scheduled_ms) if misfires is not None else 0
                created = await self._recorder.insert(record, deadline_ms=deadline)
            except RecordDroppedError as exc:
                assert misfires is not None  # only bounded inserts are dropped
                misfires.note(job, scheduled_ms, str(exc))
                return None
            if not created:
                # The unique key caught a firing another dispatcher already recorded.
                log.info("run %s already recorded by another dispatcher; not running it again", record.run_id)
                return None
            if misfires is not None and misfires.is_late(scheduled_ms):
                await misfires.recorded_late(job, record)
                return None
        if record.scheduled_ms > now_ms() and not self.hooks.still_scheduled(job.id):
            # Paused or deleted between the claim ahead of time and now.
            reason = f"job {job.name} was paused or deleted before this firing's scheduled time"
            return self.outcomes.ended_unrun(job, record, status.SKIPPED, reason, logging.INFO)
        if not plan:
            reason = f"no executor: none live matches target {job.target or '(any)'!r}"
            return self.outcomes.ended_unrun(job, record, status.FAILED, reason)
        log.info(
            "job %s fired for %s (%s): run %s (attempt %d) on %s",
            job.name,
            iso_ms(scheduled_ms),
            trigger,
            record.run_id,
            attempt,
            plan[0].address,
        )
        return await self._run_on(job, record, plan)

    async def _run_on(self, job: Job, record: RunRecord, plan: list[ExecutorRef]) -> Outcome:
        """`_run_on_plan`, with a run sent ahead of its time known by run id
        until it ends, so that an edit of its job reaches it (`job_edited`)."""
        if record.scheduled_ms <= now_ms():
            return await self._run_on_plan(job, record, plan)
        self._ahead[record.run_id] = _AheadRun(job, record)
        try:
            return await self._run_on_plan(job, record, plan)
        finally:
            self._ahead.pop(record.run_id, None)

    async def _run_on_plan(self, job: Job, record: RunRecord, plan: list[ExecutorRef]) -> Outcome:
        """Run `record` on plan[0]. failover plans list every candidate: the
        next one is tried while they are unreachable. Whatever the strategy, a
        run that provably never started goes to another live executor matching
        the job's target; a broadcast run, meant for that very executor, is
        recorded skipped instead (see README, rolling restarts)."""
        rest = list(plan[1:])
        executor = plan[0]
        tried = {executor.address}
        broadcast = job.route_strategy == "broadcast"
        chosen: list[ExecutorRef] = []

        def elsewhere() -> bool:
            """Is there another executor to send it to? (Remembered in `chosen`.)"""
            chosen[:] = [] if broadcast else self._next_executor(job, rest, tried)
            return bool(chosen) or broadcast

        while True:
            last = not rest
            chosen.clear()
            outcome = await self._invoke(job, record, executor, record_unreachable=last, elsewhere=elsewhere)
            if outcome.not_started:
                if not chosen:
                    if broadcast:
                        reason = f"not run on {executor.address}: {outcome.error} (broadcast runs on the executors that are up)"
                        return self.outcomes.ended_unrun(job, record, status.SKIPPED, reason, executor=executor.address)
                    return self.outcomes.give_up(job, record, executor, False, outcome.error)
                log.warning(
                    "job %s run %s never started there (%s): sending it to %s",
                    job.name,
                    record.run_id,
                    outcome.error,
                    chosen[0].address,
                )
            elif outcome.unreachable and not last:
                chosen[:] = [rest[0]]
                log.warning(
                    "job %s run %s: executor %s unreachable, failing over to %s",
                    job.name,
                    record.run_id,
                    executor.address,
                    chosen[0].address,
                )
            else:
                return outcome
            executor = chosen[0]
            tried.add(executor.address)
            rest = [e for e in rest if e.address not in tried]

    def _next_executor(self, job: Job, rest: list[ExecutorRef], tried: set[str]) -> list[ExecutorRef]:
        """[the executor to send a run to next] ([] if none): the rest of a
        failover plan first, else one the job's strategy picks among the live
        matching executors not tried yet."""
        untried = [e for e in rest if e.address not in tried]
        if untried:
            return untried[:1]
        candidates = matching_executors(job, self._registry.live(), self._machine_groups, self.link.unhealthy)
        return self._router.plan(job, [e for e in candidates if e.address not in tried])[:1]

    def _start_dependents(self, job: Job, scheduled_ms: int, final_status: str) -> None:
        if self.hooks.spawn is None:
            return
        for downstream, when in self.hooks.downstream_of(job.name):
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
            self.hooks.spawn(self.fire(downstream, at, f"after:{job.name}"), f"after-{downstream.id}-{at}")

    # ------------------------------------------------------------ one run

    async def _invoke(
        self,
        job: Job,
        record: RunRecord,
        executor: ExecutorRef,
        record_unreachable: bool = True,
        elsewhere: Callable[[], bool] = lambda: False,
    ) -> Outcome:
        """Run `record` on `executor` until it finishes. When the run provably
        never started there and `elsewhere()` says it can go to another
        executor, a `not_started` outcome is returned instead (unrecorded);
        without one, the executor is retried as for any broken connection
        (dispatcher/executor_link.py)."""
        # A run sent ahead goes on as its job is now (an edit replaced its
        # request on the executor): its outcome is judged by that job.
        ahead = self._ahead.get(record.run_id)
        if ahead is not None:
            job = ahead.job
        request = build_run_request(job, record, self._template(job))
        started = False
        end: LinkEvent | None = None
        self.in_flight[executor.address] += 1
        try:
            async for event in self.link.run(request, executor.address, elsewhere, lambda: self._may_still_start(record)):
                if ahead is not None:
                    job = ahead.job
                if isinstance(event, Started):
                    started = True
                    self.outcomes.started(job, record, executor, event.event)
                else:
                    end = event
            if isinstance(end, Finished):
                return await self.outcomes.finish(job, record, executor, end.result)
            if isinstance(end, NotStarted):
                return not_started(record, executor, end.error)
            if isinstance(end, Refused) and end.invalid:
                return self.outcomes.give_up(job, record, executor, started, end.reason, invalid=True)
            if isinstance(end, Refused):
                if not record_unreachable:
                    return Outcome(status.FAILED, record.run_id, executor.address, unreachable=True)
                return self.outcomes.give_up(job, record, executor, False, end.reason, refused=True)
            assert isinstance(end, Unreachable), end  # the link always ends with one of these
            if not end.started and not record_unreachable:
                return Outcome(status.FAILED, record.run_id, executor.address, unreachable=True)
            return self.outcomes.give_up(job, record, executor, end.started, end.reason)
        finally:
            self.outcomes.unfollowed(record.run_id)
            self.in_flight[executor.address] -= 1

    def _may_still_start(self, record: RunRecord) -> bool:
        """Whether a run that never started is still within its misfire grace."""
        return self.misfires is not None and now_ms() < self.misfires.deadline_ms(record.scheduled_ms)

    def job_unscheduled(self, job_id: int, reason: str) -> None:
        """The job was paused, deleted or made invalid: cancel its firings
        sent ahead, and forget its request template."""
        self._templates.pop(job_id, None)
        self.link.cancel_sent_ahead(job_id, reason)

    def job_edited(self, job: Job, fires_at: Callable[[int], bool]) -> None:
        """The job was edited and is still scheduled: each of its firings
        sent ahead and not started goes on as the job is now (its request
        replaced on its executor), or, when `fires_at` (the new schedule)
        no longer has its instant, is cancelled as for a pause."""
        for run_id, sent in self.link.sent_ahead(job.id).items():
            ahead = self._ahead.get(run_id)
            if ahead is None:
                continue
            if not fires_at(ahead.record.scheduled_ms):
                when = iso_ms(ahead.record.scheduled_ms)
                self.link.cancel_one_ahead(job.id, run_id, f"job {job.name} was edited: its schedule no longer fires at {when}")
                continue
            request = build_run_request(job, ahead.record, self._template(job))
            latest = sent.wanted[0] if sent.wanted is not None else sent.request
            if request != latest:
                self.link.replace_sent_ahead(request, functools.partial(_now_as, ahead, job))

    def _template(self, job: Job) -> bytes | None:
        cached = self._templates.get(job.id)
        if cached is None or cached[0] is not job:
            cached = self._templates[job.id] = (job, request_template(job))
        return cached[1]


def _unzip(pairs: list[tuple[tuple[Job, int], str]]) -> tuple[list[tuple[Job, int]], list[str]]:
    return [firing for firing, _ in pairs], [fid for _, fid in pairs]
