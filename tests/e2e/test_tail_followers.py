"""TailRun followers through a real dispatcher, executor and cronctl: a crowd
of followers of one run gets the live output and the outcome over one
executor stream, and the follower caps answer RESOURCE_EXHAUSTED."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc
from testing_support.services import wait_for, wait_until
from testing_support.trio import Trio, make_trio, stop_trio

PER_RUN, TOTAL = 60, 70


@pytest.fixture
def capped_trio(tmp_path: Path) -> Iterator[Trio]:
    t = make_trio(tmp_path, extra={"dispatcher": {"tail_followers_per_run": str(PER_RUN), "tail_followers_total": str(TOTAL)}})
    try:
        for service in ("executor", "dispatcher"):
            t.start(service)
        yield t
    finally:
        stop_trio(t)


def _start_gated(t: Trio, name: str, go: Path) -> str:
    command = f"echo first; while [ ! -e {go} ]; do sleep 0.05; done; echo second"
    added = t.cronctl("job", "add", "--name", name, "--spec", "@yearly", "--command", command)
    assert added.returncode == 0, added.stderr
    run_id = str(json.loads(t.cronctl("job", "run", name, "--json").stdout)["run_id"])
    wait_for(lambda: t.sql("SELECT 1 FROM runs WHERE run_id = ? AND status = 'running'", (run_id,)), 20, f"{name} to run")
    return run_id


async def _follow(api: pb_grpc.AdminStub, run_id: str, got: dict[int, bytes], key: int) -> str:
    """Reads a follow stream to its end; its final status (or the error code's name)."""
    final = ""
    try:
        async for chunk in api.TailRun(pb.TailRunRequest(run_id=run_id, follow=True), timeout=60):
            got[key] = got.get(key, b"") + chunk.data
            final = chunk.status or final
    except grpc.aio.AioRpcError as exc:
        return f"{exc.code().name}: {exc.details()}"
    return final


async def test_followers_share_one_stream_and_caps_give_resource_exhausted(capped_trio: Trio, tmp_path: Path) -> None:
    t = capped_trio
    go_a, go_b = tmp_path / "go-a", tmp_path / "go-b"
    run_a = _start_gated(t, "crowd", go_a)
    run_b = _start_gated(t, "other", go_b)
    async with grpc.aio.insecure_channel(t.dispatcher) as channel:
        api = pb_grpc.AdminStub(channel)
        got: dict[int, bytes] = {}
        crowd = [asyncio.create_task(_follow(api, run_a, got, i)) for i in range(PER_RUN)]
        await wait_until(lambda: len(got) == PER_RUN and all(v == b"first\n" for v in got.values()), 30, "the crowd sees 'first'")
        # One more on the same run: refused, naming the setting.
        over_run = await _follow(api, run_a, {}, -1)
        assert over_run.startswith("RESOURCE_EXHAUSTED") and "tail_followers_per_run" in over_run, over_run
        # Another run may have followers until the dispatcher's total is reached.
        others = [asyncio.create_task(_follow(api, run_b, got, 1000 + i)) for i in range(TOTAL - PER_RUN)]
        await wait_until(lambda: len(got) == TOTAL, 30, "followers of the other run")
        over_total = await _follow(api, run_b, {}, -2)
        assert over_total.startswith("RESOURCE_EXHAUSTED") and "tail_followers_total" in over_total, over_total

        go_a.touch()
        finals = await asyncio.wait_for(asyncio.gather(*crowd), 60)
        assert finals == ["succeeded"] * PER_RUN
        assert all(got[i] == b"first\nsecond\n" for i in range(PER_RUN))
        go_b.touch()
        assert await asyncio.wait_for(asyncio.gather(*others), 60) == ["succeeded"] * (TOTAL - PER_RUN)

        # Followers that go away mid-run take the feed (and its executor stream) with them.
        go_c = tmp_path / "go-c"
        run_c = _start_gated(t, "abandoned", go_c)
        leaving: dict[int, bytes] = {}
        quitters = [asyncio.create_task(_follow(api, run_c, leaving, i)) for i in range(5)]
        await wait_until(lambda: len(leaving) == 5, 30, "followers of the abandoned run see output")
        for task in quitters:
            task.cancel()
        await asyncio.gather(*quitters, return_exceptions=True)
        stopped = f"tail of run {run_c}: no followers left; its feed stopped"
        await wait_until(lambda: stopped in t.procs["dispatcher"].log_text(), 20, "the feed to stop")
        go_c.touch()

    log = t.procs["dispatcher"].log_text()
    # One executor stream per run, whatever the number of followers.
    assert log.count(f"tail of run {run_a}: attached to executor") == 1, log
    assert log.count(f"tail of run {run_b}: attached to executor") == 1, log
    assert "TailRun of" in log and "refused" in log
