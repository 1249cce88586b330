"""Settles runs left pending/running by a dispatcher that is gone.

The executor keeps every finished result in its journal until a dispatcher
acknowledges it, so a dispatcher killed mid-run loses nothing: we ask the
executors about its runs and record the real outcome. A run no executor
knows about, after a grace period, is marked lost and retried per its job's
policy by a live dispatcher.

`lost` is only for a run no live executor knows: results are read page by
page (one reply for hundreds of large output tails would exceed the gRPC
message limit, and such a failed reply must not make a live executor look
dead), and while an executor answers with an error other than UNAVAILABLE
it may still hold the run, so no run is settled as lost meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import grpc

from crontrio.common import status
from crontrio.common.clock import now_ms
from crontrio.common.config import TlsConfig
from crontrio.common.grpc_channel import make_channel
from crontrio.common.model import RunRecord, iso_ms
from crontrio.common.registry.base import Registry
from crontrio.common.store.async_store import AsyncStore
from crontrio.monitor.dispatcher_links import DispatcherLinks
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
MAX_ACTIVE_SCANNED = 5000
NEVER_STARTED_GRACE_MS = 3000


@dataclass
class _ExecutorAnswers:
    results: dict[str, pb.RunFinished] = field(default_factory=dict)  # run_id -> result, and who holds it
    holder: dict[str, str] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)
    unreachable: set[str] = field(default_factory=set)
    # Answered, but with an error: alive, and may hold any of the runs.
    unsure: set[str] = field(default_factory=set)


class Reconciler:
    def __init__(
        self,
        store: AsyncStore,
        links: DispatcherLinks,
        registry: Registry,
        lost_after_seconds: float = 30.0,
        *,
        tls: TlsConfig | None = None,  # set: executors are called over mutual TLS
        cluster_secret: str | None = None,  # sent on every call (common/cluster.py)
    ) -> None:
        self._tls = tls
        self._cluster_secret = cluster_secret
        self._store = store
        self._links = links
        self._registry = registry
        self._lost_after_ms = int(lost_after_seconds * 1000)
        self._stubs: dict[str, pb_grpc.ExecutorStub] = {}
        self._unsure_logged: set[str] = set()  # said once per episode, not every pass
        self.settled = 0

    def _stub(self, address: str) -> pb_grpc.ExecutorStub:
        stub = self._stubs.get(address)
        if stub is None:
            channel = make_channel(address, self._tls, client_cert=True, cluster_secret=self._cluster_secret)
            stub = self._stubs[address] = pb_grpc.ExecutorStub(channel)
        return stub

    async def run(self, interval_seconds: float) -> None:
        while True:
            try:
                await self.pass_once()
            except Exception as exc:  # noqa: BLE001 - keep reconciling after a DB or network hiccup
                log.warning("reconciliation pass failed (will retry): %s", exc)
            await asyncio.sleep(interval_seconds)

    async def orphans(self) -> list[RunRecord]:
        live = self._links.live_ids()
        if live is None:
            return []
        # Filtered by the database: a burst leaves thousands of runs active,
        # nearly all followed by a live dispatcher.
        return await self._store.active_runs_not_of(sorted(live), MAX_ACTIVE_SCANNED)

    async def pass_once(self) -> int:
        orphans = await self.orphans()
        if not orphans:
            return 0
        # Ask every executor: a dispatcher killed mid-run may not have
        # recorded which executor took the run (its writes are batched).
        addresses = {e.address for e in self._registry.live()} | {r.executor for r in orphans if r.executor}
        answers = await self._ask(sorted(addresses), [r.run_id for r in orphans])
        settled = 0
        acks: dict[str, list[str]] = {}
        for run in orphans:
            settled += await self._settle(run, answers, acks)
        # One Ack per executor, after the results are recorded.
        for address, run_ids in acks.items():
            await self._ack(address, run_ids)
        self.settled += settled
        return settled

    async def _ask(self, addresses: list[str], run_ids: list[str]) -> _ExecutorAnswers:
        answers = _ExecutorAnswers()

        async def ask(address: str) -> None:
            token = ""
            try:
                while True:
                    request = pb.ListResultsRequest(run_ids=run_ids, page_token=token)
                    reply = await self._stub(address).ListResults(request, timeout=5)
                    for result in reply.results:
                        # A run can be on two executors only when one never started it
                        # and it went to the other (dispatcher/firing.py _run_on): the
                        # first holds a `not_started` result, or a `lost` one if it died
                        # holding it. Those never settle a run another one knows.
                        if result.status == status.NOT_STARTED:
                            continue
                        known = answers.results.get(result.run_id)
                        if known is not None and known.status != status.LOST:
                            continue
                        answers.results[result.run_id] = result
                        answers.holder[result.run_id] = address
                    answers.running.update(reply.running_run_ids)
                    if not reply.next_page_token:
                        break
                    token = reply.next_page_token
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    answers.unreachable.add(address)
                    log.debug("executor %s did not answer ListResults: %s", address, exc.details())
                    return
                answers.unsure.add(address)
                if address not in self._unsure_logged:
                    self._unsure_logged.add(address)
                    log.warning(
                        "executor %s answered ListResults with %s: %s; no orphaned run is marked lost until it answers",
                        address,
                        exc.code().name,
                        exc.details(),
                    )
                return
            if address in self._unsure_logged:
                self._unsure_logged.discard(address)
                log.info("executor %s answers ListResults again", address)

        await asyncio.gather(*(ask(a) for a in addresses))
        return answers

    async def _settle(self, run: RunRecord, answers: _ExecutorAnswers, acks: dict[str, list[str]]) -> int:
        if run.run_id in answers.running:
            return 0  # still going on its executor; collected once it finishes
        result = answers.results.get(run.run_id)
        if result is not None:
            fields = {
                "status": result.status,
                "exit_code": result.exit_code,
                "started_ms": result.started_ms,
                "finished_ms": result.finished_ms,
                "output": result.output_tail,
                "output_truncated": result.output_truncated,
                "error": result.error,
                "pid": result.pid,
                "host": result.host,
                "executor": result.executor,
            }
            if run.overrun_ms:  # timeout_action alert: noted in the end record, as its dispatcher would have
                note = f"overran its timeout (reported {iso_ms(run.overrun_ms)}; timeout_action alert, not killed)"
                fields["error"] = (result.error + "; " if result.error else "") + note
            recorded = await self._store.finish_run_if_active(run.run_id, fields, run.dispatcher)
            if recorded:
                log.warning(
                    "run %s of job %s: its dispatcher %s is gone; collected the result from executor %s: %s",
                    run.run_id,
                    run.job_name,
                    run.dispatcher,
                    answers.holder[run.run_id],
                    result.status,
                )
            # Acknowledged only once recorded durably by someone: by us, or
            # already final. A run a live dispatcher adopted meanwhile is still
            # active under its new owner, who collects and acknowledges it; an
            # ack from here would make the executor refuse the adopter's Run
            # ("already acknowledged") and the run end recorded failed.
            if recorded or not await self._still_active(run.run_id):
                acks.setdefault(answers.holder[run.run_id], []).append(run.run_id)
            if result.status in status.RETRYABLE:
                await self._retry(run.run_id)
            return 1
        if answers.unsure:
            return 0  # a live executor could not say whether it has it: never lost on a maybe
        waited_ms = now_ms() - max(run.updated_ms, run.created_ms)
        # Every executor answered and none has it: the dispatcher died before
        # handing it over (a short grace covers a request still in flight).
        never_started = not answers.unreachable and not run.started_ms
        if waited_ms < (NEVER_STARTED_GRACE_MS if never_started else self._lost_after_ms):
            return 0  # an executor may be briefly unreachable; give it time
        if never_started:
            error = f"never started: dispatcher {run.dispatcher} died before an executor took it"
        else:
            where = f"executor {run.executor}" if run.executor else "any executor"
            why = "unreachable" if run.executor in answers.unreachable else "has no record of it"
            error = f"executor lost: dispatcher {run.dispatcher} is gone and {where} {why}"
        fields = {"status": status.LOST, "error": error, "finished_ms": now_ms()}
        # Only while its dead dispatcher still owns it: a live one may have
        # adopted it (dispatcher/takeover.py) and be running it now.
        if await self._store.finish_run_if_active(run.run_id, fields, run.dispatcher):
            log.warning("run %s of job %s marked lost: %s", run.run_id, run.job_name, error)
            await self._retry(run.run_id, never_started)
        return 1

    async def _still_active(self, run_id: str) -> bool:
        row = await self._store.get_run(run_id)
        return row is not None and row.status in status.ACTIVE

    async def _ack(self, address: str, run_ids: list[str]) -> None:
        try:
            await self._stub(address).Ack(pb.AckRequest(run_ids=run_ids), timeout=5)
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "ack of %d run(s) (%s...) to executor %s failed (they will be collected again): %s",
                len(run_ids),
                run_ids[0],
                address,
                exc.details(),
            )

    async def _retry(self, run_id: str, never_started: bool = False) -> None:
        request = pb.RetryRunRequest(run_id=run_id, never_started=never_started)
        for address in self._links.live_addresses():
            try:
                reply = await self._links.stub(address).RetryRun(request, timeout=5)
            except grpc.aio.AioRpcError as exc:
                log.debug("dispatcher %s could not take the retry of %s: %s", address, run_id, exc.details())
                continue
            if not reply.retrying:
                log.info("run %s not retried: %s", run_id, reply.reason)
            return
        log.warning("no live dispatcher to retry run %s", run_id)
