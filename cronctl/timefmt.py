"""Times as cronctl shows and reads them: ISO 8601, UTC, with a Z."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from crontrio.common.errors import ValidationError


def iso_utc(ms: int) -> str:
    if not ms:
        return ""
    try:
        moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):  # beyond the years datetime can show
        return f"{ms} ms"
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if ms % 1000:
        text += f".{ms % 1000:03d}"
    return text + "Z"


def parse_instant(text: str, timezone: str, field: str = "after") -> int:
    """ISO 8601 to epoch ms; without an offset the time is read in `timezone`."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(field, f"{text!r} is not an ISO 8601 time (e.g. 2026-03-29T01:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    try:
        return int(moment.timestamp() * 1000)
    except (ValueError, OverflowError, OSError) as exc:  # e.g. year 1 in a zone west of UTC
        raise ValidationError(field, f"{text!r} is out of range: {exc}") from None


def duration(start_ms: int, end_ms: int) -> str:
    if not start_ms or not end_ms:
        return ""
    return f"{(end_ms - start_ms) / 1000:.2f}s"
