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

Parsing is cached so that a dispatcher loading 100,000 jobs parses each
distinct spec once: specs by text, fields by value (croniter checks each field
on its own), and the schedule of an unhashed spec in a zone is one shared
object. ``H`` is resolved per job name with croniter's own hashing, then shares
the same caches. :meth:`CronSchedule.estimate_next_after` gives a cheap lower
bound, so jobs can be ordered without computing each one's exact time.

How it is computed: croniter parses and checks the fields; the wall-clock
matching is common/cron_calendar.py's (croniter's own day_or does not follow
the Vixie day-field rule stated there), and per zone we cache the UTC
instants at which the UTC offset changes. Between two transitions the offset is constant, so a wall-clock match
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
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterError, croniter
from croniter.croniter import HashExpander

from crontrio.common.cron_calendar import Calendar, DayRule
from crontrio.common.errors import ValidationError

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
    # The common forms first: '*' and a plain number need no rewriting.
    if text == "*":
        return text
    if text.isascii() and text.isdigit():
        _atom(field, text, lo, hi)  # raises if out of range
        return text
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
# horizon as Calendar's date search. Only reachable by specs whose every match falls in a
# DST gap.
_HORIZON_S = 50 * 366 * _DAY
# A match this far past the current segment is reached by a jump.
_JUMP_S = 8 * _DAY


# croniter numbers the fields minute, hour, day-of-month, month, day-of-week,
# second, whatever order they are written in; H hashing is seeded by that
# number, so resolving H ourselves must use it too.
_CRONITER_INDEX = {False: (0, 1, 2, 3, 4), True: (5, 0, 1, 2, 3, 4)}
# croniter's own H expansion, so a hashed time is the one croniter itself
# would pick for that job name (the instance only supplies field ranges).
_HASHER = HashExpander(croniter("* * * * *", 0))


class _FieldError(Exception):
    """croniter rejected the field at `position` (in the order written)."""

    def __init__(self, position: int, cause: Exception) -> None:
        super().__init__(position, cause)
        self.position = position
        self.cause = cause


class _NeverFiresError(Exception):
    """No calendar date matches the day fields."""


@functools.lru_cache(maxsize=4096)
def _field_values(position: int, seconds: bool, text: str) -> tuple[int | str, ...]:
    """croniter's expansion of one field, checked alone ('*' in the others).

    croniter checks each field on its own (the one combined check, nth
    weekdays mixed with plain ones, stays within day-of-week), so a spec is
    valid exactly when each of its fields is. Checking them one at a time lets
    100,000 distinct specs share a few hundred cached checks instead of each
    building a croniter (~0.2 ms).
    """
    trial = ["*"] * (6 if seconds else 5)
    trial[position] = text
    try:
        expanded, _ = croniter.expand(" ".join(trial), second_at_beginning=seconds)
    except (CroniterError, ValueError) as exc:
        raise _FieldError(position, exc) from exc
    return tuple(expanded[_CRONITER_INDEX[seconds][position]])


@functools.lru_cache(maxsize=4096)
def _nth_weekdays(text: str) -> tuple[tuple[int, frozenset[int | str]], ...]:
    """croniter's ``n#k`` / ``nL`` entries of a (valid) day-of-week field:
    (weekday, {k or 'l', ...}) pairs."""
    nth = croniter.expand(f"* * * * {text}")[1]
    return tuple((weekday, frozenset[int | str](ks)) for weekday, ks in nth.items())


@functools.lru_cache(maxsize=4096)
def _day_rule(dom: str, dow: str, seconds: bool) -> DayRule:
    """The day fields' rule; shared by every spec with the same two fields."""
    dom_at, dow_at = (3, 5) if seconds else (2, 4)  # as written; their expansions are cached already
    return DayRule(dom, _field_values(dom_at, seconds, dom), dow, _field_values(dow_at, seconds, dow), _nth_weekdays(dow))


@functools.lru_cache(maxsize=4096)
def _sorted_values(values: tuple[int | str, ...], size: int) -> tuple[int, ...]:
    """A field's values as a sorted tuple; cached, so rules share the tuples."""
    return tuple(range(size)) if "*" in values else tuple(sorted(int(v) for v in values))


class _Rule:
    """The zone-independent part of a cron schedule: the fields (H resolved)
    as a wall-clock :class:`Calendar`, and whether the job is fixed-time.

    Immutable; shared by every schedule with the same resolved fields.
    """

    __slots__ = ("calendar", "fixed")

    def __init__(self, fields: tuple[str, ...], values: list[tuple[int | str, ...]]) -> None:
        with_seconds = len(fields) == 6
        second, minute, hour = values[:3] if with_seconds else ((0,), values[0], values[1])
        dom, dow = fields[-3], fields[-1]
        self.calendar = Calendar(
            _sorted_values(second, 60),
            _sorted_values(minute, 60),
            _sorted_values(hour, 24),
            values[-2],
            _day_rule(dom, dow, with_seconds),
        )
        # Vixie cron's rule: a job is "fixed-time" if neither the minute nor
        # the hour field starts with '*' (the seconds field does not count; a
        # resolved H never starts with '*', as H itself did not).
        minute_text, hour_text = fields[-5], fields[-4]
        self.fixed = not minute_text.startswith("*") and not hour_text.startswith("*")


@functools.lru_cache(maxsize=65536)
def _rule(fields: tuple[str, ...]) -> _Rule:
    """Check resolved cron fields (as croniter gets them); raises _FieldError or _NeverFiresError."""
    seconds = len(fields) == 6
    values = [_field_values(i, seconds, text) for i, text in enumerate(fields)]
    rule = _Rule(fields, values)
    # A spec no date matches (Feb 30, a 5th Monday in a month list that
    # never has one, ...) is an error, not a job that silently never runs.
    if not rule.calendar.fires_on_some_date():
        raise _NeverFiresError
    return rule


class _Template:
    """A spec as far as it can be checked without a job name; cached by its text.

    For cron specs, `expr_fields` are the fields as croniter gets them, with
    the positions in `hashed` still to be resolved with the job's name.
    """

    __slots__ = ("every", "expr_fields", "fields", "hashed", "spec")

    def __init__(self, spec: str, fields: list[str], expr_fields: list[str], hashed: list[int], every: int | None = None) -> None:
        self.spec = spec
        self.fields = tuple(fields)
        # Usually nothing needed rewriting: one tuple for both then.
        self.expr_fields = self.fields if expr_fields == fields else tuple(expr_fields)
        self.hashed = tuple(hashed)
        self.every = every


@functools.lru_cache(maxsize=65536)
def _template(spec: str) -> _Template:
    text = " ".join(spec.split())
    if text == spec:
        text = spec  # keep the caller's string (often shared by many jobs), not an equal copy
    if not text:
        raise ValidationError("spec", "is empty")

    if text.startswith("@"):
        macro, _, arg = text.partition(" ")
        macro = macro.lower()
        if macro == "@every":
            return _Template(f"@every {arg.lower()}", [], [], [], every=_parse_every(arg))
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

    names = _FIELDS_6 if len(fields) == 6 else _FIELDS_5
    expr_fields = []
    hashed = []
    for position, ((field, lo, hi), value) in enumerate(zip(names, fields, strict=True)):
        if _HASH_RE.fullmatch(value):
            hashed.append(position)
            # croniter hashes a bare H in day-of-month over 1-31, which
            # would skip short months (or never fire in February); keep it
            # to days every month has. (Lower case: how croniter reads it.)
            expr_fields.append("h(1-28)" if field == "day-of-month" and value.lower() == "h" else value.lower())
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
    return _Template(normalised, fields, expr_fields, hashed)


def _field_error(template: _Template, position: int, cause: Exception) -> ValidationError:
    names = _FIELDS_6 if len(template.fields) == 6 else _FIELDS_5
    value = template.fields[position]
    return ValidationError("spec", f"field '{names[position][0]}' value '{value}' is not valid ({cause})")


def _hash_fields(template: _Template, hash_key: str) -> tuple[str, ...]:
    """The template's fields with each H replaced by the value croniter picks for `hash_key`."""
    key = hash_key.encode()
    index = _CRONITER_INDEX[len(template.fields) == 6]
    fields = list(template.expr_fields)
    for position in template.hashed:
        try:
            fields[position] = _HASHER.expand("", index[position], fields[position], hash_id=key)
        except (CroniterError, ValueError) as exc:
            raise _field_error(template, position, exc) from exc
    return tuple(fields)


def _checked_rule(template: _Template, fields: tuple[str, ...]) -> _Rule:
    try:
        return _rule(fields)
    except _FieldError as err:
        raise _field_error(template, err.position, err.cause) from err.cause
    except _NeverFiresError:
        raise ValidationError("spec", f"never fires: no date matches '{template.spec}'") from None


_ZONE_PREFIX_RE = re.compile(r"\s*(?:CRON_)?TZ=(\S*)(.*)", re.DOTALL)


def _zone_prefix(spec: str, timezone: str) -> tuple[str, str]:
    """Split ``CRON_TZ=Zone rest`` (robfig/cron and dkron; ``TZ=`` too) into
    the rest and the zone it runs in.

    The spec's zone applies. A job whose own time zone is another zone than
    the default UTC is ambiguous and refused, rather than one of the two
    silently winning; the same zone in both places is fine.
    """
    match = _ZONE_PREFIX_RE.fullmatch(spec)
    if match is None:
        raise ValidationError("spec", "CRON_TZ=Zone must come first, e.g. 'CRON_TZ=Asia/Tokyo 0 9 * * *'")
    name, rest = match.groups()
    if not name:
        raise ValidationError("spec", "CRON_TZ= needs a time zone, e.g. 'CRON_TZ=Asia/Tokyo 0 9 * * *'")
    try:
        zone = validate_timezone(name)
    except ValidationError as exc:
        raise ValidationError("spec", f"CRON_TZ: {exc.message}") from None
    if not rest.strip():
        raise ValidationError("spec", f"needs a schedule after CRON_TZ={name}")
    if timezone not in ("UTC", zone):
        raise ValidationError(
            "spec", f"CRON_TZ={zone} contradicts the job's time zone {timezone}; set the zone in one place only"
        )
    return rest, zone


@functools.lru_cache(maxsize=65536)
def _shared_schedule(template: _Template, timezone: str) -> CronSchedule:
    """One schedule object for all jobs with the same unhashed spec and zone."""
    if template.every is not None:
        return CronSchedule(template.spec, timezone, every=template.every, rule=None)
    return CronSchedule(template.spec, timezone, every=None, rule=_checked_rule(template, template.expr_fields))


class CronSchedule:
    """A parsed schedule in one time zone. Build with :meth:`parse`.

    Instances are immutable and safe to share between threads: parse()
    returns the same instance for the same unhashed spec and zone.
    """

    __slots__ = ("_every", "_rule", "_timeline", "spec", "timezone")

    spec: str
    timezone: str

    def __init__(self, spec: str, timezone: str, *, every: int | None, rule: _Rule | None) -> None:
        """Internal; use :meth:`parse`."""
        self.spec = spec
        self.timezone = timezone
        self._every = every
        self._rule = rule
        self._timeline = _timeline(timezone)

    @classmethod
    def parse(cls, spec: str, timezone: str = "UTC", *, hash_key: str | None = None) -> CronSchedule:
        """Parse and validate `spec` for IANA zone `timezone`.

        `spec` is 5 cron fields (minute hour day-of-month month day-of-week), 6
        fields with seconds FIRST, a macro (@yearly, @annually, @monthly,
        @weekly, @daily, @midnight, @hourly) or ``@every <duration>``.
        `hash_key` (normally the job name) seeds ``H`` fields, so the same job
        always gets the same spread-out time. A ``CRON_TZ=Zone`` (or
        ``TZ=Zone``) prefix sets the zone in the spec itself (see
        :func:`_zone_prefix`); the schedule's `spec` is then the part after it.

        Raises ``ValidationError("spec" | "timezone", ...)`` for bad input,
        including expressions that can never fire (``0 0 31 2 *``).

        Cheap when called again for a spec already seen: the checks are cached
        by spec text, by resolved fields and by field, and an unhashed spec in
        a zone is parsed once and its schedule shared.
        """
        tz = validate_timezone(timezone)
        if not isinstance(spec, str):
            raise ValidationError("spec", f"must be a string, not {type(spec).__name__}")
        if "TZ=" in spec:
            spec, tz = _zone_prefix(spec, tz)
        template = _template(spec)
        if not template.hashed:
            return _shared_schedule(template, tz)
        if not hash_key:
            raise ValidationError("spec", "H needs a job name")
        # Not shared: the resolved fields differ per job name (the _Rule
        # behind them is shared by jobs whose H resolve alike).
        return cls(template.spec, tz, every=None, rule=_checked_rule(template, _hash_fields(template, hash_key)))

    @property
    def is_fixed_time(self) -> bool:
        """True if DST gaps/repeats fire this job once (Vixie "fixed-time" job).

        That is: neither the minute nor the hour field starts with ``*``.
        ``@hourly`` and ``@every`` schedules are not fixed-time.
        """
        return self._rule is not None and self._rule.fixed

    def next_after(self, after_ms: int) -> int | None:
        """First fire instant strictly after `after_ms`, in epoch milliseconds.

        Always a whole second. None if nothing fires within the search
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

    def estimate_next_after(self, after_ms: int) -> tuple[int | None, bool]:
        """A cheap lower bound of ``next_after(after_ms)``, and whether it is exact.

        next_after() costs a few microseconds (a fresh zone's transition
        table more): still too slow to do for 100,000 jobs before a
        dispatcher fires anything. The bound looks at
        the time-of-day fields only, so it may be early but is never late: a
        schedule can be ordered by it and asked for the exact time once it
        comes first. Raises ValueError for instants before 1900.
        """
        if self._rule is None:
            return self.next_after(after_ms), True
        t = int(after_ms // 1000)
        if t < _MIN_S:
            raise ValueError(f"after_ms {after_ms} is before 1900")
        if t > _MAX_S:
            return None, True
        # next_after() returns a match inside the segment holding `t` (its
        # wall time is at least this time-of-day match, its instant is that
        # wall time minus the segment's offset), or an instant at or past the
        # segment's end: the smaller of the two bounds both cases.
        _, end, offset, _ = self._timeline.segment(t)
        wall = self._rule.calendar.next_time_of_day(t + offset)
        return min(wall - offset, end) * 1000, False

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
        rule = self._rule
        assert rule is not None
        matcher = rule.calendar
        timeline = self._timeline
        fixed = rule.fixed
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
