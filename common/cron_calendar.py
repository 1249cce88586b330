"""Wall-clock matching of expanded cron fields: "the first matching wall time after w".

croniter parses and validates the fields (common/cron_spec.py); the matching is
done here, because croniter's own combination of the two day fields breaks
the documented Vixie cron rule (see :class:`DayRule`) and is slow (~50 us a
call against a few us here).

A "wall time" is a naive local time encoded as if it were a UTC epoch second
(the convention of common/cron.py); a "day" is a wall time // 86400.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable
from datetime import date

__all__ = ["Calendar", "DayRule"]

_DAY = 86400
_HOUR = 3600
# Proleptic Gregorian ordinal of 1970-01-01: day 0 of the wall clock.
_EPOCH_ORD = date(1970, 1, 1).toordinal()
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Give up after this many months without a matching date (croniter's horizon
# was 50 years too). Only specs firing rarer than that are affected, e.g. the
# 29th of February on a Monday with an AND of the day fields.
_SEARCH_MONTHS = 50 * 12 + 1
_LAST_YEAR = 9999  # datetime's limit

# croniter's nearest-weekday form in day-of-month ("15W", "W15"): it must be
# the whole field, and croniter expands it to the bare day number.
_NEAREST_RE = re.compile(r"([0-9]+)w|w([0-9]+)", re.IGNORECASE)


def _month_length(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_DAYS[month]


class DayRule:
    """Which days of a month the day-of-month and day-of-week fields select.

    The rule (crontab(5), Vixie cron, cronie): a day field whose text begins
    with ``*`` (or ``?``, croniter's synonym) is "starred"; if either field
    is starred a day must match both fields; if neither is, matching either
    one suffices. ``*/2`` is starred; ``1-31``, ``L``, ``5L``, ``5#2``,
    ``15W`` and a resolved ``H`` are not. The forms themselves:

    * day-of-month: numbers, ``L`` (the month's last day), ``nW`` (the
      weekday nearest to day n, within the month);
    * day-of-week: numbers (0 and 7 are Sunday), ``nL`` (the last weekday n
      of the month), ``n#k`` (the k-th weekday n of the month).

    Whether a day matches depends only on the month's length and the weekday
    of its 1st, so the matching days are computed once per such month shape
    (at most 4 x 7) and kept. Immutable apart from that cache.
    """

    __slots__ = ("_dom", "_dom_last", "_dow", "_either", "_nearest", "_nth", "_shapes", "_some_date", "every")

    def __init__(
        self,
        dom_text: str,
        dom_values: Iterable[int | str],
        dow_text: str,
        dow_values: Iterable[int | str],
        nth: Iterable[tuple[int, Iterable[int | str]]],
    ) -> None:
        dom_values = tuple(dom_values)
        dow_values = tuple(dow_values)
        self._either = dom_text[:1] not in ("*", "?") and dow_text[:1] not in ("*", "?")
        self._dom = frozenset(range(1, 32)) if "*" in dom_values else frozenset(v for v in dom_values if isinstance(v, int))
        self._dom_last = "l" in dom_values
        m = _NEAREST_RE.fullmatch(dom_text)
        self._nearest = int(m.group(1) or m.group(2)) if m else None
        if self._nearest is not None:
            self._dom = frozenset()  # croniter lists the day itself; W moves it
        # croniter keys nth entries by weekday (7 already folded to 0); a
        # weekday listed with nth entries matches only on those.
        self._nth = {int(wd) % 7: frozenset(ks) for wd, ks in nth}
        if "*" in dow_values:
            self._dow = frozenset(range(7))
        else:
            self._dow = frozenset(v % 7 for v in dow_values if isinstance(v, int) and v % 7 not in self._nth)
        self._shapes: dict[int, tuple[int, ...]] = {}
        self._some_date: dict[tuple[bool, ...], bool] = {}
        # Whether every day matches (the common '* *'), so that dates need no look-up.
        self.every = (self._either is False and "*" in dom_values and "*" in dow_values) or all(
            len(self.days(ndays, first)) == ndays for ndays in (28, 29, 30, 31) for first in range(7)
        )

    def days(self, ndays: int, first_weekday: int) -> tuple[int, ...]:
        """The matching days, ascending, of a month of `ndays` days whose 1st
        is weekday `first_weekday` (0 = Sunday)."""
        key = ndays * 7 + first_weekday
        found = self._shapes.get(key)
        if found is None:
            nearest = self._nearest_day(ndays, first_weekday)
            found = self._shapes[key] = tuple(
                d for d in range(1, ndays + 1) if self._matches(d, ndays, (first_weekday + d - 1) % 7, nearest)
            )
        return found

    def matches_some_date(self, months: tuple[bool, ...]) -> bool:
        """Whether any date of the months flagged in `months` (indexed 1-12)
        matches (every month shape occurs, in leap and common years alike,
        within any 28 years of 1901-2099). Kept per months: the rules of
        tens of thousands of specs share a few dozen day rules."""
        found = self._some_date.get(months)
        if found is None:
            found = self._some_date[months] = any(
                self.days(n, first)
                for month in range(1, 13)
                if months[month]
                for n in ((28, 29) if month == 2 else (_MONTH_DAYS[month],))
                for first in range(7)
            )
        return found

    def _matches(self, d: int, ndays: int, weekday: int, nearest: int | None) -> bool:
        dom_ok = d in self._dom or (self._dom_last and d == ndays) or d == nearest
        dow_ok = weekday in self._dow
        ks = self._nth.get(weekday)
        if ks is not None and not dow_ok:
            dow_ok = (d - 1) // 7 + 1 in ks or ("l" in ks and d + 7 > ndays)
        return (dom_ok or dow_ok) if self._either else (dom_ok and dow_ok)

    def _nearest_day(self, ndays: int, first_weekday: int) -> int | None:
        """Day of ``nW`` in this month: day n (or the last day, if shorter) if
        it is Monday to Friday, else the nearest such day within the month."""
        if self._nearest is None:
            return None
        day = min(self._nearest, ndays)
        weekday = (first_weekday + day - 1) % 7
        if weekday == 6:  # Saturday: the Friday before, or Monday the 3rd
            return day - 1 if day > 1 else day + 2
        if weekday == 0:  # Sunday: the Monday after, or the Friday before the end
            return day + 1 if day < ndays else day - 2
        return day


def _all_values(values: Iterable[int | str], size: int, first: int = 0) -> tuple[int, ...]:
    values = tuple(values)
    if "*" in values:
        return tuple(range(first, first + size))
    return tuple(sorted({int(v) for v in values}))


@functools.lru_cache(maxsize=4096)
def _month_flags(months: tuple[int | str, ...]) -> tuple[bool, ...]:
    """Whether each month (index 1-12; 0 unused) is among `months`. Cached:
    a dispatcher builds tens of thousands of calendars from a few month fields."""
    month_values = _all_values(months, 12, 1)
    return tuple(m in month_values for m in range(13))


class Calendar:
    """Expanded cron fields, matched against wall-clock time.

    Stateless and immutable (the DayRule's cache aside): safe to share
    between threads and schedules.
    """

    __slots__ = ("_first_tod", "_months", "days", "hours", "minutes", "seconds")

    def __init__(
        self,
        seconds: tuple[int, ...],
        minutes: tuple[int, ...],
        hours: tuple[int, ...],
        months: Iterable[int | str],
        days: DayRule,
    ) -> None:
        self.seconds = seconds
        self.minutes = minutes
        self.hours = hours
        self._months = _month_flags(months if isinstance(months, tuple) else tuple(months))
        self.days = days
        self._first_tod = hours[0] * _HOUR + minutes[0] * 60 + seconds[0]

    def fires_on_some_date(self) -> bool:
        """Whether any calendar date matches (see DayRule.matches_some_date)."""
        return self.days.matches_some_date(self._months)

    def time_of_day_from(self, second_of_day: int) -> int | None:
        """First matching second of the day at or after `second_of_day`, or None."""
        hour, rest = divmod(second_of_day, _HOUR)
        minute, second = divmod(rest, 60)
        hours, minutes, seconds = self.hours, self.minutes, self.seconds
        i = bisect.bisect_left(hours, hour)
        if i < len(hours) and hours[i] == hour:
            j = bisect.bisect_left(minutes, minute)
            if j < len(minutes) and minutes[j] == minute:
                k = bisect.bisect_left(seconds, second)
                if k < len(seconds):
                    return hour * _HOUR + minute * 60 + seconds[k]
                j += 1
            if j < len(minutes):
                return hour * _HOUR + minutes[j] * 60 + seconds[0]
            i += 1
        if i < len(hours):
            return hours[i] * _HOUR + minutes[0] * 60 + seconds[0]
        return None

    def next_time_of_day(self, wall: int) -> int:
        """First wall time after `wall` whose hour, minute and second match.

        Dates are ignored, so this is a lower bound of :meth:`next_wall`:
        exact for daily specs, early for the others.
        """
        day, second_of_day = divmod(wall + 1, _DAY)
        tod = self.time_of_day_from(second_of_day)
        return day * _DAY + (self._first_tod + _DAY if tod is None else tod)

    def next_wall(self, wall: int) -> int | None:
        """First matching wall time strictly after `wall`; None if no date
        matches within the next 50 years or before year 10000."""
        t = wall + 1
        day, second_of_day = divmod(t, _DAY)
        found = self._next_day(day)
        if found == day:
            tod = self.time_of_day_from(second_of_day)
            if tod is not None:
                return t - second_of_day + tod
            found = self._next_day(day + 1)
        return None if found is None else found * _DAY + self._first_tod

    def _next_day(self, day: int) -> int | None:
        """First day at or after `day` whose date matches the month and day fields."""
        try:
            today = date.fromordinal(day + _EPOCH_ORD)
        except (ValueError, OverflowError):
            return None
        months, rule = self._months, self.days
        year, month, dom = today.year, today.month, today.day
        first = day - dom + 1  # the 1st of this month
        for _ in range(_SEARCH_MONTHS):
            ndays = _month_length(year, month)
            if months[month]:
                if rule.every:
                    return first + dom - 1
                matching = rule.days(ndays, (first + _EPOCH_ORD) % 7)
                i = bisect.bisect_left(matching, dom)
                if i < len(matching):
                    return first + matching[i] - 1
            first += ndays
            dom = 1
            month += 1
            if month > 12:
                month = 1
                year += 1
                if year > _LAST_YEAR:
                    return None
        return None
