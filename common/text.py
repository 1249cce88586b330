"""Showing untrusted text safely: in log lines and on an operator's terminal.

Job names, commands, run ids and output come from users (and a run id or
job name sent to an executor from anyone who can reach it). Printed raw, a
newline forges a log line and an escape sequence (CSI, OSC) drives the
reader's terminal. These helpers replace every control character by a
visible escape (``\\x1b``, ``\\n``), so what is shown is what was sent, and
nothing in it acts.
"""

from __future__ import annotations

import codecs
import logging
import re
from typing import Any

# C0 controls, DEL and the C1 controls (U+0080-U+009F: a terminal may take
# U+009B as CSI). Line and paragraph separators too, as some viewers break
# lines on them.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# The same minus newline and tab: for output shown as text (run tail).
_CONTROLS_BUT_LAYOUT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` on one line with every control character escaped visibly
    (``\\n``, ``\\x1b``, ``\\x9b``); other text, including non-ASCII, unchanged."""
    return _CONTROLS.sub(_escape, text)


def escape_output(text: str) -> str:
    """Like escape_controls, but newlines and tabs stay: for a task's output,
    which is meant to be read as lines."""
    return _CONTROLS_BUT_LAYOUT.sub(_escape, text)


class OutputEscaper:
    """escape_output for a byte stream that arrives in chunks: a UTF-8
    sequence split between chunks is decoded whole, and bytes that are not
    UTF-8 are shown as ``\\xNN``."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")

    def feed(self, data: bytes, final: bool = False) -> str:
        return escape_output(self._decoder.decode(data, final))


class EscapeControlsFilter(logging.Filter):
    """Keeps every log record on one line: control characters in the
    formatted message (from a job name, run id, command or error text) are
    escaped, so no value can forge a log line or reach a terminal reading
    the log. Tracebacks (exc_info) are formatted separately and keep their
    lines.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        # Formatted once here; the formatter then has nothing left to format.
        message = record.getMessage()
        record.msg = escape_controls(message) if _CONTROLS.search(message) is not None else message
        record.args = None
        return True


def printable(value: Any) -> str:
    """A table cell: str(value) with control characters escaped."""
    return escape_controls("" if value is None else str(value))
