"""The runs of this executor: their lifecycle, and the rules that make a
repeated Run harmless (docs/ARCHITECTURE.md, "The life of a firing", step 8).

Run is idempotent by run_id:

* a run already finished and still in the journal is replayed (only its
  RunFinished; nothing runs again);
* a run still going is attached to (RunStarted, the tail so far, then live
  output and RunFinished);
* a run already finished and acknowledged (within the journal's memory of
  acknowledgements) is refused: a delayed duplicate request must not run a
  job again;
* a run whose result (or acknowledgement) the journal could not take is
  guarded in memory (``_unjournaled``, ``_acked_in_memory``) the same way;
* anything else starts, once its start is journaled; a start that cannot be
  journaled is refused (NotJournaledError), never run.

Attach follows a run the same way but never starts one: it attaches to a
running run, replays a journaled result (a crash-recovered ``lost`` one
included), and raises RunNotFoundError for anything else.

The start of every run is journaled before its process is spawned (or its
request sent). A run journaled as started but not finished when the executor
starts died with the previous executor process: ``recover`` turns it into a
``lost`` result (executor/recovery.py), which a Run for it then replays
instead of running the task a second time.

A run belongs to the executor, not to the RPC that started it: a caller that
disconnects does not stop it, and its result lands in the journal before any
caller sees RunFinished.

Elsewhere: why a Run is refused (the errors, and the check of a request) in
executor/refusals.py; a run and its followers in executor/run_handle.py; the shell and
HTTP drivers in executor/task_drivers.py; runs sent ahead and held until
their instant in executor/held_runs.py; ListResults pages in
executor/results_page.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence

from crontrio import __version__
from crontrio.common import status
from crontrio.common.clock import now_ms
from crontrio.common.config import ExecutorConfig
from crontrio.common.errors import ValidationError
from crontrio.executor.held_runs import (
    Instants,
    cancel_held,
    hand_back_held,
    hold_ms,
    replace_held,
    unstarted_result,
    wait_until_due,
)
from crontrio.executor.http_task import HttpClients
from crontrio.executor.journal import Journal, Lookup, StartedRun
from crontrio.executor.journal_health import describe_failure
from crontrio.executor.metrics import ExecutorMetrics
from crontrio.executor.recovery import end_orphans, lost_result
from crontrio.executor.refusals import (
    AlreadyAcknowledgedError,
    DrainingError,
    NotJournaledError,
    RunNotFoundError,
    validate_request,
)
from crontrio.executor.results_page import read_page
from crontrio.executor.run_handle import RunHandle
from crontrio.executor.run_id_lock import RunIdLock
from crontrio.executor.task_drivers import TaskEnd, drive_http, drive_shell
from crontrio.executor.task_env import baseline_environment
from crontrio.protos import crontrio_pb2

log = logging.getLogger(__name__)


class RunTable:
    """Every run of this executor: the running ones in memory, the finished
    ones in the journal until acknowledged."""

    def __init__(
        self,
        cfg: ExecutorConfig,
        journal: Journal,
        http: HttpClients,
        *,
        host: str,
        address: str,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.journal = journal
        self.http = http
        self.host = host
        self.address = address  # advertised: what dispatchers dial
        self.started_ms = now_ms()
        # A clean baseline, never the executor's own environment (its secrets).
        self._base_env = baseline_environment(os.environ if base_env is None else base_env, cfg.inherit_env)
        self._running: dict[str, RunHandle] = {}
        # Results the journal could not store (a full disk), kept until
        # acknowledged: with _running, they make sure a run this process
        # started is never started again while the journal does not know it.
        self._unjournaled: dict[str, crontrio_pb2.RunFinished] = {}
        # Of those, the acknowledged ones whose acknowledgement could not be
        # journaled either: a late duplicate Run for them is refused.
        self._acked_in_memory: dict[str, int] = {}  # run_id -> acked_ms
        self._accepting = True
        # run_id -> (lock, users): one Run or Attach decision at a time per
        # run_id, so two identical requests never both start it.
        self._deciding: dict[str, tuple[asyncio.Lock, int]] = {}
        # Runs sent ahead wait on one timer per scheduled instant (held_runs.py).
        self._instants = Instants()
        self.metrics = ExecutorMetrics()  # see executor/metrics.py
        self.metrics.watch(lambda: len(self._running), self.unacked_count)

    # -- Run ---------------------------------------------------------------------

    async def run(self, request: crontrio_pb2.RunRequest) -> AsyncIterator[crontrio_pb2.RunEvent]:
        """Replay, attach to or start ``request``'s run; returns its events.

        Raises ValidationError for a bad request, AlreadyAcknowledgedError
        for a run whose result was already acknowledged, DrainingError
        when a new run would have to start during shutdown, and
        NotJournaledError when its start cannot be journaled.
        """
        return _events_of(await self.decide(request))

    async def decide(self, request: crontrio_pb2.RunRequest) -> RunHandle | crontrio_pb2.RunFinished:
        """``run`` without the event stream: the handle of the run it
        attached to or started, or the result it replays. A follower that
        wants only the milestones watches the handle (RunHandle.watch), with
        no task and no queue of its own. Raises as ``run``."""
        validate_request(request)
        async with self._deciding_on(request.run_id):
            try:
                return await self._existing_or_start(request)
            except AlreadyAcknowledgedError as exc:
                log.warning("run %s: refusing to run it again, its result was acknowledged at %d", exc.run_id, exc.acked_ms)
                raise

    async def attach(self, run_id: str) -> AsyncIterator[crontrio_pb2.RunEvent]:
        """Follow ``run_id`` without ever starting it: the events of the
        running run (RunStarted, the output so far, live output, RunFinished)
        or the replay of its journaled result.

        Raises ValidationError for an empty id and RunNotFoundError when the
        run is neither running nor journaled (never seen, or acknowledged).
        """
        if not run_id:
            raise ValidationError("run_id", "required")
        # The same lock as Run: a concurrent Run cannot start the run between
        # our look at the running runs and our look at the journal.
        async with self._deciding_on(run_id):
            try:
                existing = await self._existing(run_id)
            except AlreadyAcknowledgedError as exc:
                log.info("run %s: nothing to attach to, its result was acknowledged at %d", run_id, exc.acked_ms)
                raise RunNotFoundError(run_id, "already finished and its result was acknowledged") from None
        if existing is None:
            raise RunNotFoundError(run_id)
        return _events_of(existing)

    def _deciding_on(self, run_id: str) -> RunIdLock:
        """One Run/Attach decision at a time per run_id, so that two
        identical requests never both start it."""
        return RunIdLock(self._deciding, run_id)

    async def _existing(self, run_id: str) -> RunHandle | crontrio_pb2.RunFinished | None:
        """A run this executor already knows: its handle when running (to
        attach to), its journaled result (to replay), or None when it was never
        started here. Raises AlreadyAcknowledgedError for an acknowledged run.
        Call holding ``_deciding_on(run_id)``."""
        handle = self._running.get(run_id)
        if handle is not None:
            log.info("run %s: attaching a caller to the running run", run_id)
            return handle
        kept = self._unjournaled.get(run_id)
        if kept is not None:
            log.info("run %s: replaying its result kept in memory (%s)", run_id, kept.status)
            return kept
        if run_id in self._acked_in_memory:
            raise AlreadyAcknowledgedError(run_id, self._acked_in_memory[run_id])
        # A finished run leaves _running only after its journal write, so a
        # run not running now is either journaled or can only be started by a
        # Run for this id, which waits for our lock.
        return await self._journaled(run_id, await self.journal.lookup(run_id))

    async def _existing_or_start(self, request: crontrio_pb2.RunRequest) -> RunHandle | crontrio_pb2.RunFinished:
        """``_existing``, else start the run. Call holding ``_deciding_on``."""
        run_id = request.run_id
        if run_id in self._running or run_id in self._unjournaled or run_id in self._acked_in_memory or not self._accepting:
            # Attaches and replays go on while draining; nothing new starts.
            existing = await self._existing(run_id)
            if existing is None:
                raise DrainingError("executor is shutting down; not starting new runs")
            return existing
        now = now_ms()
        hold = hold_ms(request, now)
        # A held run's start record says when it will start.
        started_ms = now + hold
        try:
            # Done on arrival, also for a run that is then held: the journal
            # write of a burst sent ahead is off the scheduled instant, and a
            # held run is known here (listed, killable, never started twice).
            # The lookup and, for an unknown run, the durable start record:
            # one journal call (see _existing on why nothing else can start it).
            known = await self.journal.begin_if_new(self._started_record(request, started_ms))
        except Exception as exc:  # noqa: BLE001 - decided on below
            # Whether the run is known is not known now: look again. A run
            # unknown here (or that cannot be looked up) must not start
            # without a durable start record: a crash, then a Run for it,
            # would start it a second time. Refused, it can go elsewhere.
            cause = describe_failure(exc, self.journal.path)
            try:
                known = await self.journal.lookup(run_id)
            except Exception:  # noqa: BLE001 - refused below, the cause is logged by the journal
                known = Lookup()
            result = await self._journaled(run_id, known)
            if result is not None:
                return result
            log.info(
                "run %s (%s attempt %d) refused: its start could not be journaled (journal error logged once)",
                run_id,
                request.job_name,
                request.attempt,
            )
            raise NotJournaledError(run_id, cause) from None
        if known is not None and known.result is not None and known.result.status == status.NOT_STARTED:
            # Handed back unstarted by a drain (of this process or an earlier
            # one) and sent here again by a dispatcher with nowhere else to
            # send it: it never ran here, so it may start now, once its start
            # is durable (as for any run).
            log.info("run %s: handed back earlier without running; starting it now", run_id)
            known = None
            try:
                await self.journal.begin(self._started_record(request, started_ms))
            except Exception as exc:  # noqa: BLE001 - as for a failed begin_if_new: it must not run
                log.info(
                    "run %s (%s attempt %d) refused: its start could not be journaled", run_id, request.job_name, request.attempt
                )
                raise NotJournaledError(run_id, describe_failure(exc, self.journal.path)) from None
        if known is not None:
            result = await self._journaled(run_id, known)
            if result is not None:
                return result
        return self._start(request, started_ms, hold)

    async def _journaled(self, run_id: str, known: Lookup) -> crontrio_pb2.RunFinished | None:
        """The result the journal knows of a run that is not running (to replay),
        or None when it knows nothing. Raises AlreadyAcknowledgedError for an
        acknowledged run."""
        if known.result is not None:
            log.info("run %s: replaying its journaled result (%s)", run_id, known.result.status)
            return known.result
        if known.acked_ms:
            raise AlreadyAcknowledgedError(run_id, known.acked_ms)
        if known.started is not None:
            # Journaled as started, yet not running: it died with an earlier
            # executor process (recover() before serving should have caught
            # it) or its result could not be journaled. Never run it again.
            (result,) = await self._record_lost([known.started])
            return result
        return None

    def _start(self, request: crontrio_pb2.RunRequest, started_ms: int, hold: int) -> RunHandle:
        handle = RunHandle(request, request.output_limit_bytes or self.cfg.output_limit_bytes)
        self._running[request.run_id] = handle
        # Held from now, not from when its task first runs: a cancel or a
        # hand-back in between must find it held.
        handle.held = bool(hold)
        if hold and request.WhichOneof("task") == "http":
            self.http.warmer.expect(request.http, request.scheduled_ms)
        work = self._execute(handle, started_ms, hold)
        handle.task = asyncio.create_task(work, name=f"run {request.run_id}")
        return handle

    async def _execute(self, handle: RunHandle, started_ms: int, hold: int) -> None:
        if hold:
            if not await wait_until_due(handle, self._instants):
                await self._end_unstarted(handle)
                return
            started_ms = now_ms()  # the real start; the journal has the planned one
        req = handle.request  # read after the hold: an edit of its job may have replaced it
        clock = time.monotonic()
        try:
            if req.WhichOneof("task") == "shell":
                outcome = await drive_shell(
                    handle,
                    started_ms,
                    started=self._started,
                    base_env=self._base_env,
                    kill_grace_seconds=self.cfg.kill_grace_seconds,
                    journal=self.journal,
                )
            else:
                outcome = await drive_http(handle, started_ms, started=self._started, clients=self.http)
        except Exception as exc:
            # A bug here must still end the run with a result, not a hang.
            log.exception("run %s: executor error", req.run_id)
            outcome = TaskEnd(status.FAILED, 0, f"executor error: {exc}")
        if handle.started is None:
            handle.publish_started(self._started(req, 0, started_ms))
        finished = crontrio_pb2.RunFinished(
            run_id=req.run_id,
            status=outcome.status,
            exit_code=outcome.exit_code,
            started_ms=started_ms,
            finished_ms=now_ms(),
            output_tail=handle.tail.snapshot(),
            output_truncated=handle.tail.truncated,
            error=outcome.error,
            pid=outcome.pid,
            host=self.host,
            executor=self.address,
            matched_keyword=handle.keywords.matched if handle.keywords is not None else "",
        )
        await self._journal_result(finished)
        handle.publish_finished(finished)
        del self._running[req.run_id]
        log.info(
            "run %s finished %s exit %d in %.2fs%s%s",
            req.run_id,
            outcome.status,
            outcome.exit_code,
            time.monotonic() - clock,
            f" ({outcome.error})" if outcome.error else "",
            f", output contains keyword {finished.matched_keyword!r}" if finished.matched_keyword else "",
        )

    async def _end_unstarted(self, handle: RunHandle) -> None:
        """The result of a held run stopped before its task started: nothing ran."""
        req = handle.request
        handle.stopped_running()
        finished = unstarted_result(handle, finished_ms=now_ms(), host=self.host, address=self.address)
        await self._journal_result(finished)
        handle.publish_started(self._started(req, 0, 0))
        handle.publish_finished(finished)
        del self._running[req.run_id]
        log.info("run %s %s before its scheduled start: %s", req.run_id, finished.status, handle.stop_error)

    async def _journal_result(self, finished: crontrio_pb2.RunFinished) -> None:
        """Journal a result; when the journal cannot take it, keep it in
        memory until acknowledged (replayed, listed and guarded from a second
        start as if journaled, but lost if this process dies)."""
        self.metrics.finished(finished)
        try:
            await self.journal.put(finished)
        except Exception:  # noqa: BLE001 - the journal logs the cause once
            self._unjournaled[finished.run_id] = finished
            log.warning(
                "run %s: its result (%s) could not be journaled (journal error logged once); kept in memory until acknowledged",
                finished.run_id,
                finished.status,
            )

    def _started(self, req: crontrio_pb2.RunRequest, pid: int, started_ms: int) -> crontrio_pb2.RunStarted:
        return crontrio_pb2.RunStarted(run_id=req.run_id, pid=pid, host=self.host, executor=self.address, started_ms=started_ms)

    def _started_record(self, req: crontrio_pb2.RunRequest, started_ms: int) -> StartedRun:
        return StartedRun(
            run_id=req.run_id,
            started_ms=started_ms,
            host=self.host,
            executor=self.address,
            task=str(req.WhichOneof("task")),
            job_id=req.job_id,
            job_name=req.job_name,
            scheduled_ms=req.scheduled_ms,
            attempt=req.attempt,
        )

    # -- the other RPCs -------------------------------------------------------------

    def kill(self, run_id: str, error: str = "killed on request") -> bool:
        """Kill a running run (or one held for its scheduled time); False
        when it is not running here."""
        handle = self._running.get(run_id)
        if handle is None or not handle.request_stop(status.KILLED, error):
            return False
        log.info("run %s: kill requested (%s)", run_id, error)
        return True

    def cancel_held(self, run_id: str, reason: str) -> bool:
        """Cancel a run sent ahead that has not started yet (executor/held_runs.py)."""
        return cancel_held(self._running, run_id, reason)

    async def replace_held(self, request: crontrio_pb2.RunRequest) -> bool:
        """Its job was edited: a run held for its instant goes on with
        ``request`` (executor/held_runs.py); False when it is not held here.
        Raises ValidationError for a bad request or another run's."""
        validate_request(request)
        if not replace_held(self._running, request, self.cfg.output_limit_bytes):
            return False
        try:
            # The start record says what kind of task it is (recovery looks
            # for a shell run's processes) and whose run it is.
            await self.journal.restate(self._started_record(request, 0))
        except Exception:  # noqa: BLE001 - the journal logs the cause once; the record only describes the run
            log.warning("run %s: its replaced request could not be journaled (journal error logged once)", request.run_id)
        return True

    def hand_back_held(self, reason: str) -> int:
        """Shutting down: hand back every run held for its scheduled time
        (executor/held_runs.py); returns how many."""
        return hand_back_held(self._running, reason)

    async def ack(self, run_ids: Iterable[str]) -> int:
        """The dispatcher recorded these results; forget them (remembering
        only that they were acknowledged)."""
        ids = list(dict.fromkeys(run_ids))
        acked_ms = now_ms()
        in_memory = [run_id for run_id in ids if self._unjournaled.pop(run_id, None) is not None]
        if in_memory:
            try:
                await self.journal.ack_unfinished(in_memory, acked_ms)
            except Exception:  # noqa: BLE001 - the journal logs the cause once
                # Their start records stay: a Run for one after a restart
                # replays it as lost, never runs it again.
                self._acked_in_memory.update(dict.fromkeys(in_memory, acked_ms))
        return len(in_memory) + await self.journal.ack(ids, acked_ms)

    async def list_results(
        self, run_ids: Sequence[str] = (), token: str = "", max_bytes: int = 0
    ) -> tuple[list[crontrio_pb2.RunFinished], list[str], str]:
        """One page of unacknowledged results (all, or of ``run_ids``) in
        (finished_ms, run_id) order from ``token`` on, at most ``max_bytes``
        (executor/results_page.py LIST_RESULTS_PAGE_BYTES at most) but at least one result; the ids
        still running; the token of the next page, "" after the last.

        A run that finishes while a caller pages is listed as running on the
        pages before and as a result on a later one (it sorts after every
        result already there), so a caller that reads every page misses none.
        """
        wanted = set(run_ids)
        running = [run_id for run_id in self._running if not wanted or run_id in wanted]
        results, next_token = await read_page(self.journal, self._unjournaled, run_ids, token, max_bytes)
        return results, running, next_token

    async def unacked_count(self) -> int:
        """Finished results not acknowledged yet, journaled or kept in memory."""
        return await self.journal.count() + len(self._unjournaled)

    async def status(self) -> crontrio_pb2.ExecutorStatus:
        return crontrio_pb2.ExecutorStatus(
            address=self.address,
            host=self.host,
            group=self.cfg.group,
            running=len(self._running),
            unacknowledged=await self.unacked_count(),
            version=__version__,
            started_ms=self.started_ms,
        )

    # -- after a crash -------------------------------------------------------------------

    async def recover(self) -> int:
        """Turn every run journaled as started but not finished into a
        ``lost`` result; returns how many there were.

        Such a run died with the previous executor process (kill -9, OOM,
        reboot). Its process group may have outlived it: it is killed when
        it provably belongs to the run (the CRONTRIO_RUN_ID in its
        environment), and left alone otherwise. Call before serving.
        """
        # Runs of this process are journaled as started too; skip them.
        interrupted = [run for run in await self.journal.unfinished() if run.run_id not in self._running]
        await self._record_lost(interrupted)
        return len(interrupted)

    async def _record_lost(self, interrupted: list[StartedRun]) -> list[crontrio_pb2.RunFinished]:
        """Kill what is left of these runs and journal them as lost."""
        results = []
        notes = await end_orphans(interrupted, self.cfg.kill_grace_seconds)
        for run, note in zip(interrupted, notes, strict=True):
            result = lost_result(run, note, finished_ms=now_ms(), host=self.host, address=self.address)
            await self._journal_result(result)
            results.append(result)
            log.warning(
                "run %s (%s attempt %d, started %d by executor %s) died with the previous executor process: recorded as lost%s",
                run.run_id,
                run.job_name,
                run.attempt,
                run.started_ms,
                run.executor,
                f" ({note})" if note else "",
            )
        return results

    # -- shutdown ---------------------------------------------------------------------

    @property
    def running_count(self) -> int:
        return len(self._running)

    @property
    def unjournaled_count(self) -> int:
        """Unacknowledged results kept only in memory (the journal could not take them)."""
        return len(self._unjournaled)

    def stop_accepting(self) -> None:
        """Refuse new runs from now on (replays and attaches still work)."""
        self._accepting = False

    async def wait_idle(self, within: float) -> bool:
        """Wait up to ``within`` seconds for every running run to finish; True if none is left."""
        tasks = [h.task for h in self._running.values() if h.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=within)
        return not self._running

    def kill_all(self, error: str) -> int:
        """Kill every running run; returns how many were told to stop."""
        return sum(self.kill(run_id, error) for run_id in list(self._running))


def _events_of(decided: RunHandle | crontrio_pb2.RunFinished) -> AsyncIterator[crontrio_pb2.RunEvent]:
    """A caller's events: all of a run's (attached or started), or the one
    RunFinished of a replay."""
    if isinstance(decided, RunHandle):
        return decided.events()
    return _single(crontrio_pb2.RunEvent(finished=decided))


async def _single(event: crontrio_pb2.RunEvent) -> AsyncIterator[crontrio_pb2.RunEvent]:
    yield event
