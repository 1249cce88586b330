"""A bounded output tail: the last N bytes of whatever a task prints."""

from __future__ import annotations


class OutputTail:
    """Keeps only the last ``limit`` bytes appended to it.

    A task may print gigabytes; the tail never holds more than ``limit`` bytes
    plus the chunk being appended, so the executor's memory stays flat.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"output limit must be positive, got {limit}")
        self.limit = limit
        self._buf = bytearray()
        self.total_bytes = 0
        self.truncated = False

    def append(self, data: bytes) -> None:
        if not data:
            return
        self.total_bytes += len(data)
        if len(data) >= self.limit:
            # The chunk alone fills the tail: whatever was kept is gone anyway.
            self.truncated = self.truncated or bool(self._buf) or len(data) > self.limit
            self._buf = bytearray(data[-self.limit :])
            return
        self._buf += data
        excess = len(self._buf) - self.limit
        if excess > 0:
            # Deleting from the front of a bytearray is cheap in CPython (it
            # moves a start offset), so this stays linear in what is printed.
            del self._buf[:excess]
            self.truncated = True

    def snapshot(self) -> bytes:
        """The tail as it is now."""
        return bytes(self._buf)

    def __len__(self) -> int:
        return len(self._buf)
