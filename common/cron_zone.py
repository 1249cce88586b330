"""Time zones for cron math: the canonical spelling of a zone name, and each
zone's UTC offset as a piecewise-constant function of time (its transitions
cached per zone, in chunks). common/cron.py uses both to map wall-clock
matches to instants; see its docstring for the DST rules built on them.
"""

from __future__ import annotations

import bisect
import functools
import threading
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from crontrio.common.errors import ValidationError

__all__ = ["DAY", "HOUR", "MARGIN", "Timeline", "timeline", "validate_timezone"]

# Zones that are UTC forever: skip building a transition table for them (the
# common case, and it keeps next_after() on the shortest path).
_UTC_NAMES = frozenset(
    {
        "UTC",
        "Etc/UTC",
        "Etc/UCT",
        "UCT",
        "Etc/Universal",
        "Universal",
        "Etc/Zulu",
        "Zulu",
        "GMT",
        "Etc/GMT",
        "Etc/GMT0",
        "Etc/GMT+0",
        "Etc/GMT-0",
        "GMT0",
        "GMT+0",
        "GMT-0",
        "Etc/Greenwich",
        "Greenwich",
    }
)


@functools.lru_cache(maxsize=1)
def _zone_names() -> tuple[frozenset[str], dict[str, str]]:
    """All known zone keys, plus a case-folded index for forgiving lookups."""
    names = frozenset(available_timezones())
    return names, {n.casefold(): n for n in names}


def validate_timezone(name: str | None) -> str:
    """Return the canonical spelling of IANA time zone `name`.

    ``""`` (and None) mean ``"UTC"``. Lookup is case-insensitive
    (``"america/new_york"`` -> ``"America/New_York"``); links such as
    ``US/Eastern`` are accepted and kept as written. Raises
    ``ValidationError("timezone", ...)`` for anything else.
    """
    if name is None:
        return "UTC"
    if not isinstance(name, str):
        raise ValidationError("timezone", f"must be a string, not {type(name).__name__}")
    known = _known_zones.get(name)
    if known is not None:
        return known
    key = name.strip()
    if not key:
        return "UTC"
    names, folded = _zone_names()
    canonical = key if key in names else folded.get(key.casefold())
    if canonical is None:
        raise ValidationError("timezone", f"unknown time zone '{name}'")
    try:
        ZoneInfo(canonical)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # pragma: no cover - broken tzdata
        raise ValidationError("timezone", f"unknown time zone '{name}'") from exc
    if len(_known_zones) < _KNOWN_ZONES_MAX:
        _known_zones[name] = canonical
    return canonical


# Spellings already accepted -> their canonical name: every job's zone is
# checked when a dispatcher loads it, and fleets use a handful of zones.
_known_zones: dict[str, str] = {}
_KNOWN_ZONES_MAX = 4096


HOUR = 3600
DAY = 86400
# The fall-back rule needs to know the start of the segment containing t only
# if the segment began this recently (offsets never differ by more than ~26 h).
MARGIN = 2 * DAY
# Transitions are cached in independent aligned chunks of 2**22 s (~48.5
# days), so a query far in the future costs one chunk, not every year between.
# A chunk is scanned hourly when first used: a dispatcher starting on jobs in
# 20 zones scans 20 of them before it fires anything (2**25 s chunks took
# ~0.2 s there), at the price of a chunk edge (a segment boundary with the
# same offset on both sides) every 48 days for next_after to step over.
_CHUNK_BITS = 22
# A sentinel "far away" instant for zones without transitions.
_FAR = 1 << 62


class Timeline:
    """UTC offset of one zone as a piecewise-constant function of time.

    Chunk k covers the instants [k << _CHUNK_BITS, (k + 1) << _CHUNK_BITS) and is stored as
    ``(trans, offsets)``: the instants in the chunk at which the offset changes
    (the new offset applies from that instant on), and ``offsets[i]``, the
    offset in force just before ``trans[i]`` (one more offset than
    transitions). Chunks are computed on first use and never change.
    """

    __slots__ = ("_chunks", "_last", "_lock", "_static", "_zone")

    def __init__(self, name: str) -> None:
        self._zone = ZoneInfo(name)
        self._static = name in _UTC_NAMES
        self._lock = threading.Lock()
        self._chunks: dict[int, tuple[list[int], list[int]]] = {}
        # The last instant asked about and its segment: a dispatcher's full
        # load asks every job's zone about the same instant (its one `now`).
        # One tuple, replaced whole, so threads never see half of it.
        self._last: tuple[int, tuple[int, int, int, int]] = (_FAR, (0, 0, 0, 0))

    def _offset(self, ts: int) -> int:
        off = datetime.fromtimestamp(ts, self._zone).utcoffset()
        assert off is not None  # always set for a ZoneInfo-aware datetime
        return off.days * DAY + off.seconds

    def _scan(self, a: int, b: int) -> tuple[list[int], list[int]]:
        """Transitions in (a, b] and the offsets around them.

        Samples hourly (no real zone changes its offset twice within an hour)
        and bisects each change down to the second.
        """
        prev = self._offset(a)
        trans: list[int] = []
        offsets = [prev]
        ts = a
        while ts < b:
            nxt = min(ts + HOUR, b)
            if self._offset(nxt) == prev:
                ts = nxt
                continue
            lo, hi = ts, nxt  # offset(lo) == prev != offset(hi)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if self._offset(mid) == prev:
                    lo = mid
                else:
                    hi = mid
            prev = self._offset(hi)
            trans.append(hi)
            offsets.append(prev)
            # Resume at the change, so a second change in the same hour is
            # still seen.
            ts = hi
        return trans, offsets

    def _chunk(self, k: int) -> tuple[list[int], list[int]]:
        chunk = self._chunks.get(k)
        if chunk is None:
            with self._lock:
                chunk = self._chunks.get(k)
                if chunk is None:
                    base = k << _CHUNK_BITS
                    chunk = self._chunks[k] = self._scan(base - 1, base + (1 << _CHUNK_BITS) - 1)
        return chunk

    def segment(self, t: int) -> tuple[int, int, int, int]:
        """The constant-offset segment containing instant `t`.

        Returns ``(start, end, offset, previous_offset)``: `offset` applies on
        [start, end); `previous_offset` is the one in force just before
        `start`. Either bound may be a chunk edge rather than a real
        transition (then the neighbouring segment has the same offset), which
        callers treat like any other boundary; `start` is exact whenever it is
        within a day or two of `t`.
        """
        if self._static:
            return -_FAR, _FAR, 0, 0
        last_t, last = self._last
        if last_t == t:
            return last
        found = self._segment(t)
        self._last = (t, found)
        return found

    def _segment(self, t: int) -> tuple[int, int, int, int]:
        k = t >> _CHUNK_BITS
        trans, offsets = self._chunk(k)
        i = bisect.bisect_right(trans, t)
        offset = offsets[i]
        end = trans[i] if i < len(trans) else (k + 1) << _CHUNK_BITS
        if i:
            return trans[i - 1], end, offset, offsets[i - 1]
        # The segment began before this chunk. If that may have been recently
        # (with a fall-back, which the fall-back rule needs to know about),
        # look back; with real chunk sizes this reads at most one more chunk.
        while t - (k << _CHUNK_BITS) < MARGIN:
            k -= 1
            prev_trans, prev_offsets = self._chunk(k)
            if prev_trans:
                return prev_trans[-1], end, offset, prev_offsets[-2]
        return k << _CHUNK_BITS, end, offset, offset


_timelines: dict[str, Timeline] = {}
_timelines_lock = threading.Lock()


def timeline(name: str) -> Timeline:
    tl = _timelines.get(name)
    if tl is None:
        with _timelines_lock:
            tl = _timelines.get(name)
            if tl is None:
                tl = _timelines[name] = Timeline(name)
    return tl
