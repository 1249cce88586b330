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
import time

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
    """Counts failed journal writes and logs the cause at most once a window.

    A nearly full disk flaps: a big group commit fails, the next small write
    fits. So a failure is logged with its cause only if none was in the last
    ``REPORT_EVERY_SECONDS`` (then with how many failed in between), and a
    write succeeding again is said once per report.
    """

    REPORT_EVERY_SECONDS = 60.0

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()  # written on the journal thread, read anywhere
        self.failing = False
        self.failures = 0  # failed writes since the journal was opened
        self.last_error = ""  # the cause last reported, for refusals sent to callers
        self._reported_at: float | None = None  # monotonic time of the last report
        self._unreported = 0  # failures since then
        self._recovery_said = True  # a success after the last report was logged

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self.failures += 1
            self.failing = True
            if self._reported_at is not None and now - self._reported_at < self.REPORT_EVERY_SECONDS:
                self._unreported += 1
                return
            unreported, self._unreported = self._unreported, 0
            self._reported_at, self._recovery_said = now, False
            self.last_error = describe_failure(exc, self.path)
        log.error(
            "journal %s: a write failed: %s%s. Runs whose start cannot be journaled are refused, results"
            " that cannot be journaled are kept in memory until acknowledged; further failures are"
            " reported at most every %.0fs",
            self.path,
            self.last_error,
            f" ({unreported} more failed since the last report)" if unreported else "",
            self.REPORT_EVERY_SECONDS,
        )

    def succeeded(self) -> None:
        """A transaction that changed something was committed."""
        if not self.failing:  # the common case: no lock
            return
        with self._lock:
            self.failing = False
            if self._recovery_said:
                return
            self._recovery_said = True
            failed = self._unreported + 1
        log.warning("journal %s: a write succeeded again (%d failed since the report above)", self.path, failed)
