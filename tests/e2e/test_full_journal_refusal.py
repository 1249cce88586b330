"""An executor whose journal cannot be written (a full disk) refuses new runs;
the dispatcher records such a refusal as a failed run with the reason, and
sends it to another executor when there is one (the run never started): never a silent loss,
never a run without a durable start record.

The trio as real processes in embedded mode, two executors; the first runs
under a file size limit (RLIMIT_FSIZE, what `ulimit -f` sets) standing in for
a full disk.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc
from testing_support.services import ServiceProcess, is_serving, wait_for
from testing_support.trio import Trio, make_trio, stop_trio

# The journal's WAL fills after a handful of 64 KiB results.
FILE_SIZE_LIMIT = 512 * 1024


def _limit_file_size() -> None:  # in the child, before exec
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[Trio]:
    t = make_trio(tmp_path, executors=2)
    try:
        proc = ServiceProcess("executor", t.conf, tmp_path / "executor.log", preexec_fn=_limit_file_size)
        t.procs["executor"] = proc
        wait_for(lambda: proc.proc.poll() is None and is_serving(t.executor), 20, "the size-limited executor to serve")
        t.start("executor2")
        t.start("dispatcher")
        yield t
    finally:
        stop_trio(t)


def runs_of(t: Trio, job: str) -> list[tuple[object, ...]]:
    return t.sql(
        "SELECT run_id, scheduled_ms, attempt, status, executor, error FROM runs"
        " WHERE job_name = ? ORDER BY scheduled_ms, attempt",
        (job,),
    )


def settled(t: Trio, job: str, firings: int, retries: int) -> list[tuple[object, ...]]:
    """The job's runs once `firings` firings have ended (succeeded, or out of
    attempts) and none is still going; [] until then."""
    rows = runs_of(t, job)
    last: dict[object, tuple[object, ...]] = {}
    for row in rows:
        last[row[1]] = row  # ordered by attempt
    ended = [r for r in last.values() if r[3] == "succeeded" or (r[3] == "failed" and r[2] == retries + 1)]
    active = [r for r in rows if r[3] in ("pending", "running")]
    return rows if len(ended) >= firings and not active else []


def test_a_run_refused_for_a_full_journal_is_failed_with_the_reason_or_retried_elsewhere(trio: Trio) -> None:
    t = trio
    marks = t.root / "marks"
    marks.mkdir()
    big = f"echo $CRONTRIO_RUN_ID >> {marks}/ran; head -c 65536 /dev/zero | tr '\\0' x"
    with grpc.insecure_channel(t.dispatcher) as channel:
        admin = pb_grpc.AdminStub(channel)
        # Pinned to the size-limited executor, no retries: run it until its
        # journal is full and a run is refused.
        admin.CreateJob(pb.Job(name="pinned", spec="0 0 1 1 *", command=big, target=t.executor), timeout=10)
        refused: tuple[object, ...] | None = None
        for fired in range(1, 41):
            admin.RunJob(pb.JobRef(name="pinned"), timeout=10)
            rows = wait_for(lambda n=fired: settled(t, "pinned", n, 0), 30, f"firing {fired} of pinned to end")  # type: ignore[misc]
            refused = next((r for r in rows if r[3] == "failed"), None)
            if refused is not None:
                break
        assert refused is not None, "the executor's journal never filled up"
        run_id, _, _, _, executor, error = refused
        assert executor == t.executor
        assert f"executor {t.executor} refused the run, which did not start there" in str(error), error
        assert f"run {run_id} not started: this executor cannot journal it" in str(error), error
        ran = (marks / "ran").read_text().split()
        assert run_id not in ran, "a run refused for want of a journal ran anyway"
        assert all(r[3] == "succeeded" for r in rows if r[0] != run_id), rows

        # Any executor, no retries: a firing refused on the full one never
        # started there, so it moves to the other within the same attempt.
        admin.CreateJob(pb.Job(name="spread", spec="0 0 1 1 *", command=big), timeout=10)
        for _ in range(4):
            admin.RunJob(pb.JobRef(name="spread"), timeout=10)
        rows = wait_for(lambda: settled(t, "spread", 4, 0), 60, "the 4 firings of spread to end")
    assert len(rows) == 4 and all(r[2] == 1 and r[3] == "succeeded" for r in rows), rows
    # Round robin sends some to the full executor, which refuses them; each ran on the other.
    assert all(r[4] == t.executor2 for r in rows), rows
    moved = t.procs["dispatcher"].log_text().count(f"never started there (executor {t.executor} refused it")
    assert moved >= 1, "no firing was refused by the full executor and moved"
    ran = (marks / "ran").read_text().split()
    for row in rows:
        assert ran.count(str(row[0])) == 1, row
    print(f"\npinned: refused after {fired} firings; spread: {moved} of 4 firings moved after a refusal")
