"""Whether the journal can be written, said once per episode with its cause.

A full disk (or a file size limit) fails every write until space comes back:
at a thousand runs a second, a log line per failed write would bury the one
line that says why. So the first failure is logged with its cause and what
the file system says, the next ones are only counted, and the first write
that succeeds again says how many failed meanwhile.
"""

from __future__ import annotations

import logging
import os
import resource
import threading

log = logging.getLogger(__name__)

# Below this much free space the file system is named as the likely cause.
_LOW_FREE_BYTES = 16 * 1024 * 1024


def describe_failure(exc: BaseException, path: str) -> str:
    """The error of a failed journal write, with what may explain it (SQLite
    reports a write refused for EFBIG or ENOSPC only as "disk I/O error" or
    "database or disk is full")."""
    text = str(exc) or type(exc).__name__
    name = getattr(exc, "sqlite_errorname", "")
    cause = f"{text} ({name})" if name and name not in text else text
    hints = []
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY:
        sizes = {p: _size(p) for p in (path, f"{path}-wal")}
        biggest = max(sizes, key=lambda p: sizes[p])
        hints.append(
            f"this process may write files of at most {soft} bytes (ulimit -f, RLIMIT_FSIZE)"
            f" and {os.path.basename(biggest)} is {sizes[biggest]} bytes"
        )
    try:
        stat = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        pass
    else:
        free = stat.f_bavail * stat.f_frsize
        if free < _LOW_FREE_BYTES:
            hints.append(f"its file system has {free} bytes free")
    return cause + (f"; {'; '.join(hints)}" if hints else "")


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


class JournalHealth:
    """Counts failed journal writes and logs the first of each episode."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()  # written on the journal thread, read anywhere
        self.failing = False
        self.failures = 0  # failed writes in the current episode
        self.last_error = ""  # the cause, for refusals sent to callers

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self.failures += 1
            if self.failing:
                return
            self.failing = True
            self.last_error = describe_failure(exc, self.path)
        log.error(
            "journal %s: a write failed: %s. Runs whose start cannot be journaled are refused"
            " and results that cannot be journaled are kept in memory until acknowledged;"
            " further failures are counted, not logged, until a write succeeds",
            self.path,
            self.last_error,
        )

    def succeeded(self) -> None:
        """A transaction that changed something was committed."""
        if not self.failing:  # the common case: no lock
            return
        with self._lock:
            failures, self.failing, self.failures = self.failures, False, 0
        log.warning("journal %s: writes succeed again (%d failed meanwhile)", self.path, failures)
