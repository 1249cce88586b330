"""common.cron against an independent brute-force reference, on random specs.

The reference knows nothing of common.cron or of croniter's matching: it
reads each field from the rules of crontab(5) as cronie implements them,
plus the documented extensions (names, L, nL, n#k, nW, 6 fields with seconds
first), and walks REAL instants minute by minute (second by second for 6
fields), asking zoneinfo for each instant's wall time. The day fields
combine as in cronie: if either one begins with '*' (or '?') both must
match, else either suffices. The DST rules are the README's: a fixed-time
job (neither minute nor hour begins with '*') fires at the first instant
after a gap that skipped a matching wall time and only at the first copy of
a repeated one; any other job fires at every real instant whose wall time
matches.

Walking every minute of years is too slow for many specs, so the walk skips
the rest of a wall-clock day, hour or minute that cannot match, but only as
far as zoneinfo shows the same UTC offset at both ends of the skip (so the
skipped instants all show wall times inside that non-matching block).

The only thing taken from croniter is the value of an H field (defined as
croniter's own hash; test_cron checks that against croniter itself).
"""

from __future__ import annotations

import calendar
import functools
import random
import re
from datetime import UTC, date, datetime
from itertools import chain
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from crontrio.common.cron import CronSchedule

_MONTHS = {m: i + 1 for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}


def _value(token: str, names: dict[str, int]) -> int:
    return int(token) if token.isdigit() else names[token.lower()]


def _expand(text: str, lo: int, hi: int, names: dict[str, int] | None = None) -> set[int]:
    """crontab(5): a list of '*', n, a-b, each optionally /step; a-b with
    a > b wraps around (an extension); n/step means n-hi/step."""
    names = names or {}
    out: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = int(step_text) if slash else 1
        if base in ("*", "?"):
            a, b = lo, hi
        elif "-" in base:
            x, y = base.split("-")
            a, b = _value(x, names), _value(y, names)
        else:
            a = _value(base, names)
            b = hi if slash else a
        if a <= b:
            out.update(range(a, b + 1, step))
        else:
            out.update(list(chain(range(a, hi + 1), range(lo, b + 1)))[::step])
    return out


_LAST_DOW = re.compile(r"(?i)([0-7]|[a-z]{3})l|l([0-7])")
_NTH_DOW = re.compile(r"(?i)([0-7]|[a-z]{3})#([1-5])")
_NEAREST = re.compile(r"(?i)([0-9]+)w|w([0-9]+)")


class Reference:
    """One cron spec, matched field by field against a wall-clock datetime."""

    def __init__(self, spec: str, hash_key: str = "") -> None:
        fields = spec.split()
        self.with_seconds = len(fields) == 6
        if not self.with_seconds:
            fields = ["0", *fields]
        hashed = self._hash_values(fields, hash_key)
        second, minute, hour, dom, month, dow = fields
        self.seconds = sorted(hashed.get(0) or _expand(second, 0, 59))
        self.minutes = sorted(hashed.get(1) or _expand(minute, 0, 59))
        self.hours = sorted(hashed.get(2) or _expand(hour, 0, 23))
        self.months = hashed.get(4) or _expand(month, 1, 12, _MONTHS)
        self.fixed = not minute.startswith("*") and not hour.startswith("*")
        # The day fields: cronie's DOM_STAR / DOW_STAR flags.
        self.either = dom[0] not in "*?" and dow[0] not in "*?"
        self.dom: set[int] = set()
        self.dom_last = False
        self.nearest: int | None = None
        if 3 in hashed:
            self.dom = hashed[3]
        elif m := _NEAREST.fullmatch(dom):
            self.nearest = int(m.group(1) or m.group(2))
        else:
            for item in dom.split(","):
                if item.lower() == "l":
                    self.dom_last = True
                else:
                    self.dom |= _expand(item, 1, 31)
        self.dow: set[int] = set()
        self.dow_last: set[int] = set()
        self.dow_nth: set[tuple[int, int]] = set()
        if 5 in hashed:
            self.dow = hashed[5]
        else:
            for item in dow.split(","):
                if m := _LAST_DOW.fullmatch(item):
                    self.dow_last.add(_value(m.group(1) or m.group(2), _DAYS) % 7)
                elif m := _NTH_DOW.fullmatch(item):
                    self.dow_nth.add((_value(m.group(1), _DAYS) % 7, int(m.group(2))))
                else:
                    self.dow |= {v % 7 for v in _expand(item, 0, 7, _DAYS)}
        self._dates: dict[date, bool] = {}

    @staticmethod
    def _hash_values(fields: list[str], hash_key: str) -> dict[int, set[int]]:
        """Values of the H fields (index in second..day-of-week order): croniter's hash."""
        spots = [i for i, f in enumerate(fields) if f.upper().startswith("H")]
        if not spots:
            return {}
        # A bare H in day-of-month keeps to days every month has (documented).
        trial = ["H(1-28)" if i == 3 and f.upper() == "H" else (f if i in spots else "*") for i, f in enumerate(fields)]
        expanded, _ = croniter.expand(" ".join(trial), hash_id=hash_key.encode(), second_at_beginning=True)
        # croniter's order: minute, hour, day, month, day-of-week, second.
        order = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 0: 5}
        return {i: {int(v) for v in expanded[order[i]]} for i in spots}

    def date_matches(self, day: date) -> bool:
        found = self._dates.get(day)
        if found is None:
            last = calendar.monthrange(day.year, day.month)[1]
            weekday = day.isoweekday() % 7  # 0 = Sunday
            dom_ok = (
                day.day in self.dom
                or (self.dom_last and day.day == last)
                or day.day == self._nearest_weekday(day.year, day.month, last)
            )
            dow_ok = (
                weekday in self.dow
                or (weekday, (day.day - 1) // 7 + 1) in self.dow_nth
                or (weekday in self.dow_last and day.day + 7 > last)
            )
            found = (dom_ok or dow_ok) if self.either else (dom_ok and dow_ok)
            found = found and day.month in self.months
            self._dates[day] = found
        return found

    def _nearest_weekday(self, year: int, month: int, last: int) -> int | None:
        """'nW': day n, or the Monday-to-Friday day nearest to it in the month."""
        if self.nearest is None:
            return None
        n = min(self.nearest, last)
        candidates = [d for d in range(max(1, n - 2), min(last, n + 2) + 1) if date(year, month, d).isoweekday() <= 5]
        return min(candidates, key=lambda d: (abs(d - n), d))

    def matches(self, wall: datetime) -> bool:
        return (
            wall.second in self.seconds
            and wall.minute in self.minutes
            and wall.hour in self.hours
            and self.date_matches(wall.date())
        )

    def fires(self, tz: str, start: int, end: int) -> list[int]:
        """Every fire instant (epoch s) in [start, end)."""
        z = ZoneInfo(tz)
        step = 1 if self.with_seconds else 60
        out = []
        t = start - start % step
        while t < end:
            wall = datetime.fromtimestamp(t, z)
            fire = self.matches(wall) and not (self.fixed and wall.fold)
            if not fire and self.fixed:
                before = datetime.fromtimestamp(t - step, z)
                # Wall times skipped by a spring-forward gap ending at t.
                fire = any(
                    self.matches(datetime.fromtimestamp(w, UTC))
                    for w in range(_wall_epoch(before) + step, _wall_epoch(wall), step)
                )
            if fire and t >= start:
                out.append(t)
            t = self._skip(t, wall, z, step)
        return out

    def _skip(self, t: int, wall: datetime, z: ZoneInfo, step: int) -> int:
        """The next instant to look at: past the wall times up to the next one
        whose date, hour, minute (and second) could match, when no offset
        change lies in between."""
        second_of_day = wall.hour * 3600 + wall.minute * 60 + wall.second
        if not self.date_matches(wall.date()):
            target = 86400
        elif wall.hour not in self.hours:
            target = min((h * 3600 for h in self.hours if h > wall.hour), default=86400)
        elif wall.minute not in self.minutes:
            later = [m for m in self.minutes if m > wall.minute]
            target = wall.hour * 3600 + (later[0] * 60 if later else 3600)
        elif wall.second not in self.seconds:
            later = [s for s in self.seconds if s > wall.second]
            target = second_of_day - wall.second + (later[0] if later else 60)
        else:
            return t + step
        # Near an offset change, skip less: halve until the skip stays
        # within one offset (those instants are still in the block).
        block = target - second_of_day
        while block > step:
            if datetime.fromtimestamp(t + block - step, z).utcoffset() == wall.utcoffset():
                return t + block
            block = block // 2 // step * step
        return t + step


def _wall_epoch(aware: datetime) -> int:
    """A wall time as epoch seconds, as if it were UTC."""
    return int(aware.replace(tzinfo=UTC).timestamp())


def collect(sched: CronSchedule, start: int, end: int) -> list[int]:
    out: list[int] = []
    t: int | None = start * 1000 - 1
    while (t := sched.next_after(t)) is not None and t < end * 1000:
        out.append(t // 1000)
    return out


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


# ---------------------------------------------------------------------------
# The reference itself, on cases worked out by hand
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "dates"),
    [
        (
            "0 9 1-7 * 5#2",
            ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05", "2026-01-06", "2026-01-07", "2026-01-09"],
        ),
        ("0 9 */10 * 4", ["2026-01-01"]),  # starred: AND (1, 11, 21, 31; only the 1st is a Thursday)
        ("0 9 1,4 * */3", ["2026-01-04"]),  # starred the other way (Sun, Wed, Sat; the 4th is a Sunday)
        ("0 9 L * 6L", ["2026-01-31"]),  # Saturday the 31st: both at once
        ("0 9 13 * 5", ["2026-01-02", "2026-01-09", "2026-01-13", "2026-01-16", "2026-01-23", "2026-01-30"]),
        ("0 9 * * 0#1,7#3", ["2026-01-04", "2026-01-18"]),
        ("0 9 31W * *", ["2026-01-30"]),  # Saturday the 31st -> Friday
    ],
)
def test_reference_on_hand_worked_january_2026(spec: str, dates: list[str]) -> None:
    got = Reference(spec).fires("UTC", epoch("2026-01-01T00:00:00"), epoch("2026-02-01T00:00:00"))
    assert [datetime.fromtimestamp(t, UTC).date().isoformat() for t in got] == dates


def test_reference_dst_rules_new_york() -> None:
    start, end = epoch("2026-03-07T00:00:00"), epoch("2026-03-10T00:00:00")
    # 02:30 is skipped on Sunday 8 March: the fixed-time job fires at 03:00 EDT (07:00Z).
    assert [t - start for t in Reference("30 2 * * *").fires("America/New_York", start, end)] == [
        epoch("2026-03-07T07:30:00") - start,
        epoch("2026-03-08T07:00:00") - start,
        epoch("2026-03-09T06:30:00") - start,
    ]
    start, end = epoch("2026-11-01T04:00:00"), epoch("2026-11-01T08:00:00")
    # 01:30 shows twice on 1 November: a fixed-time job fires at the first copy only,
    assert Reference("30 1 * * *").fires("America/New_York", start, end) == [epoch("2026-11-01T05:30:00")]
    # a wildcard job at both.
    assert Reference("30 * * * *").fires("America/New_York", start, end) == [
        epoch("2026-11-01T04:30:00"),
        epoch("2026-11-01T05:30:00"),
        epoch("2026-11-01T06:30:00"),
        epoch("2026-11-01T07:30:00"),
    ]


# ---------------------------------------------------------------------------
# common.cron against the reference
# ---------------------------------------------------------------------------

# 2028 is a leap year; the span holds every month length, both of 2028's DST
# transitions in each hemisphere and the 2029 ones in March/April.
LONG_SPAN = (epoch("2027-12-01T00:00:00"), epoch("2029-04-10T00:00:00"))
ZONES = ["UTC", "America/New_York", "Australia/Lord_Howe", "Europe/London", "America/Santiago", "Pacific/Chatham", "Asia/Kolkata"]


@functools.cache
def _transitions(tz: str, year: int) -> tuple[int, ...]:
    """Instants in `year` at which zoneinfo changes the zone's UTC offset."""
    z = ZoneInfo(tz)
    t, end = epoch(f"{year}-01-01T00:00:00"), epoch(f"{year + 1}-01-01T00:00:00")
    found = []
    while t < end:
        if datetime.fromtimestamp(t, z).utcoffset() != datetime.fromtimestamp(t + 1800, z).utcoffset():
            lo, hi = t, t + 1800
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if datetime.fromtimestamp(mid, z).utcoffset() == datetime.fromtimestamp(lo, z).utcoffset():
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
        t += 1800
    return tuple(found)


def _spans(tz: str, ref: Reference) -> list[tuple[int, int]]:
    """The long span for a spec with few firings a day; else windows around
    the zone's 2028 transitions (hours wide for 6 fields, days for 5)."""
    per_day = len(ref.seconds) * len(ref.minutes) * len(ref.hours)
    if per_day <= 8:
        return [LONG_SPAN]
    margin = 3 * 3600 if per_day > 1500 else 2 * 86400
    windows = [(t - margin, t + margin) for t in _transitions(tz, 2028)]
    return windows or [(epoch("2028-02-26T00:00:00"), epoch("2028-03-03T00:00:00"))]


def _when(t: int, tz: str) -> str:
    return f"{datetime.fromtimestamp(t, UTC):%Y-%m-%d %H:%M:%SZ} ({datetime.fromtimestamp(t, ZoneInfo(tz)):%a %d %b %H:%M:%S %Z})"


def _check(spec: str, tz: str, name: str = "oracle-job") -> bool:
    """Compare common.cron and the reference on `spec`; False if common.cron refuses it."""
    ref = Reference(spec, name)
    try:
        sched = CronSchedule.parse(spec, tz, hash_key=name)
    except ValueError as exc:
        if "never fires" not in str(exc):
            return False
        # Refused as never firing: no date may match in 28 years and more.
        first = date(2027, 1, 1).toordinal()
        assert not any(ref.date_matches(date.fromordinal(first + i)) for i in range(366 * 30)), spec
        return True
    assert sched.is_fixed_time == ref.fixed, spec
    for start, end in _spans(tz, ref):
        ours, theirs = collect(sched, start, end), ref.fires(tz, start, end)
        if ours != theirs:
            extra = sorted(set(ours) - set(theirs))[:3]
            missing = sorted(set(theirs) - set(ours))[:3]
            pytest.fail(
                f"{spec!r} in {tz} (H key {name!r}): fires at {[_when(t, tz) for t in extra]} "
                f"but should not; misses {[_when(t, tz) for t in missing]}"
            )
    return True


# Every day-field form, on each side, against each of the other side's forms.
DOM_FORMS = ["*", "?", "*/2", "*/10", "1-7", "13", "L", "1,L", "10-20/5", "5/10", "15W", "28-3", "H"]
DOW_FORMS = ["*", "?", "*/2", "*/3", "5", "7", "MON-FRI", "FRI-MON", "5L", "FRIL", "L6", "5#2", "FRI#2", "0#1,7#3", "5#2,L1", "H"]


@pytest.mark.parametrize("tz", ["America/New_York", "Australia/Lord_Howe", "UTC"])
@pytest.mark.parametrize("dom", DOM_FORMS)
def test_every_day_field_form_both_ways(dom: str, tz: str) -> None:
    # 02:15 falls in New York's and Lord Howe's spring-forward gaps; 01:45
    # is repeated by both fall-backs; 00:30 in a starred hour is a wildcard.
    for time_fields in ("15 2", "45 1", "30 */2"):
        for dow in DOW_FORMS:
            assert _check(f"{time_fields} {dom} * {dow}", tz), f"refused: {time_fields} {dom} * {dow}"
    for month in ("FEB", "*/3", "NOV-MAR"):
        assert _check(f"15 2 {dom} {month} 5#2", tz)


def _pick(rng: random.Random, *choices: str) -> str:
    return rng.choice(choices)


def _random_spec(rng: random.Random) -> str:
    n = rng.randrange
    minute = _pick(
        rng,
        str(n(60)),
        f"{n(30)},{n(30, 60)}",
        f"{n(50)}-{n(50, 60)}",
        f"{n(10)}-59/{n(10, 31)}",
        "*/15",
        "*/20",
        "H",
        "H(0-29)",
        "*",
        f"{n(60)}/20",
        "0",
    )
    hour = _pick(
        rng,
        str(n(24)),
        f"{n(4)},{n(4, 24)}",
        f"{n(4)}-{n(4)}",
        f"{n(1, 3)}-{n(3, 6)}",
        "*/6",
        "*",
        "H",
        "H(0-3)",
        "2",
        "1",
        "23",
        "22-2",
    )
    dom = _pick(
        rng,
        *DOM_FORMS,
        str(n(1, 32)),
        f"{n(1, 16)}-{n(16, 32)}",
        f"*/{n(2, 16)}",
        "29",
        "31",
        f"{n(1, 32)}W",
        "L",
        f"{n(1, 29)},L",
    )
    month = _pick(rng, "*", "*", "*", f"*/{n(2, 5)}", "FEB", "feb,aug", "jan-jun", "NOV-FEB", str(n(1, 13)), "2,3,10,11")
    days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
    dow = _pick(
        rng,
        *DOW_FORMS,
        str(n(8)),
        f"{n(8)}L",
        f"{rng.choice(days)}#{n(1, 6)}",
        f"{n(7)}#{n(1, 5)},{n(7)}#{n(1, 5)}",
        f"{rng.choice(days)}-{rng.choice(days)}",
        f"*/{n(2, 8)}",
        f"{n(7)},{n(7)},{n(7)}",
        f"L{n(8)}",
        f"{n(7)}#{n(1, 5)},L{n(7)}",
    )
    fields = [minute, hour, dom, month, dow]
    if rng.random() < 0.25:
        fields.insert(0, _pick(rng, str(n(60)), "*/15", "*/20", f"{n(30)},{n(30, 60)}", "H", "0", "*"))
    return " ".join(fields)


@pytest.mark.parametrize("tz", ZONES)
def test_random_specs_match_the_reference(tz: str) -> None:
    rng = random.Random(f"cron-oracle-{tz}")  # seeded: the same specs every run
    checked = 0
    for i in range(60):
        spec = _random_spec(rng)
        checked += _check(spec, tz, name=f"job-{i}")
    assert checked >= 50  # a few random combinations are refused (e.g. 5#2 mixed with plain days)
