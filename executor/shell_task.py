"""Runs one shell task: ``/bin/sh -c <command>`` in its own process group.

The process is started with ``subprocess.Popen`` and watched from the event
loop (a pidfd for its exit, non-blocking reads for its pipes) rather than with
asyncio's subprocess API: in Python 3.11 ``Process.wait()`` only returns once
every pipe is closed, so a daemonised grandchild holding stdout would hang the
run forever. Here "the shell exited" and "the output ended" are separate
events, and output reading stops after a short drain.

Exit codes follow Python's convention: a process killed by signal N reports
``-N`` (e.g. -15 for SIGTERM, -9 for SIGKILL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

SHELL = "/bin/sh"
# Pipes hand over at most this much per read; Linux pipes hold 64 KiB.
READ_CHUNK = 65536
# How often a terminating group is checked for survivors: there is no event
# for "the last process of a group died", so this one wait is a poll.
_GROUP_POLL_SECONDS = 0.1
# Without pidfd support (non-Linux, old kernels) the exit is polled this often.
_EXIT_POLL_SECONDS = 0.05

OutputCallback = Callable[[bytes], None]


class TaskStartError(Exception):
    """The task could not be started (missing workdir, no shell, ...)."""


def task_environment(base: Mapping[str, str], task_env: Mapping[str, str], run_vars: Mapping[str, str]) -> dict[str, str]:
    """The executor's environment, plus the task's, plus the CRONTRIO_* run
    variables (last, so a job definition cannot spoof them)."""
    env = dict(base)
    env.update(task_env)
    env.update(run_vars)
    return env


def group_has_live_member(pgid: int) -> bool:
    """Whether a process group has a member that is not a zombie (Linux
    /proc; elsewhere any member counts as live)."""
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return True
    for pid in entries:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parens.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


class ShellProcess:
    """One running shell task: its process group, its output and its exit."""

    def __init__(self, popen: subprocess.Popen[bytes], on_output: OutputCallback) -> None:
        self._popen = popen
        self.pid = popen.pid
        # start_new_session makes the shell a session and group leader.
        self.pgid = popen.pid
        self._on_output = on_output
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._open_pipes: dict[int, asyncio.Event] = {}
        self._pidfd: int | None = None
        self._exit_poller: asyncio.Task[None] | None = None
        for pipe in (popen.stdout, popen.stderr):
            assert pipe is not None  # both are PIPE by construction
            fd = pipe.fileno()
            os.set_blocking(fd, False)
            self._open_pipes[fd] = asyncio.Event()
            # Both pipes feed one stream in arrival order: the loop calls
            # whichever is readable first.
            self._loop.add_reader(fd, self._read, fd)
        self._watch_exit()

    @classmethod
    def spawn(cls, command: str, *, workdir: str, env: Mapping[str, str], on_output: OutputCallback) -> ShellProcess:
        """Start the command. Must be called from the event loop; output
        callbacks begin on the loop's next turn, never during this call."""
        if workdir and not os.path.isdir(workdir):
            raise TaskStartError(f"workdir {workdir!r} does not exist or is not a directory")
        try:
            popen = subprocess.Popen(  # running the job's command is the point
                [SHELL, "-c", command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=workdir or None,
                env=dict(env),
                start_new_session=True,
            )
        except OSError as exc:
            raise TaskStartError(f"cannot start {SHELL}: {exc}") from exc
        return cls(popen, on_output)

    # -- exit ----------------------------------------------------------------

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    async def wait_exit(self) -> int:
        """Wait for the shell itself to exit; returns its exit code."""
        return await asyncio.shield(self._exited)

    def _watch_exit(self) -> None:
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self._exit_poller = self._loop.create_task(self._poll_exit())
            return
        self._loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        code = self._popen.poll()
        if code is None:
            return
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if not self._exited.done():
            self._exited.set_result(code)

    async def _poll_exit(self) -> None:
        while not self._exited.done():
            self._reap()
            await asyncio.sleep(_EXIT_POLL_SECONDS)

    # -- output ----------------------------------------------------------------

    def _read(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            log.warning("pid %d: reading output failed: %s", self.pid, exc)
            data = b""
        if data:
            self._on_output(data)
        else:
            self._close_pipe(fd)

    def _close_pipe(self, fd: int) -> None:
        closed = self._open_pipes.get(fd)
        if closed is None or closed.is_set():
            return
        self._loop.remove_reader(fd)
        closed.set()

    async def drain_output(self, within: float) -> bool:
        """Wait up to ``within`` seconds for the output pipes to close, then stop
        reading either way. False when a background process still held them
        (a daemonised child we do not wait for)."""
        waits = [asyncio.ensure_future(ev.wait()) for ev in self._open_pipes.values()]
        _, pending = await asyncio.wait(waits, timeout=within)
        for task in pending:
            task.cancel()
        for fd in list(self._open_pipes):
            self._close_pipe(fd)
        self._close_files()
        return not pending

    def _close_files(self) -> None:
        for pipe in (self._popen.stdout, self._popen.stderr):
            if pipe is not None:
                pipe.close()

    # -- signals ---------------------------------------------------------------

    def signal_group(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to every process of the group; False when none is left."""
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            return False
        except PermissionError:
            # A member changed its credentials (setuid helper): we cannot
            # signal it, but the group is still there.
            log.warning("pid %d: not allowed to send %s to its process group", self.pid, sig.name)
        return True

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # killpg also "finds" zombies: orphans that nobody has reaped yet,
        # which in a container whose PID 1 is not an init can be forever.
        return group_has_live_member(self.pgid)

    async def terminate_group(self, grace: float) -> None:
        """TERM the whole group, then KILL whatever is left after ``grace``
        seconds (grandchildren included: they share the group)."""
        if not self.signal_group(signal.SIGTERM):
            return
        deadline = self._loop.time() + grace
        while self._loop.time() < deadline:
            if not await asyncio.to_thread(self._group_alive):
                return
            await asyncio.sleep(_GROUP_POLL_SECONDS)
        if self.signal_group(signal.SIGKILL):
            log.info("pid %d: process group survived SIGTERM for %.1fs, sent SIGKILL", self.pid, grace)

    def close(self) -> None:
        """Release everything; kills the group if it is somehow still there
        (only on an abnormal path such as cancellation)."""
        if not self._exited.done():
            self.signal_group(signal.SIGKILL)
        for fd in list(self._open_pipes):
            with contextlib.suppress(Exception):
                self._close_pipe(fd)
        self._close_files()
        if self._exit_poller is not None:
            self._exit_poller.cancel()
