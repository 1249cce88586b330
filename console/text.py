"""Turning run output and instants into safe, labelled text."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crontrio.common import cron_text

# CSI sequences (colours, cursor moves), OSC sequences (titles, hyperlinks)
# and other two-byte escapes: stripped, never passed to the page.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# Control characters other than tab and newline have no business in a page.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def output_text(data: bytes) -> str:
    """Run output as plain text: UTF-8 (bad bytes replaced), ANSI escapes stripped.
    The templates escape it, so HTML in output stays inert."""
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    return _CONTROL.sub("", _ANSI.sub("", text))


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def at(ms: int, tz: str = "UTC") -> str:
    """'2026-12-06 02:30:00 Europe/Berlin' (always labelled with its zone); '' for 0."""
    if not ms:
        return ""
    when = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(zone(tz))
    return f"{when:%Y-%m-%d %H:%M:%S} {tz or 'UTC'}"


def duration(start_ms: int, end_ms: int) -> str:
    if not start_ms or not end_ms or end_ms < start_ms:
        return ""
    seconds = (end_ms - start_ms) / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {sec:02d}s" if hours else f"{minutes}m {sec:02d}s"


def spec_reading(spec: str, lang: str) -> str:
    """The spec in words ("at 02:30 every day"); "" when there are none beyond the spec."""
    reading = cron_text.describe(spec, lang) if spec else ""
    return "" if reading == spec else reading
