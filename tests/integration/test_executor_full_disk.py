"""The executor with a journal it cannot write (a full disk), as a real process.

The process runs under a file size limit (RLIMIT_FSIZE, what `ulimit -f`
sets), which makes SQLite's writes fail with EFBIG once the journal's WAL
reaches it, as a full disk would with ENOSPC. Python ignores SIGXFSZ, so the
writes fail instead of the process being killed. Its log goes to a pipe, which
the limit does not apply to.

What must hold: every run gets exactly one outcome, a run whose start was not
journaled never runs, the same run id never runs twice, results that could
not be journaled still reach the caller, and the cause is logged once.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from crontrio.common import status
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc
from testing_support.services import REPO, cluster_channel, cluster_secret, free_port, is_serving, wait_for, write_conf

# Room for the journal's schema and a few dozen runs, then no more.
FILE_SIZE_LIMIT = 160 * 1024
# Output per run, kept in its result: results fill the journal faster than starts.
OUTPUT_BYTES = 6000
BURST = 40


@dataclass
class LimitedExecutor:
    address: str
    proc: subprocess.Popen[bytes]
    lines: list[str] = field(default_factory=list)

    def log(self) -> str:
        return "".join(self.lines)


def _limit_file_size() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


@pytest.fixture
def executor(tmp_path: Path) -> Iterator[LimitedExecutor]:
    address = f"127.0.0.1:{free_port()}"
    conf = write_conf(
        tmp_path,
        {
            "executor": {"listen": address, "journal": str(tmp_path / "journal.db"), "kill_grace_seconds": "1"},
            "log": {"level": "INFO"},
        },
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "crontrio.executor", "-c", str(conf)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=_limit_file_size,
    )
    ex = LimitedExecutor(address, proc)
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=_read_lines, args=(stdout, ex.lines), daemon=True)
    reader.start()
    try:
        wait_for(lambda: proc.poll() is None and is_serving(address), 60, f"executor on {address} to serve")
    except AssertionError:
        proc.kill()
        proc.wait(5)
        reader.join(5)
        raise AssertionError(f"executor did not start; its log:\n{ex.log()}") from None
    yield ex
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    reader.join(5)
    print(ex.log())  # shown by pytest when the test failed
    assert proc.returncode == 0, f"executor exited {proc.returncode}"


def _read_lines(stream: object, lines: list[str]) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        lines.append(raw.decode(errors="replace"))


@dataclass
class Outcome:
    """What one Run call gave: its events, or the error it ended with."""

    events: list[pb.RunEvent]
    code: grpc.StatusCode | None = None
    details: str = ""


def request(marks: Path, run_id: str) -> pb.RunRequest:
    command = f"echo ran >> {marks / run_id}; head -c {OUTPUT_BYTES} /dev/zero | tr '\\0' x"
    return pb.RunRequest(run_id=run_id, job_id=1, job_name="full-disk", attempt=1, shell=pb.ShellTask(command=command))


async def call_run(stub: crontrio_pb2_grpc.ExecutorStub, req: pb.RunRequest) -> Outcome:
    events: list[pb.RunEvent] = []
    try:
        async for event in stub.Run(req, timeout=60):
            events.append(event)
    except grpc.aio.AioRpcError as exc:
        return Outcome(events, exc.code(), exc.details() or "")
    return Outcome(events)


def check_one_outcome(run_id: str, outcome: Outcome, marks: Path) -> str:
    """Exactly one outcome, consistent with what ran; 'refused' or the status."""
    finished = [e.finished for e in outcome.events if e.HasField("finished")]
    ran = (marks / run_id).read_text().splitlines() if (marks / run_id).exists() else []
    if outcome.code is not None:
        assert not finished, (run_id, outcome)
        assert outcome.code == grpc.StatusCode.RESOURCE_EXHAUSTED, (run_id, outcome.code, outcome.details)
        assert f"run {run_id} not started: this executor cannot journal it" in outcome.details, outcome.details
        assert not outcome.events, (run_id, outcome.events)
        assert ran == [], f"run {run_id} was refused, yet it ran"
        return "refused"
    assert len(finished) == 1 and outcome.events[-1].HasField("finished"), (run_id, outcome.events)
    result = finished[0]
    assert result.run_id == run_id
    assert result.status == status.SUCCEEDED and result.exit_code == 0, result
    assert result.output_tail == b"x" * OUTPUT_BYTES
    assert ran == ["ran"], f"run {run_id} reported success but ran {len(ran)} times"
    return result.status


async def test_a_full_journal_refuses_starts_never_runs_twice_and_logs_the_cause_once(
    executor: LimitedExecutor, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    async with cluster_channel(executor.address, cluster_secret(tmp_path)) as channel:
        stub = crontrio_pb2_grpc.ExecutorStub(channel)
        first: dict[str, Outcome] = {}
        # Bursts until the journal is full and starts are refused.
        for _ in range(8):
            ids = [f"1-{uuid.uuid4().hex[:12]}-1" for _ in range(BURST)]
            outcomes = await asyncio.gather(*(call_run(stub, request(marks, i)) for i in ids))
            first.update(zip(ids, outcomes, strict=True))
            if any(o.code is not None for o in outcomes):
                break
        kinds = {run_id: check_one_outcome(run_id, outcome, marks) for run_id, outcome in first.items()}
        refused = [i for i, k in kinds.items() if k == "refused"]
        ran = [i for i, k in kinds.items() if k != "refused"]
        assert refused, "the journal never filled up: raise the burst or lower FILE_SIZE_LIMIT"
        assert ran, "nothing ran at all: raise FILE_SIZE_LIMIT"

        # The same run ids again: a finished run is replayed (from the journal
        # or, when its result could not be journaled, from memory), never run
        # again; a refused one is refused again (the journal is still full).
        again = await asyncio.gather(*(call_run(stub, request(marks, i)) for i in first))
        for run_id, outcome in zip(first, again, strict=True):
            assert check_one_outcome(run_id, outcome, marks) == kinds[run_id]
            if kinds[run_id] != "refused":
                assert [e.WhichOneof("event") for e in outcome.events] == ["finished"], outcome.events
                assert outcome.events[0].finished == first[run_id].events[-1].finished

        # Every finished result is listed for collection, journaled or not.
        listed: dict[str, pb.RunFinished] = {}
        token = ""
        while True:
            reply = await stub.ListResults(pb.ListResultsRequest(page_token=token))
            listed.update((r.run_id, r) for r in reply.results)
            token = reply.next_page_token
            if not token:
                break
        assert set(listed) == set(ran)
        status_reply = await stub.Status(pb.ExecutorStatusRequest())
        assert status_reply.unacknowledged == len(ran)

        # Acknowledged (the journal may not be able to record that either):
        # a late duplicate Run still never runs a finished run again.
        try:
            await stub.Ack(pb.AckRequest(run_ids=ran))
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
            assert "could not journal the acknowledgement" in (exc.details() or "")
        late = await asyncio.gather(*(call_run(stub, request(marks, i)) for i in ran))
        for run_id, outcome in zip(ran, late, strict=True):
            assert (marks / run_id).read_text().splitlines() == ["ran"], f"run {run_id} ran again after its ack"
            if outcome.code is not None:
                assert outcome.code == grpc.StatusCode.FAILED_PRECONDITION, (run_id, outcome.code, outcome.details)
            else:
                assert [e.WhichOneof("event") for e in outcome.events] == ["finished"], outcome.events

    log = executor.log()
    # The cause, once: the file size limit that stands for a full disk here.
    assert log.count("RLIMIT_FSIZE") == 1, log
    assert log.count("a write failed") == 1, log
    assert "Traceback" not in log, log
    # Both failure paths were taken: starts refused (above), and results
    # whose write failed after their run had started, delivered all the same.
    assert "could not be journaled (journal error logged once); kept in memory" in log, log
