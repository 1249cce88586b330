"""The drivers of one run's task: a shell command or an HTTP request
(docs/ARCHITECTURE.md, "Run it").

executor/runs.py owns a run's life (journal its start, hold it, drive it,
journal its result); a driver only runs the task on its RunHandle: it
publishes RunStarted and the output, says how to stop the task, and returns
how it ended. The processes and requests themselves are executor/shell_task.py
and executor/http_task.py.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from crontrio.common import status
from crontrio.executor.http_task import DEFAULT_TIMEOUT_SECONDS, HttpClients, run_http
from crontrio.executor.journal import Journal
from crontrio.executor.run_handle import RunHandle
from crontrio.executor.shell_task import RunAs, ShellProcess, TaskStartError, check_workdir, resolve_user, task_environment
from crontrio.protos import crontrio_pb2

log = logging.getLogger(__name__)

# After the shell exits, how long a background process holding its output
# open may keep us reading.
OUTPUT_DRAIN_SECONDS = 1.0

# The RunStarted of a request: (request, pid, started_ms).
StartedFactory = Callable[[crontrio_pb2.RunRequest, int, int], crontrio_pb2.RunStarted]


@dataclass(frozen=True)
class TaskEnd:
    """How a task ended, before it becomes a RunFinished."""

    status: str
    exit_code: int
    error: str = ""
    pid: int = 0


async def drive_shell(
    handle: RunHandle,
    started_ms: int,
    *,
    started: StartedFactory,
    base_env: Mapping[str, str],
    kill_grace_seconds: float,
    journal: Journal,
) -> TaskEnd:
    """Run ``handle``'s shell task to its end (or its stop); the run's pid is
    journaled before RunStarted is published."""
    req = handle.request
    run_vars = {
        "CRONTRIO_RUN_ID": req.run_id,
        "CRONTRIO_JOB_ID": str(req.job_id),
        "CRONTRIO_JOB_NAME": req.job_name,
        "CRONTRIO_SCHEDULED_MS": str(req.scheduled_ms),
        "CRONTRIO_ATTEMPT": str(req.attempt),
    }
    try:
        # User lookups and the workdir check may block (NSS, a subprocess).
        run_as = await asyncio.to_thread(prepare_shell, req.shell) if req.shell.user else None
        env = task_environment(base_env, req.shell.env, run_vars, run_as)
        proc = await ShellProcess.start(
            req.shell.command, workdir=req.shell.workdir, env=env, on_output=handle.publish_output, run_as=run_as
        )
    except TaskStartError as exc:
        handle.publish_started(started(req, 0, started_ms))
        return TaskEnd(status.FAILED, 0, str(exc))
    handle.set_stopper(functools.partial(proc.stop, kill_grace_seconds))
    try:
        try:
            # So that after a crash of this executor the next one can
            # kill what is left of the run (the pid is its group's id).
            # RunStarted waits for it: a pid a caller has seen is one a
            # restarted executor can find.
            await journal.set_pid(req.run_id, proc.pid)
        except Exception:  # noqa: BLE001 - the journal logs the cause once
            log.warning("run %s: could not journal its pid %d (journal error logged once)", req.run_id, proc.pid)
        handle.publish_started(started(req, proc.pid, started_ms))
        log.info("run %s (%s attempt %d) started pid %d", req.run_id, req.job_name, req.attempt, proc.pid)
        timeout = req.timeout_seconds if req.timeout_seconds > 0 else None
        if not await proc.exited_within(timeout):
            handle.request_stop(status.TIMEOUT, f"timed out after {req.timeout_seconds:g}s")
        code = await proc.wait_exit()
        handle.stopped_running()
        # The result must not claim the group is gone while a
        # TERM-ignoring grandchild is still waiting for its KILL.
        await proc.stopped()
        if not await proc.drain_output(OUTPUT_DRAIN_SECONDS):
            log.info("run %s: a background process still holds the output open; stopped reading", req.run_id)
    finally:
        proc.close()
    if handle.stop_status:
        return TaskEnd(handle.stop_status, code, handle.stop_error, proc.pid)
    if code == 0:
        return TaskEnd(status.SUCCEEDED, 0, "", proc.pid)
    error = f"terminated by signal {signal_name(-code)}" if code < 0 else ""
    return TaskEnd(status.FAILED, code, error, proc.pid)


def prepare_shell(task: crontrio_pb2.ShellTask) -> RunAs:
    """Resolve the task's user and check that it can use the workdir
    (blocking). TaskStartError when it cannot run."""
    run_as = resolve_user(task.user)
    check_workdir(task.workdir, run_as)
    return run_as


async def drive_http(handle: RunHandle, started_ms: int, *, started: StartedFactory, clients: HttpClients) -> TaskEnd:
    """Send ``handle``'s HTTP request and wait for its answer (or its stop).

    The request runs in the run's own task, not a task of its own (a task and
    a wait per run cost measurably in a burst of thousands): a stop cancels
    this task while it waits on the request, and that cancellation, ours, is
    taken back here and becomes the run's end. Any other cancellation (the
    executor's shutdown) goes on up as before."""
    req = handle.request
    handle.publish_started(started(req, 0, started_ms))
    method = (req.http.method or "GET").upper()
    log.info("run %s (%s attempt %d) started pid %d: %s %s", req.run_id, req.job_name, req.attempt, 0, method, req.http.url)
    timeout = req.timeout_seconds if req.timeout_seconds > 0 else DEFAULT_TIMEOUT_SECONDS
    stop = _CancelOwnTask()
    handle.set_stopper(stop)
    try:
        result = await run_http(
            clients,
            req.http,
            timeout_seconds=timeout,
            on_head=lambda head: handle.publish_output(head, scan=False),
            on_body=handle.publish_output,
        )
    except asyncio.CancelledError:
        if not stop.take_back():
            raise  # not (only) our stop: the caller's cancellation stands
        return TaskEnd(handle.stop_status or status.KILLED, 0, handle.stop_error or "killed")
    finally:
        handle.stopped_running()
    # A stop that came too late to interrupt the request (the answer was in):
    # take its cancellation back, the answer stands, as it did when the
    # request had a task of its own.
    stop.take_back()
    if result.timed_out:
        return TaskEnd(status.TIMEOUT, result.status_code, result.error)
    return TaskEnd(status.SUCCEEDED if result.succeeded else status.FAILED, result.status_code, result.error)


class _CancelOwnTask:
    """The stopper of an HTTP run: cancels the task that made it (at most
    once), and can take that cancellation back."""

    def __init__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("an HTTP run is driven from a task")
        self._task = task
        self._fired = False

    def __call__(self) -> None:
        if not self._fired:
            self._fired = True
            self._task.cancel()

    def take_back(self) -> bool:
        """Withdraw our cancellation; True when the task is then no longer
        being cancelled (nobody else asked), so it may carry on."""
        if not self._fired:
            return False
        self._fired = False
        return self._task.uncancel() == 0


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)
