"""What every alert channel provides, and how it reports a failed send."""

from __future__ import annotations

from typing import Protocol

from crontrio.common.alerts.message import Alert

EMAIL, SMS, WEBHOOK = "email", "sms", "webhook"
CHANNELS = (EMAIL, SMS, WEBHOOK)


class ChannelError(Exception):
    """A send failed; it may be tried again."""


class PermanentChannelError(ChannelError):
    """A send that cannot succeed as configured (a bad template, no valid recipient): not retried."""


class Channel(Protocol):
    name: str

    async def send(self, alert: Alert, recipients: list[str]) -> None:
        """Deliver `alert` to `recipients` (ignored by channels without recipients); raise on failure."""
        ...

    async def aclose(self) -> None:
        """Release connections; abort sends still in flight."""
        ...


def cap_utf8(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, marked with … when cut."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[: max_bytes - len("…".encode())].decode("utf-8", errors="ignore") + "…"


def describe_response(status_code: int, body: str, limit: int = 300) -> str:
    """A short description of a failed HTTP response for a log line."""
    snippet = " ".join(body.split())
    if len(snippet) > limit:
        snippet = snippet[:limit] + "…"
    return f"HTTP {status_code}: {snippet}" if snippet else f"HTTP {status_code}"
