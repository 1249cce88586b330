"""Cron math: parse a schedule once, then answer "when does it fire next?" fast.

A schedule is a cron expression (5 fields, or 6 with seconds first), a macro
(``@daily`` ...) or ``@every <duration>``, evaluated in one IANA time zone.
Cron fields are matched against the zone's LOCAL WALL-CLOCK time; fire times
are returned as UTC epoch milliseconds (always whole seconds).

Daylight-saving transitions follow Vixie/ISC cron:

* A *fixed-time* job (neither the minute nor the hour field starts with ``*``)
  whose wall time is skipped by a spring-forward gap fires once, at the
  transition instant; several skipped wall times collapse into that firing. If
  its wall time is repeated by a fall-back it fires once, at the first
  occurrence.
* Any other (*wildcard*) job fires at every real instant whose wall time
  matches: twice in a repeated hour, never for skipped wall times.

How it is computed: croniter, given NAIVE datetimes, does pure wall-clock
arithmetic, and per zone we cache the UTC instants at which the UTC offset
changes. Between two transitions the offset is constant, so a wall-clock match
``W`` maps to the instant ``W - offset``; only at a transition do we have to
decide what a match means (the Vixie rules above). Everything is done in
integer seconds; a "wall time" is the naive local time encoded as if it were a
UTC epoch second.
"""

from __future__ import annotations

import bisect
import functools
import re
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterError, croniter

from common.errors import ValidationError

__all__ = ["CronSchedule", "validate_timezone"]

# --------------------------------------------------------------------------
# Time zones
# --------------------------------------------------------------------------

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
    return canonical


_HOUR = 3600
_DAY = 86400
# The fall-back rule needs to know the start of the segment containing t only
# if the segment began this recently (offsets never differ by more than ~26 h).
_MARGIN = 2 * _DAY
# Transitions are cached in independent aligned chunks of 2**25 s (~388
# days), so a query far in the future costs one chunk, not every year between.
_CHUNK_BITS = 25
# A sentinel "far away" instant for zones without transitions.
_FAR = 1 << 62


class _Timeline:
    """UTC offset of one zone as a piecewise-constant function of time.

    Chunk k covers the instants [k << 25, (k + 1) << 25) and is stored as
    ``(trans, offsets)``: the instants in the chunk at which the offset changes
    (the new offset applies from that instant on), and ``offsets[i]``, the
    offset in force just before ``trans[i]`` (one more offset than
    transitions). Chunks are computed on first use and never change.
    """

    __slots__ = ("_chunks", "_lock", "_static", "_zone")

    def __init__(self, name: str) -> None:
        self._zone = ZoneInfo(name)
        self._static = name in _UTC_NAMES
        self._lock = threading.Lock()
        self._chunks: dict[int, tuple[list[int], list[int]]] = {}

    def _offset(self, ts: int) -> int:
        off = datetime.fromtimestamp(ts, self._zone).utcoffset()
        assert off is not None  # always set for a ZoneInfo-aware datetime
        return off.days * _DAY + off.seconds

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
            nxt = min(ts + _HOUR, b)
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
        while t - (k << _CHUNK_BITS) < _MARGIN:
            k -= 1
            prev_trans, prev_offsets = self._chunk(k)
            if prev_trans:
                return prev_trans[-1], end, offset, prev_offsets[-2]
        return k << _CHUNK_BITS, end, offset, offset


_timelines: dict[str, _Timeline] = {}
_timelines_lock = threading.Lock()


def _timeline(name: str) -> _Timeline:
    tl = _timelines.get(name)
    if tl is None:
        with _timelines_lock:
            tl = _timelines.get(name)
            if tl is None:
                tl = _timelines[name] = _Timeline(name)
    return tl


# --------------------------------------------------------------------------
# Cron expressions
# --------------------------------------------------------------------------


class _Matcher:
    """A compiled croniter expression used for naive wall-clock arithmetic.

    Shared between all schedules with the same expression (croniter objects
    are costly to build and hold state, hence the lock).
    """

    __slots__ = ("_cron", "_lock")

    def __init__(self, expr: str, seconds: bool, hash_id: str | None) -> None:
        # start_time=0 (a float) keeps croniter in naive mode: no tzinfo is
        # ever attached, so all arithmetic is on wall-clock fields.
        self._cron = croniter(expr, 0, ret_type=float, day_or=True, hash_id=hash_id, second_at_beginning=seconds)
        self._lock = threading.Lock()

    def next_wall(self, wall: int) -> int | None:
        """First matching wall time strictly after `wall`; None if none in
        croniter's search horizon (50 years) or past year 9999."""
        with self._lock:
            try:
                return int(self._cron.get_next(float, wall))
            except (ValueError, OverflowError):  # CroniterBadDateError is a ValueError
                return None


@functools.lru_cache(maxsize=4096)
def _matcher(expr: str, seconds: bool, hash_id: str | None) -> _Matcher:
    return _Matcher(expr, seconds, hash_id)


_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# (name, min, max) per field, in the order written.
_FIELDS_5 = (("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12), ("day-of-week", 0, 7))
_FIELDS_6 = (("second", 0, 59), *_FIELDS_5)

_NAMES: dict[str, dict[str, int]] = {
    "month": {
        m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))
    },
    "day-of-week": {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
}

_HASH_RE = re.compile(r"h(\(\d+-\d+\))?(/\d+)?", re.IGNORECASE)
_RANDOM_RE = re.compile(r"r(\(\d+-\d+\))?(/\d+)?", re.IGNORECASE)
_ATOM_RE = re.compile(r"[0-9]+|[a-z]+", re.IGNORECASE)
_LAST_DOW_RE = re.compile(r"([0-9]+|[a-z]{3})l", re.IGNORECASE)


def _atom(field: str, atom: str, lo: int, hi: int) -> int | None:
    """Value of a plain number or name; raise if it is out of range.

    None for letters that are not a name of this field (left to croniter,
    which knows the special forms).
    """
    if atom.isdigit():
        value = int(atom)
        if not lo <= value <= hi:
            raise ValidationError("spec", f"field '{field}' value {value} out of range {lo}-{hi}")
        return value
    names = _NAMES.get(field)
    if names is not None and atom.lower() in names:
        return names[atom.lower()]
    if names is not None and len(atom) == 3:
        raise ValidationError("spec", f"field '{field}' has unknown name '{atom}'")
    return None


def _rewrite_field(field: str, text: str, lo: int, hi: int) -> str:
    """Check one non-hashed field; return it in the form croniter should get.

    Gives precise messages for the common mistakes and papers over two
    croniter quirks: it reads an equal range ("5-5") as the WHOLE field, and
    it only understands last-weekday-of-month as "L5", not "5L".
    """
    out = []
    for item in text.split(","):
        if not item:
            raise ValidationError("spec", f"field '{field}' has an empty list item in '{text}'")
        base, slash, step = item.partition("/")
        if slash and (not step.isdigit() or int(step) == 0):
            raise ValidationError("spec", f"field '{field}' step '{step}' must be a positive integer")
        if base == "?" and field not in ("day-of-month", "day-of-week"):
            raise ValidationError("spec", f"field '{field}': '?' is only allowed in day-of-month and day-of-week")
        if base in ("*", "?"):
            out.append(item)
            continue
        if field == "day-of-week" and not slash and (m := _LAST_DOW_RE.fullmatch(base)):
            value = _atom(field, m.group(1), lo, hi)
            if value is not None:
                out.append(f"L{value % 7}")
                continue
        low, dash, high = base.partition("-")
        if _ATOM_RE.fullmatch(low) and (not dash or _ATOM_RE.fullmatch(high)):
            a = _atom(field, low, lo, hi)
            b = _atom(field, high, lo, hi) if dash else None
            if dash and a is not None and a == b:
                out.append(str(a))  # "5-5" and "5-5/n" mean just 5
                continue
        out.append(item)
    return ",".join(out)


def _croniter_error(
    fields: list[str], expr_fields: list[str], seconds: bool, hash_key: str | None, exc: Exception
) -> ValidationError:
    """Turn a croniter error into one that names the offending field."""
    names = _FIELDS_6 if seconds else _FIELDS_5
    for i, (field, _, _) in enumerate(names):
        trial = ["*"] * len(names)
        trial[i] = expr_fields[i]
        try:
            # expand(), unlike the constructor, wants the hash id as bytes.
            croniter.expand(" ".join(trial), second_at_beginning=seconds, hash_id=None if hash_key is None else hash_key.encode())
        except (CroniterError, ValueError) as field_exc:
            return ValidationError("spec", f"field '{field}' value '{fields[i]}' is not valid ({field_exc})")
    return ValidationError("spec", f"invalid cron expression '{' '.join(fields)}' ({exc})")


_EVERY_UNITS = {"d": _DAY, "h": _HOUR, "m": 60, "s": 1}
_EVERY_RE = re.compile(r"(?:[0-9]+[dhms])+")
_EVERY_PART_RE = re.compile(r"([0-9]+)([dhms])")
_EVERY_MAX_S = 100 * 366 * _DAY


def _parse_every(arg: str) -> int:
    """``@every`` duration (Go style: 1h30m, 90s, 2d) in whole seconds."""
    text = arg.strip().lower()
    if not text:
        raise ValidationError("spec", "@every needs a duration, e.g. '@every 5m'")
    if not _EVERY_RE.fullmatch(text):
        if re.search(r"[0-9]\.[0-9]|[0-9](ms|us|µs|ns)\b", text):
            raise ValidationError("spec", f"@every duration '{arg}' must be a whole number of seconds")
        raise ValidationError(
            "spec", f"@every duration '{arg}' is not valid; use whole numbers with units d, h, m, s, e.g. 30s, 5m, 1h30m, 1d"
        )
    total = sum(int(n) * _EVERY_UNITS[u] for n, u in _EVERY_PART_RE.findall(text))
    if total < 1:
        raise ValidationError("spec", f"@every duration '{arg}' must be at least 1s")
    if total > _EVERY_MAX_S:
        raise ValidationError("spec", f"@every duration '{arg}' must be at most 100 years")
    return total


# Queries are supported from 1900 to the year 9000 (datetime stops at 9999 and
# the zone table reaches some years past the query).
_MIN_S = -2208988800
_MAX_S = 221845392000
# Give up (None) if the search passes this far beyond the query; the same
# horizon croniter uses. Only reachable by specs whose every match falls in a
# DST gap.
_HORIZON_S = 50 * 366 * _DAY
# A match this far past the current segment is reached by a jump.
_JUMP_S = 8 * _DAY


class CronSchedule:
    """A parsed schedule in one time zone. Build with :meth:`parse`.

    Instances are immutable and safe to share between threads.
    """

    __slots__ = ("_every", "_fixed", "_matcher", "_timeline", "spec", "timezone")

    spec: str
    timezone: str

    def __init__(self, spec: str, timezone: str, *, every: int | None, matcher: _Matcher | None, fixed: bool) -> None:
        """Internal; use :meth:`parse`."""
        self.spec = spec
        self.timezone = timezone
        self._every = every
        self._matcher = matcher
        self._fixed = fixed
        self._timeline = _timeline(timezone)

    @classmethod
    def parse(cls, spec: str, timezone: str = "UTC", *, hash_key: str | None = None) -> CronSchedule:
        """Parse and validate `spec` for IANA zone `timezone`.

        `spec` is 5 cron fields (minute hour day-of-month month day-of-week), 6
        fields with seconds FIRST, a macro (@yearly, @annually, @monthly,
        @weekly, @daily, @midnight, @hourly) or ``@every <duration>``.
        `hash_key` (normally the job name) seeds ``H`` fields, so the same job
        always gets the same spread-out time.

        Raises ``ValidationError("spec" | "timezone", ...)`` for bad input,
        including expressions that can never fire (``0 0 31 2 *``).
        """
        tz = validate_timezone(timezone)
        if not isinstance(spec, str):
            raise ValidationError("spec", f"must be a string, not {type(spec).__name__}")
        text = " ".join(spec.split())
        if not text:
            raise ValidationError("spec", "is empty")

        if text.startswith("@"):
            macro, _, arg = text.partition(" ")
            macro = macro.lower()
            if macro == "@every":
                return cls(f"@every {arg.lower()}", tz, every=_parse_every(arg), matcher=None, fixed=False)
            if macro not in _MACROS:
                raise ValidationError("spec", f"unknown macro {macro}")
            if arg:
                raise ValidationError("spec", f"macro {macro} takes no arguments, got '{arg}'")
            fields = _MACROS[macro].split(" ")
            normalised = macro
        else:
            fields = text.split(" ")
            normalised = text
            if len(fields) not in (5, 6):
                raise ValidationError("spec", f"expected 5 fields (or 6 with seconds first), got {len(fields)}")

        seconds = len(fields) == 6
        names = _FIELDS_6 if seconds else _FIELDS_5
        expr_fields = []
        hashed = False
        for (field, lo, hi), value in zip(names, fields, strict=True):
            if _HASH_RE.fullmatch(value):
                hashed = True
                # croniter hashes a bare H in day-of-month over 1-31, which
                # would skip short months (or never fire in February); keep it
                # to days every month has.
                expr_fields.append("H(1-28)" if field == "day-of-month" and value.lower() == "h" else value)
            elif _RANDOM_RE.fullmatch(value):
                raise ValidationError(
                    "spec",
                    f"field '{field}': R (random) is not supported; every dispatcher must compute the same fire times, use H",
                )
            elif "h" in value.lower().replace("thu", ""):
                raise ValidationError(
                    "spec", f"field '{field}': H must be the whole field (H, H/n, H(a-b) or H(a-b)/n), got '{value}'"
                )
            else:
                expr_fields.append(_rewrite_field(field, value, lo, hi))
        if hashed and not hash_key:
            raise ValidationError("spec", "H needs a job name")
        hash_id = hash_key if hashed else None  # unhashed specs share one matcher

        try:
            matcher = _matcher(" ".join(expr_fields), seconds, hash_id)
        except (CroniterError, ValueError) as exc:
            raise _croniter_error(fields, expr_fields, seconds, hash_id, exc) from exc
        # A spec that never matches a calendar date (Feb 30, the 5th Monday of
        # a month list that never has one, ...) is an error, not a job that
        # silently never runs. Wall-clock "now" is a fine reference: croniter
        # searches 50 years, and the calendar repeats every 28.
        if matcher.next_wall(int(time.time())) is None:
            raise ValidationError("spec", f"never fires: no date matches '{normalised}'")

        # Vixie cron's rule: a job is "fixed-time" if neither the minute nor
        # the hour field starts with '*' (the seconds field does not count).
        minute, hour = (fields[1], fields[2]) if seconds else (fields[0], fields[1])
        fixed = not minute.startswith("*") and not hour.startswith("*")
        return cls(normalised, tz, every=None, matcher=matcher, fixed=fixed)

    @property
    def is_fixed_time(self) -> bool:
        """True if DST gaps/repeats fire this job once (Vixie "fixed-time" job).

        That is: neither the minute nor the hour field starts with ``*``.
        ``@hourly`` and ``@every`` schedules are not fixed-time.
        """
        return self._fixed

    def next_after(self, after_ms: int) -> int | None:
        """First fire instant strictly after `after_ms`, in epoch milliseconds.

        Always a whole second. None if nothing fires within croniter's search
        horizon (50 years). Chaining ``t = next_after(t)`` yields strictly
        increasing instants. Raises ValueError for instants before 1900.
        """
        t = int(after_ms // 1000)  # fire times are whole seconds
        if t < _MIN_S:
            raise ValueError(f"after_ms {after_ms} is before 1900")
        if t > _MAX_S:
            return None
        if self._every is not None:
            # Multiples of the interval since the epoch: independent of DST
            # and of the process, so every dispatcher agrees.
            return (t // self._every + 1) * self._every * 1000
        inst = self._next_cron(t)
        return None if inst is None else inst * 1000

    def next_n(self, after_ms: int, count: int) -> list[int]:
        """The next `count` fire instants after `after_ms` (fewer if the
        schedule runs out), in epoch milliseconds."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        out: list[int] = []
        t = after_ms
        while len(out) < count:
            nxt = self.next_after(t)
            if nxt is None:
                break
            out.append(nxt)
            t = nxt
        return out

    def _next_cron(self, t: int) -> int | None:
        """First fire instant (epoch seconds) strictly after instant `t`."""
        matcher = self._matcher
        assert matcher is not None
        timeline = self._timeline
        fixed = self._fixed
        start, end, offset, prev_offset = timeline.segment(t)
        # Invariant: `w` is the first wall-time match strictly after wall time
        # `q`, and nothing fires between `t` and the current segment.
        q = t + offset
        if fixed and prev_offset > offset:
            # This segment began with a fall-back; its first wall times
            # repeat the previous segment's and a fixed-time job already
            # fired for them there.
            q = max(q, start + prev_offset - 1)
        w = matcher.next_wall(q)
        # `q` is at most about a day past the wall time at instant `anchor`.
        anchor = t
        limit = t + _HORIZON_S
        while w is not None:
            inst = w - offset
            if inst < end:
                return inst
            # The match lies beyond this segment; nothing can fire before `end`.
            if end > limit:
                return None
            if inst - end > _JUMP_S and end - anchor >= _MARGIN:
                # The match is far away (a sparse spec): every instant from
                # `end` to `j` has a wall time in (q, w), where nothing
                # matches, so skip straight to `j` instead of visiting each
                # transition (and computing each year's zone data) between.
                j = w - offset - 3 * _DAY
                _, end, offset, _ = timeline.segment(j)
                anchor, q = j, j + offset
                continue
            # Cross the boundary at `end`.
            b = anchor = end
            _, end, new_offset, _ = timeline.segment(b)
            if fixed and new_offset > offset and w < b + new_offset:
                # Spring forward: the match is in the skipped wall range
                # [b + offset, b + new_offset); fire once, at the transition.
                return b
            # The next segment's wall clock starts at b + new_offset. After a
            # fall-back a fixed-time job skips the repeated range, since the
            # first copy already fired; a wildcard job fires there again.
            floor = b + max(new_offset, offset) if fixed else b + new_offset
            if not q < floor <= w:
                q = floor - 1
                w = matcher.next_wall(q)
            offset = new_offset
        return None

    def __repr__(self) -> str:
        return f"CronSchedule({self.spec!r}, {self.timezone!r})"
