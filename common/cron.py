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

How it is computed: croniter parses and checks the fields (common/cron_spec.py); the wall-clock
matching is common/cron_calendar.py's (croniter's own day_or does not follow
the Vixie day-field rule stated there), and per zone we cache the UTC
instants at which the UTC offset changes
(common/cron_zone.py). Between two transitions the offset is constant, so a wall-clock match
``W`` maps to the instant ``W - offset``; only at a transition do we have to
decide what a match means (the Vixie rules above). Everything is done in
integer seconds; a "wall time" is the naive local time encoded as if it were a
UTC epoch second.
"""

from __future__ import annotations

import functools

from crontrio.common.cron_spec import Rule, Template, checked_rule, hash_fields, spec_template, zone_prefix
from crontrio.common.cron_zone import DAY, MARGIN, timeline, validate_timezone
from crontrio.common.errors import ValidationError

# validate_timezone is re-exported: most callers that parse a spec check a zone too.
__all__ = ["CronSchedule", "validate_timezone"]

# Queries are supported from 1900 to the year 9000 (datetime stops at 9999 and
# the zone table reaches some years past the query).
_MIN_S = -2208988800
_MAX_S = 221845392000
# Give up (None) if the search passes this far beyond the query; the same
# horizon as Calendar's date search. Only reachable by specs whose every match falls in a
# DST gap.
_HORIZON_S = 50 * 366 * DAY
# A match this far past the current segment is reached by a jump.
_JUMP_S = 8 * DAY


@functools.lru_cache(maxsize=65536)
def _shared_schedule(template: Template, timezone: str) -> CronSchedule:
    """One schedule object for all jobs with the same unhashed spec and zone."""
    if template.every is not None:
        return CronSchedule(template.spec, timezone, every=template.every, rule=None)
    return CronSchedule(template.spec, timezone, every=None, rule=checked_rule(template, template.expr_fields))


class CronSchedule:
    """A parsed schedule in one time zone. Build with :meth:`parse`.

    Instances are immutable and safe to share between threads: parse()
    returns the same instance for the same unhashed spec and zone.
    """

    __slots__ = ("_every", "_rule", "_timeline", "spec", "timezone")

    spec: str
    timezone: str

    def __init__(self, spec: str, timezone: str, *, every: int | None, rule: Rule | None) -> None:
        """Internal; use :meth:`parse`."""
        self.spec = spec
        self.timezone = timezone
        self._every = every
        self._rule = rule
        self._timeline = timeline(timezone)

    @classmethod
    def parse(cls, spec: str, timezone: str = "UTC", *, hash_key: str | None = None) -> CronSchedule:
        """Parse and validate `spec` for IANA zone `timezone`.

        `spec` is 5 cron fields (minute hour day-of-month month day-of-week), 6
        fields with seconds FIRST, a macro (@yearly, @annually, @monthly,
        @weekly, @daily, @midnight, @hourly) or ``@every <duration>``.
        `hash_key` (normally the job name) seeds ``H`` fields, so the same job
        always gets the same spread-out time. A ``CRON_TZ=Zone`` (or
        ``TZ=Zone``) prefix sets the zone in the spec itself (see
        :func:`zone_prefix`); the schedule's `spec` is then the part after it.

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
            spec, tz = zone_prefix(spec, tz)
        template = spec_template(spec)
        if not template.hashed:
            return _shared_schedule(template, tz)
        if not hash_key:
            raise ValidationError("spec", "H needs a job name")
        # Not shared: the resolved fields differ per job name (the Rule
        # behind them is shared by jobs whose H resolve alike).
        return cls(template.spec, tz, every=None, rule=checked_rule(template, hash_fields(template, hash_key)))

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
            if inst - end > _JUMP_S and end - anchor >= MARGIN:
                # The match is far away (a sparse spec): every instant from
                # `end` to `j` has a wall time in (q, w), where nothing
                # matches, so skip straight to `j` instead of visiting each
                # transition (and computing each year's zone data) between.
                j = w - offset - 3 * DAY
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
