"""Tests for common.cron: field forms, validation, and DST semantics.

Expected fire times are written by hand as literal UTC instants; the DST
transition instants they rely on are checked against zoneinfo in
test_transition_instants, so a wrong assumption there fails loudly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from crontrio.common import cron
from crontrio.common.cron import CronSchedule, validate_timezone
from crontrio.common.errors import ValidationError


def ms(iso: str) -> int:
    """'2026-03-08T07:00:00Z' -> epoch milliseconds."""
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()) * 1000


def iso(epoch_ms: int) -> str:
    assert epoch_ms % 1000 == 0, "fire times must be whole seconds"
    return datetime.fromtimestamp(epoch_ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def collect(sched: CronSchedule, start: int, end: int) -> list[int]:
    """All fire instants (epoch s) in [start, end), by chaining next_after."""
    out: list[int] = []
    t: int | None = start * 1000 - 1
    while t is not None:
        t = sched.next_after(t)
        if t is None or t >= end * 1000:
            break
        out.append(t // 1000)
    return out


def fires(spec: str, after: str, count: int, tz: str = "UTC", **kw: str) -> list[str]:
    """The next `count` fire times strictly after `after`, chained through
    next_after (so chaining itself is exercised everywhere)."""
    sched = CronSchedule.parse(spec, tz, **kw)
    out = []
    t = ms(after)
    for _ in range(count):
        nxt = sched.next_after(t)
        assert nxt is not None
        assert nxt > t
        out.append(iso(nxt))
        t = nxt
    assert out == [iso(x) for x in sched.next_n(ms(after), count)]
    return out


# ---------------------------------------------------------------------------
# Field forms (UTC; 2026-01-01 is a Thursday)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "after", "expected"), [
    # 5 fields, steps; strictly after the start.
    ("*/15 * * * *", "2026-01-01T00:00:00Z",
     ["2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z", "2026-01-01T00:45:00Z",
      "2026-01-01T01:00:00Z"]),
    # 6 fields, seconds first.
    ("*/20 * * * * *", "2026-01-01T00:00:00Z",
     ["2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z", "2026-01-01T00:01:00Z"]),
    ("30 0 12 * * *", "2026-01-01T00:00:00Z",
     ["2026-01-01T12:00:30Z", "2026-01-02T12:00:30Z"]),
    ("0 30 2 * * *", "2026-01-01T03:00:00Z",
     ["2026-01-02T02:30:00Z", "2026-01-03T02:30:00Z"]),
    # Ranges with steps, start/step.
    ("10-20/5 8-9 * * *", "2026-01-01T00:00:00Z",
     ["2026-01-01T08:10:00Z", "2026-01-01T08:15:00Z", "2026-01-01T08:20:00Z",
      "2026-01-01T09:10:00Z", "2026-01-01T09:15:00Z", "2026-01-01T09:20:00Z",
      "2026-01-02T08:10:00Z"]),
    ("5/20 0 * * *", "2026-01-01T00:00:00Z",
     ["2026-01-01T00:05:00Z", "2026-01-01T00:25:00Z", "2026-01-01T00:45:00Z",
      "2026-01-02T00:05:00Z"]),
    # An equal range is that single value (croniter alone reads it as '*').
    ("5-5 * * * *", "2026-01-01T00:00:00Z",
     ["2026-01-01T00:05:00Z", "2026-01-01T01:05:00Z"]),
    # Weekday names and ranges.
    ("0 9 * * MON-FRI", "2026-01-01T12:00:00Z",
     ["2026-01-02T09:00:00Z", "2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z"]),
    ("0 9 * * sat,sun", "2026-01-01T12:00:00Z",
     ["2026-01-03T09:00:00Z", "2026-01-04T09:00:00Z", "2026-01-10T09:00:00Z"]),
    ("0 9 * * FRI-MON", "2026-01-01T12:00:00Z",  # wrapping range
     ["2026-01-02T09:00:00Z", "2026-01-03T09:00:00Z", "2026-01-04T09:00:00Z",
      "2026-01-05T09:00:00Z", "2026-01-09T09:00:00Z"]),
    ("0 0 * * 7", "2026-01-01T00:00:00Z",  # 7 is Sunday too
     ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"]),
    # Month names.
    ("0 0 1 JAN,JUL *", "2026-01-01T00:00:00Z",
     ["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"]),
    ("0 0 1 jun-aug *", "2026-01-01T00:00:00Z",
     ["2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z", "2026-08-01T00:00:00Z",
      "2027-06-01T00:00:00Z"]),
    # L = last day of the month (leap year included).
    ("0 0 L * *", "2026-01-15T00:00:00Z",
     ["2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z",
      "2026-04-30T00:00:00Z"]),
    ("0 0 L 2 *", "2027-03-01T00:00:00Z",
     ["2028-02-29T00:00:00Z", "2029-02-28T00:00:00Z"]),
    # 5L = last Friday of the month; L5 and FRIL are the same.
    ("0 0 * * 5L", "2026-01-01T00:00:00Z",
     ["2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z", "2026-03-27T00:00:00Z"]),
    ("0 0 * * FRIL", "2026-01-01T00:00:00Z",
     ["2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z", "2026-03-27T00:00:00Z"]),
    ("0 0 * * L5", "2026-01-01T00:00:00Z",
     ["2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z", "2026-03-27T00:00:00Z"]),
    # n#k = k-th weekday of the month.
    ("0 0 * * 1#2", "2026-01-01T00:00:00Z",
     ["2026-01-12T00:00:00Z", "2026-02-09T00:00:00Z", "2026-03-09T00:00:00Z"]),
    ("0 0 * * MON#1", "2026-01-01T00:00:00Z",
     ["2026-01-05T00:00:00Z", "2026-02-02T00:00:00Z", "2026-03-02T00:00:00Z"]),
    # Day-of-month and day-of-week both restricted: OR (Vixie), not AND.
    ("0 0 1 * 1", "2026-01-01T00:00:00Z",
     ["2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z", "2026-01-19T00:00:00Z",
      "2026-01-26T00:00:00Z", "2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z"]),
    # ... for every form: days 1-7 or the 2nd Friday (9 Jan, 13 Feb) ...
    ("0 9 1-7 * 5#2", "2026-01-07T12:00:00Z",
     ["2026-01-09T09:00:00Z", "2026-02-01T09:00:00Z", "2026-02-02T09:00:00Z", "2026-02-03T09:00:00Z",
      "2026-02-04T09:00:00Z", "2026-02-05T09:00:00Z", "2026-02-06T09:00:00Z", "2026-02-07T09:00:00Z",
      "2026-02-13T09:00:00Z"]),
    # ... the last day or the last Saturday (28 Mar, 25 Apr) ...
    ("0 9 L * 6L", "2026-03-01T00:00:00Z",
     ["2026-03-28T09:00:00Z", "2026-03-31T09:00:00Z", "2026-04-25T09:00:00Z", "2026-04-30T09:00:00Z"]),
    # ... the 10th, 15th and 20th or the 2nd Friday.
    ("0 9 10-20/5 * 5#2", "2026-01-01T00:00:00Z",
     ["2026-01-09T09:00:00Z", "2026-01-10T09:00:00Z", "2026-01-15T09:00:00Z", "2026-01-20T09:00:00Z",
      "2026-02-10T09:00:00Z", "2026-02-13T09:00:00Z", "2026-02-15T09:00:00Z"]),
    # A day field beginning with '*' (a step too) is not a restriction:
    # both fields must match. Odd days that are Mondays ...
    ("0 9 */2 * 1", "2026-01-01T00:00:00Z",
     ["2026-01-05T09:00:00Z", "2026-01-19T09:00:00Z", "2026-02-09T09:00:00Z", "2026-02-23T09:00:00Z"]),
    # ... and the 1st when a Sunday, Tuesday, Thursday or Saturday.
    ("0 9 1 * */2", "2026-01-01T00:00:00Z",
     ["2026-01-01T09:00:00Z", "2026-02-01T09:00:00Z", "2026-03-01T09:00:00Z", "2026-08-01T09:00:00Z"]),
    # Only one restricted: that one alone.
    ("0 0 13 * *", "2026-01-01T00:00:00Z",
     ["2026-01-13T00:00:00Z", "2026-02-13T00:00:00Z"]),
    # Feb 29 only exists in leap years.
    ("0 0 29 2 *", "2026-01-01T00:00:00Z",
     ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]),
])
def test_field_forms(spec: str, after: str, expected: list[str]) -> None:
    assert fires(spec, after, len(expected)) == expected


@pytest.mark.parametrize(("macro", "expected"), [
    ("@yearly", ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
    ("@annually", ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
    ("@monthly", ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"]),
    ("@weekly", ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"]),
    ("@daily", ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]),
    ("@midnight", ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]),
    ("@hourly", ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]),
    ("@DAILY", ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]),
])
def test_macros(macro: str, expected: list[str]) -> None:
    assert fires(macro, "2026-01-01T00:00:00Z", 2) == expected


@pytest.mark.parametrize(("spec", "after", "expected"), [
    ("@every 30s", "2026-01-01T00:00:10Z",
     ["2026-01-01T00:00:30Z", "2026-01-01T00:01:00Z", "2026-01-01T00:01:30Z"]),
    # 5400 s divides 2026-01-01T00:00Z (1767225600) exactly.
    ("@every 1h30m", "2026-01-01T00:00:00Z",
     ["2026-01-01T01:30:00Z", "2026-01-01T03:00:00Z"]),
    # 4020 s: 1767225600 / 4020 = 439608.36, so the first multiple after is
    # 439609 * 4020 = 1767228180 = 00:43:00Z, then +67 min.
    ("@every 1h7m", "2026-01-01T00:00:00Z",
     ["2026-01-01T00:43:00Z", "2026-01-01T01:50:00Z", "2026-01-01T02:57:00Z"]),
    ("@every 1d", "2026-01-01T10:00:00Z",
     ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]),
    ("@every 2h", "2026-01-01T01:00:00Z",
     ["2026-01-01T02:00:00Z", "2026-01-01T04:00:00Z"]),
])
def test_every(spec: str, after: str, expected: list[str]) -> None:
    assert fires(spec, after, len(expected)) == expected


def test_every_ignores_dst() -> None:
    # Spring forward in New York at 07:00Z: an interval schedule does not care.
    assert fires("@every 1h", "2026-03-08T05:30:00Z", 3, "America/New_York") == [
        "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"]
    assert fires("@every 1h", "2026-11-01T04:30:00Z", 3, "America/New_York") == [
        "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"]


def test_next_after_is_strictly_after_sub_second_input() -> None:
    sched = CronSchedule.parse("* * * * * *")
    base = ms("2026-01-01T00:00:00Z")
    assert sched.next_after(base) == base + 1000
    assert sched.next_after(base + 1) == base + 1000
    assert sched.next_after(base + 999) == base + 1000
    assert sched.next_after(base - 1) == base
    every = CronSchedule.parse("@every 10s")
    assert every.next_after(base + 500) == base + 10_000
    assert every.next_after(base - 1) == base


def test_next_n() -> None:
    sched = CronSchedule.parse("0 12 * * *")
    assert sched.next_n(ms("2026-01-01T00:00:00Z"), 0) == []
    assert [iso(x) for x in sched.next_n(ms("2026-01-01T00:00:00Z"), 2)] == [
        "2026-01-01T12:00:00Z", "2026-01-02T12:00:00Z"]
    with pytest.raises(ValueError):
        sched.next_n(0, -1)


def test_normalised_attributes() -> None:
    sched = CronSchedule.parse("  0   12 *  * MON-FRI ", "america/new_york")
    assert sched.spec == "0 12 * * MON-FRI"
    assert sched.timezone == "America/New_York"
    assert CronSchedule.parse("@Daily", "").spec == "@daily"
    assert CronSchedule.parse("@daily", "").timezone == "UTC"
    assert CronSchedule.parse("@every  1H30M").spec == "@every 1h30m"
    assert validate_timezone("") == "UTC"
    assert validate_timezone("Europe/Berlin") == "Europe/Berlin"
    assert validate_timezone(" utc ") == "UTC"
    assert validate_timezone("US/Eastern") == "US/Eastern"


@pytest.mark.parametrize(("spec", "fixed"), [
    ("30 2 * * *", True),
    ("0,30 1-3 * * *", True),
    ("0 0-23 * * *", True),  # Vixie looks at the first character only
    ("*/15 * * * *", False),
    ("0 * * * *", False),
    ("* 2 * * *", False),
    ("0 */2 * * *", False),
    ("* 30 2 * * *", True),  # 6 fields: the seconds field does not count
    ("0 * 2 * * *", False),
    ("0 30 * * * *", False),
    ("@hourly", False),
    ("@daily", True),
    ("@weekly", True),
    ("@monthly", True),
    ("@yearly", True),
    ("@every 5m", False),
])
def test_is_fixed_time(spec: str, fixed: bool) -> None:
    assert CronSchedule.parse(spec).is_fixed_time is fixed


# ---------------------------------------------------------------------------
# H (hashed) fields
# ---------------------------------------------------------------------------

def test_hash_is_deterministic_per_key() -> None:
    a1 = CronSchedule.parse("H H * * *", hash_key="backup-db")
    a2 = CronSchedule.parse("H H * * *", hash_key="backup-db")
    start = ms("2026-01-01T00:00:00Z")
    first = a1.next_n(start, 3)
    assert first == a2.next_n(start, 3)
    # Daily, at the same time of day.
    assert first[1] - first[0] == 86_400_000 and first[2] - first[1] == 86_400_000
    assert a1.is_fixed_time
    # Different job names spread out (at least one of these differs).
    others = {tuple(CronSchedule.parse("H H * * *", hash_key=f"job-{i}").next_n(start, 1))
              for i in range(10)}
    assert len(others) > 1


def test_hash_forms_stay_in_range() -> None:
    for i in range(50):
        key = f"job-{i}"
        ranged = CronSchedule.parse("H(0-29)/10 H(9-17) * * *", hash_key=key)
        times = [datetime.fromtimestamp(x // 1000, UTC)
                 for x in ranged.next_n(ms("2026-01-01T00:00:00Z"), 4)]
        # One hashed hour; minutes every 10 from a hashed start below 10.
        assert len({t.hour for t in times}) == 1 and 9 <= times[0].hour <= 17
        assert times[0].minute < 10
        assert [t.minute - times[0].minute for t in times[:3]] == [0, 10, 20]
        # A bare H in day-of-month stays on a day every month has.
        dom = CronSchedule.parse("0 0 H * *", hash_key=key)
        days = [datetime.fromtimestamp(x // 1000, UTC).day
                for x in dom.next_n(ms("2026-01-01T00:00:00Z"), 3)]
        assert len(set(days)) == 1 and days[0] <= 28
        # Seconds can be hashed too.
        sec = CronSchedule.parse("H * * * * *", hash_key=key)
        a, b = sec.next_n(ms("2026-01-01T00:00:00Z"), 2)
        assert b - a == 60_000


def test_hash_needs_a_job_name() -> None:
    with pytest.raises(ValidationError) as err:
        CronSchedule.parse("H H * * *")
    assert err.value.field == "spec" and "H needs a job name" in err.value.message
    with pytest.raises(ValidationError, match="H needs a job name"):
        CronSchedule.parse("0 H * * *", hash_key="")


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "message"), [
    ("", "empty"),
    ("* * * *", "expected 5 fields (or 6 with seconds first), got 4"),
    ("* * * * * * *", "expected 5 fields (or 6 with seconds first), got 7"),
    ("61 * * * *", "field 'minute' value 61 out of range 0-59"),
    ("0 24 * * *", "field 'hour' value 24 out of range 0-23"),
    ("0 0 0 * *", "field 'day-of-month' value 0 out of range 1-31"),
    ("0 0 32 * *", "field 'day-of-month' value 32 out of range 1-31"),
    ("0 0 * 13 *", "field 'month' value 13 out of range 1-12"),
    ("0 0 * * 8", "field 'day-of-week' value 8 out of range 0-7"),
    ("60 * * * * *", "field 'second' value 60 out of range 0-59"),
    ("0 60 * * * *", "field 'minute' value 60 out of range 0-59"),
    ("10-70 * * * *", "field 'minute' value 70 out of range 0-59"),
    ("abc * * * *", "field 'minute'"),
    ("* * * * xyz", "field 'day-of-week' has unknown name 'xyz'"),
    ("* * * FOO *", "field 'month' has unknown name 'FOO'"),
    ("*/0 * * * *", "field 'minute' step '0' must be a positive integer"),
    ("*/x * * * *", "field 'minute' step 'x' must be a positive integer"),
    ("1,,2 * * * *", "field 'minute' has an empty list item"),
    ("1-2-3 * * * *", "field 'minute'"),
    ("? * * * *", "field 'minute'"),
    ("0 0 * * 1#6", "field 'day-of-week'"),
    ("0 0 * * L", "field 'day-of-week'"),
    ("R * * * *", "R (random) is not supported"),
    ("H,5 * * * *", "H must be the whole field"),
    ("@fortnightly", "unknown macro @fortnightly"),
    ("@daily 5", "takes no arguments"),
    ("@every", "@every needs a duration"),
    ("@every 0s", "must be at least 1s"),
    ("@every 0h0m", "must be at least 1s"),
    ("@every 1.5s", "must be a whole number of seconds"),
    ("@every 500ms", "must be a whole number of seconds"),
    ("@every abc", "@every duration 'abc' is not valid"),
    ("@every 5", "@every duration '5' is not valid"),
    ("@every -5m", "@every duration '-5m' is not valid"),
    ("0 0 31 2 *", "never fires: no date matches '0 0 31 2 *'"),
    ("0 0 30 2 *", "never fires"),
    ("0 0 0 31 4 *", "never fires"),
])
def test_bad_spec(spec: str, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        CronSchedule.parse(spec)
    assert err.value.field == "spec"
    assert message in err.value.message


def test_cron_tz_prefix_sets_the_zone() -> None:
    # 09:00 in Tokyo is 00:00Z; in New York (EDT) 13:00Z.
    assert fires("CRON_TZ=Asia/Tokyo 0 9 * * *", "2026-06-01T12:00:00Z", 2) == [
        "2026-06-02T00:00:00Z", "2026-06-03T00:00:00Z"]
    sched = CronSchedule.parse("  CRON_TZ=america/new_york   0 9 * * MON ", "")
    assert (sched.spec, sched.timezone) == ("0 9 * * MON", "America/New_York")
    assert sched.next_after(ms("2026-06-01T12:00:00Z")) == ms("2026-06-01T13:00:00Z")  # a Monday
    # The same zone in the job's field too, the TZ= spelling, macros, H, @every.
    assert CronSchedule.parse("TZ=Asia/Tokyo @daily", "Asia/Tokyo").next_after(
        ms("2026-06-01T12:00:00Z")) == ms("2026-06-01T15:00:00Z")
    hashed = CronSchedule.parse("CRON_TZ=Asia/Tokyo H H * * *", hash_key="job-a")
    assert hashed.timezone == "Asia/Tokyo"
    assert hashed.next_n(ms("2026-06-01T00:00:00Z"), 3) == CronSchedule.parse(
        "H H * * *", "Asia/Tokyo", hash_key="job-a").next_n(ms("2026-06-01T00:00:00Z"), 3)
    assert CronSchedule.parse("CRON_TZ=Asia/Tokyo @every 5m").timezone == "Asia/Tokyo"


@pytest.mark.parametrize(("spec", "tz", "message"), [
    ("CRON_TZ=Asia/Tokyo 0 9 * * *", "Europe/Berlin",
     "CRON_TZ=Asia/Tokyo contradicts the job's time zone Europe/Berlin"),
    ("CRON_TZ=Mars/Base 0 9 * * *", "UTC", "CRON_TZ: unknown time zone 'Mars/Base'"),
    ("CRON_TZ= 0 9 * * *", "UTC", "CRON_TZ= needs a time zone"),
    ("CRON_TZ=Asia/Tokyo", "UTC", "needs a schedule after CRON_TZ=Asia/Tokyo"),
    ("CRON_TZ=Asia/Tokyo   ", "UTC", "needs a schedule after CRON_TZ=Asia/Tokyo"),
    ("0 9 * * * CRON_TZ=Asia/Tokyo", "UTC", "CRON_TZ=Zone must come first"),
    ("CRON_TZ=Asia/Tokyo 61 9 * * *", "UTC", "field 'minute' value 61 out of range"),
])
def test_cron_tz_prefix_errors_name_the_spec(spec: str, tz: str, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        CronSchedule.parse(spec, tz)
    assert err.value.field == "spec"
    assert message in err.value.message


@pytest.mark.parametrize("tz", ["Mars/Base", "EST5EDT/x", "../etc/passwd", "America/"])
def test_bad_timezone(tz: str) -> None:
    with pytest.raises(ValidationError) as err:
        CronSchedule.parse("* * * * *", tz)
    assert err.value.field == "timezone"
    assert f"unknown time zone '{tz}'" in err.value.message
    with pytest.raises(ValidationError):
        validate_timezone(tz)


def test_validation_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^spec: unknown macro @fortnightly$"):
        CronSchedule.parse("@fortnightly")


# ---------------------------------------------------------------------------
# DST
# ---------------------------------------------------------------------------

# (zone, transition instant, offset before, offset after) in hours: the facts
# the hand-computed expectations below rely on.
TRANSITIONS = [
    ("America/New_York", "2026-03-08T07:00:00Z", -5, -4),   # 02:00 EST -> 03:00 EDT
    ("America/New_York", "2026-11-01T06:00:00Z", -4, -5),   # 02:00 EDT -> 01:00 EST
    ("Australia/Sydney", "2026-04-04T16:00:00Z", 11, 10),   # 03:00 AEDT -> 02:00 AEST
    ("Australia/Sydney", "2026-10-03T16:00:00Z", 10, 11),   # 02:00 AEST -> 03:00 AEDT
    ("Europe/London", "2026-03-29T01:00:00Z", 0, 1),        # 01:00 GMT -> 02:00 BST
    ("Europe/London", "2026-10-25T01:00:00Z", 1, 0),        # 02:00 BST -> 01:00 GMT
    ("Australia/Lord_Howe", "2026-04-04T15:00:00Z", 11, 10.5),  # 02:00 -> 01:30
    ("Australia/Lord_Howe", "2026-10-03T15:30:00Z", 10.5, 11),  # 02:00 -> 02:30
    ("America/Santiago", "2026-04-05T03:00:00Z", -3, -4),   # 24:00 -> 23:00
    ("America/Santiago", "2026-09-06T04:00:00Z", -4, -3),   # 24:00 -> 01:00
]


@pytest.mark.parametrize(("zone", "at", "before", "after"), TRANSITIONS)
def test_transition_instants(zone: str, at: str, before: float, after: float) -> None:
    z = ZoneInfo(zone)
    t = ms(at) // 1000

    def offset_h(ts: int) -> float:
        off = datetime.fromtimestamp(ts, z).utcoffset()
        assert off is not None
        return off.total_seconds() / 3600

    assert offset_h(t - 1) == before
    assert offset_h(t) == after


class TestNewYork:
    TZ = "America/New_York"

    def test_fixed_in_gap_fires_once_at_transition(self) -> None:
        # 02:30 does not exist on 2026-03-08: fires at 03:00 EDT = 07:00Z.
        assert fires("30 2 * * *", "2026-03-05T12:00:00Z", 6, self.TZ) == [
            "2026-03-06T07:30:00Z", "2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z", "2026-03-11T06:30:00Z"]

    def test_several_gap_times_collapse_into_one_firing(self) -> None:
        assert fires("0,30 2 * * *", "2026-03-07T12:00:00Z", 3, self.TZ) == [
            "2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z", "2026-03-09T06:30:00Z"]
        # ... also with a real match right at the end of the gap.
        assert fires("0,30 2,3 * * *", "2026-03-08T06:00:00Z", 3, self.TZ) == [
            "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z", "2026-03-09T06:00:00Z"]

    def test_fixed_6_fields_in_gap(self) -> None:
        assert fires("*/10 30 2 * * *", "2026-03-07T12:00:00Z", 3, self.TZ) == [
            "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z", "2026-03-09T06:30:10Z"]

    def test_fixed_in_repeated_hour_fires_once_first_copy(self) -> None:
        assert fires("30 1 * * *", "2026-10-29T12:00:00Z", 5, self.TZ) == [
            "2026-10-30T05:30:00Z", "2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z",
            "2026-11-02T06:30:00Z", "2026-11-03T06:30:00Z"]

    def test_fixed_queried_from_inside_second_copy(self) -> None:
        # 06:10Z is 01:10 EST, inside the repeated hour: 01:30 already fired.
        assert fires("30 1 * * *", "2026-11-01T06:10:00Z", 1, self.TZ) == [
            "2026-11-02T06:30:00Z"]
        assert fires("58 1 * * *", "2026-11-01T06:56:00Z", 1, self.TZ) == [
            "2026-11-02T06:58:00Z"]
        # The first copy's 01:30 still fires if asked from just before it.
        assert fires("30 1 * * *", "2026-11-01T05:10:00Z", 1, self.TZ) == [
            "2026-11-01T05:30:00Z"]

    def test_fixed_hour_range_over_fall_back(self) -> None:
        # 01:00 EDT, (01:00 EST is the repeat: skipped), 02:00 EST.
        assert fires("0 1-2 * * *", "2026-11-01T04:30:00Z", 3, self.TZ) == [
            "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z", "2026-11-02T06:00:00Z"]

    def test_wildcard_hourly_fall_back_fires_in_both_copies(self) -> None:
        assert fires("0 * * * *", "2026-11-01T03:30:00Z", 4, self.TZ) == [
            "2026-11-01T04:00:00Z",  # 00:00 EDT
            "2026-11-01T05:00:00Z",  # 01:00 EDT
            "2026-11-01T06:00:00Z",  # 01:00 EST
            "2026-11-01T07:00:00Z"]  # 02:00 EST

    def test_wildcard_minute_in_fixed_hour_fires_in_both_copies(self) -> None:
        assert fires("*/30 1 * * *", "2026-11-01T04:30:00Z", 5, self.TZ) == [
            "2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z",
            "2026-11-01T06:30:00Z", "2026-11-02T06:00:00Z"]

    def test_day_fields_or_on_the_transition_day(self) -> None:
        # Days 1-7 or the 2nd Sunday: 8 March is the 2nd Sunday, and its
        # 02:30 is skipped, so the job fires at the transition.
        assert fires("30 2 1-7 * 0#2", "2026-03-06T00:00:00Z", 4, self.TZ) == [
            "2026-03-06T07:30:00Z", "2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z",
            "2026-04-01T06:30:00Z"]

    def test_wildcard_skips_gap(self) -> None:
        assert fires("0 * * * *", "2026-03-08T05:30:00Z", 3, self.TZ) == [
            "2026-03-08T06:00:00Z",  # 01:00 EST
            "2026-03-08T07:00:00Z",  # 03:00 EDT (02:00 never existed)
            "2026-03-08T08:00:00Z"]
        assert fires("*/30 * * * *", "2026-03-08T06:00:00Z", 3, self.TZ) == [
            "2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z"]
        # A wildcard job whose only time today is in the gap skips the day.
        assert fires("* 2 * * *", "2026-03-07T12:00:00Z", 1, self.TZ) == [
            "2026-03-09T06:00:00Z"]

    def test_seconds_job_near_transitions(self) -> None:
        assert fires("*/10 * * * * *", "2026-03-08T06:59:30Z", 4, self.TZ) == [
            "2026-03-08T06:59:40Z", "2026-03-08T06:59:50Z", "2026-03-08T07:00:00Z",
            "2026-03-08T07:00:10Z"]
        assert fires("*/10 * * * * *", "2026-11-01T05:59:40Z", 3, self.TZ) == [
            "2026-11-01T05:59:50Z", "2026-11-01T06:00:00Z", "2026-11-01T06:00:10Z"]

    def test_hours_per_local_day(self) -> None:
        # 23 local hours on the spring-forward day, 25 on the fall-back day.
        spring = CronSchedule.parse("0 * * * *", self.TZ)
        got = spring.next_n(ms("2026-03-08T04:59:59Z"), 30)  # from 00:00 EST
        assert sum(t < ms("2026-03-09T04:00:00Z") for t in got) == 23
        fall = CronSchedule.parse("0 * * * *", self.TZ)
        got = fall.next_n(ms("2026-11-01T03:59:59Z"), 30)  # from 00:00 EDT
        assert sum(t < ms("2026-11-02T05:00:00Z") for t in got) == 25


class TestSydney:
    TZ = "Australia/Sydney"

    def test_fixed_in_repeated_hour(self) -> None:
        # Fall back 2026-04-05 03:00 AEDT -> 02:00 AEST (16:00Z on the 4th).
        assert fires("30 2 * * *", "2026-04-02T00:00:00Z", 4, self.TZ) == [
            "2026-04-02T15:30:00Z", "2026-04-03T15:30:00Z",
            "2026-04-04T15:30:00Z",  # 02:30 AEDT, first copy only
            "2026-04-05T16:30:00Z"]

    def test_wildcard_in_repeated_hour(self) -> None:
        assert fires("*/30 * * * *", "2026-04-04T14:50:00Z", 6, self.TZ) == [
            "2026-04-04T15:00:00Z", "2026-04-04T15:30:00Z",  # 02:00, 02:30 AEDT
            "2026-04-04T16:00:00Z", "2026-04-04T16:30:00Z",  # 02:00, 02:30 AEST
            "2026-04-04T17:00:00Z", "2026-04-04T17:30:00Z"]

    def test_fixed_in_gap(self) -> None:
        # Spring forward 2026-10-04 02:00 AEST -> 03:00 AEDT (16:00Z on the 3rd).
        assert fires("30 2 * * *", "2026-10-01T00:00:00Z", 4, self.TZ) == [
            "2026-10-01T16:30:00Z", "2026-10-02T16:30:00Z",
            "2026-10-03T16:00:00Z",  # the transition itself
            "2026-10-04T15:30:00Z"]

    def test_wildcard_skips_gap(self) -> None:
        assert fires("0 * * * *", "2026-10-03T14:30:00Z", 3, self.TZ) == [
            "2026-10-03T15:00:00Z", "2026-10-03T16:00:00Z", "2026-10-03T17:00:00Z"]

    def test_seconds_job_near_transitions(self) -> None:
        assert fires("*/10 * * * * *", "2026-10-03T15:59:40Z", 3, self.TZ) == [
            "2026-10-03T15:59:50Z", "2026-10-03T16:00:00Z", "2026-10-03T16:00:10Z"]
        assert fires("0 30 2 * * *", "2026-10-03T12:00:00Z", 2, self.TZ) == [
            "2026-10-03T16:00:00Z", "2026-10-04T15:30:00Z"]


class TestLondon:
    TZ = "Europe/London"

    def test_spring_forward(self) -> None:
        assert fires("30 1 * * *", "2026-03-27T12:00:00Z", 3, self.TZ) == [
            "2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
        assert fires("30 * * * *", "2026-03-29T00:00:00Z", 3, self.TZ) == [
            "2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z", "2026-03-29T02:30:00Z"]

    def test_fall_back(self) -> None:
        assert fires("30 1 * * *", "2026-10-23T12:00:00Z", 3, self.TZ) == [
            "2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
        assert fires("30 * * * *", "2026-10-24T23:45:00Z", 3, self.TZ) == [
            "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:30:00Z"]


class TestLordHowe:
    """30-minute DST shift."""

    TZ = "Australia/Lord_Howe"

    def test_gap(self) -> None:
        # 2026-10-04 02:00 +10:30 -> 02:30 +11 at 15:30Z on the 3rd.
        assert fires("15 2 * * *", "2026-10-02T00:00:00Z", 3, self.TZ) == [
            "2026-10-02T15:45:00Z", "2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"]
        assert fires("*/15 * * * *", "2026-10-03T15:10:00Z", 3, self.TZ) == [
            "2026-10-03T15:15:00Z",  # 01:45
            "2026-10-03T15:30:00Z",  # 02:30 (02:00 and 02:15 skipped)
            "2026-10-03T15:45:00Z"]

    def test_repeat(self) -> None:
        # 2026-04-05 02:00 +11 -> 01:30 +10:30 at 15:00Z on the 4th.
        assert fires("45 1 * * *", "2026-04-03T00:00:00Z", 3, self.TZ) == [
            "2026-04-03T14:45:00Z", "2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"]
        assert fires("*/15 * * * *", "2026-04-04T14:20:00Z", 5, self.TZ) == [
            "2026-04-04T14:30:00Z", "2026-04-04T14:45:00Z",  # 01:30, 01:45 +11
            "2026-04-04T15:00:00Z", "2026-04-04T15:15:00Z",  # 01:30, 01:45 +10:30
            "2026-04-04T15:30:00Z"]


def test_midnight_gap_in_santiago() -> None:
    # Chile springs forward at 24:00 -> 01:00: midnight does not exist.
    assert fires("@daily", "2026-09-04T12:00:00Z", 3, "America/Santiago") == [
        "2026-09-05T04:00:00Z", "2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z"]


def test_every_second_across_transitions_many_calls() -> None:
    """Thousands of chained calls across each transition: each exactly +1 s."""
    for tz, start in [("America/New_York", "2026-03-08T06:30:00Z"),
                      ("America/New_York", "2026-11-01T05:30:00Z"),
                      ("Australia/Lord_Howe", "2026-04-04T14:30:00Z")]:
        sched = CronSchedule.parse("* * * * * *", tz)
        t = ms(start)
        for _ in range(3600):
            nxt = sched.next_after(t)
            assert nxt == t + 1000
            t = nxt


def test_far_away_matches() -> None:
    # Sparse specs jump ahead instead of walking every transition between.
    # 2044-02-29 is the next Monday that is the 5th Monday of a February.
    assert fires("0 0 * 2 1#5", "2026-01-01T00:00:00Z", 1, "Europe/Berlin") == [
        "2044-02-28T23:00:00Z"]
    assert fires("30 2 29 2 *", "2026-01-01T00:00:00Z", 2, "America/New_York") == [
        "2028-02-29T07:30:00Z", "2032-02-29T07:30:00Z"]
    # ... and still get the DST rules right when they land on a transition.
    assert fires("30 2 8 3 *", "2025-05-01T00:00:00Z", 2, "America/New_York") == [
        "2026-03-08T07:00:00Z", "2027-03-08T07:30:00Z"]
    assert fires("30 1 1 11 *", "2025-11-02T00:00:00Z", 2, "America/New_York") == [
        "2026-11-01T05:30:00Z", "2027-11-01T05:30:00Z"]
    assert fires("*/30 1 1 11 *", "2025-11-02T00:00:00Z", 4, "America/New_York") == [
        "2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z",
        "2026-11-01T06:30:00Z"]


def test_wildcard_whose_every_match_is_skipped_never_fires() -> None:
    # 02:xx on the 2nd Sunday of March never exists in New York.
    sched = CronSchedule.parse("* 2 * 3 0#2", "America/New_York")
    assert sched.next_after(ms("2026-01-01T00:00:00Z")) is None


# ---------------------------------------------------------------------------
# Property-style: a whole year against an independent oracle
# ---------------------------------------------------------------------------

def _oracle(spec: str, tz: str, seconds: bool, fixed: bool, start: int, end: int) -> list[int]:
    """Fire instants (epoch s) in [start, end), from zoneinfo's fold rules.

    Enumerates naive wall-clock matches with croniter, then maps each to the
    real instants that show that wall time: none (gap), one, or two (repeat).
    """
    z = ZoneInfo(tz)
    first_wall = datetime.fromtimestamp(start, z).replace(tzinfo=None) - timedelta(days=1)
    last_wall = datetime.fromtimestamp(end, z).replace(tzinfo=None) + timedelta(days=1)
    it = croniter(spec, first_wall, second_at_beginning=seconds)
    out: set[int] = set()
    while (wall := it.get_next(datetime)) < last_wall:
        instants = []
        for fold in (0, 1):
            aware = wall.replace(tzinfo=z, fold=fold)
            if aware.astimezone(UTC).astimezone(z).replace(tzinfo=None) == wall:
                instants.append(int(aware.timestamp()))
        instants = sorted(set(instants))
        if not instants:  # in a gap
            if fixed:
                # The transition: first instant whose wall time is past `wall`.
                lo = int(wall.replace(tzinfo=z, fold=1).timestamp())  # before it
                hi = int(wall.replace(tzinfo=z, fold=0).timestamp())  # after it
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if datetime.fromtimestamp(mid, z).replace(tzinfo=None) > wall:
                        hi = mid
                    else:
                        lo = mid
                out.add(hi)
        elif fixed:
            out.add(instants[0])
        else:
            out.update(instants)
    return sorted(t for t in out if start <= t < end)


PROPERTY_ZONES = ["America/New_York", "Australia/Sydney", "Europe/London",
                  "Australia/Lord_Howe", "America/Santiago", "Europe/Dublin", "UTC"]
# Every transition in these zones falls on a Sunday (Saturday's last hour for
# Santiago's fall-back), so the weekend-only specs still cross all of them.
PROPERTY_SPECS = ["0 * * * 0,6", "30 2 * * *", "0,30 1-3 * * *", "*/20 1-2 * * *",
                  "15 1,2 * * 0", "*/15 2 * * 0", "45 1 * * *", "0 0 * * *",
                  "0 30 2 * * *", "30 */10 1,2 * * *", "15,45 * * * 0", "0 23 * * *"]


@pytest.mark.parametrize("tz", PROPERTY_ZONES)
@pytest.mark.parametrize("spec", PROPERTY_SPECS)
def test_whole_year_matches_oracle(spec: str, tz: str) -> None:
    sched = CronSchedule.parse(spec, tz)
    seconds = len(spec.split()) == 6
    start = ms("2026-01-01T12:00:00Z") // 1000
    end = ms("2027-01-01T12:00:00Z") // 1000
    got = collect(sched, start, end)
    assert got == sorted(set(got)), "must be strictly increasing"
    z = ZoneInfo(tz)
    check = croniter(spec, datetime(2026, 1, 1), second_at_beginning=seconds)
    for t in got:
        # Every firing shows a matching wall time, except a fixed-time job's
        # firing at the end of a gap (its wall time need not match).
        wall = datetime.fromtimestamp(t, z).replace(tzinfo=None)
        matches = check.get_next(datetime, wall - timedelta(seconds=1)) == wall
        gap_end = (datetime.fromtimestamp(t - 1, z).utcoffset()
                   != datetime.fromtimestamp(t, z).utcoffset())
        assert matches or (sched.is_fixed_time and gap_end), iso(t * 1000)
    assert got == _oracle(spec, tz, seconds, sched.is_fixed_time, start, end)


@pytest.mark.parametrize("bits", [12, 18])
def test_zone_cache_chunk_size_does_not_matter(monkeypatch: pytest.MonkeyPatch,
                                               bits: int) -> None:
    """Tiny cache chunks put a chunk edge next to every transition."""
    monkeypatch.setattr(cron, "_CHUNK_BITS", bits)
    monkeypatch.setattr(cron, "_timelines", {})
    windows = [("2026-03-01T00:00:00Z", "2026-04-10T00:00:00Z"),
               ("2026-09-25T00:00:00Z", "2026-11-05T00:00:00Z")]
    for tz in ["America/New_York", "Australia/Sydney", "Australia/Lord_Howe"]:
        for spec in ["30 1 * * *", "30 2 * * *", "*/30 1-2 * * *", "0 * * * *"]:
            sched = CronSchedule.parse(spec, tz)
            for first, last in windows:
                start, end = ms(first) // 1000, ms(last) // 1000
                got = collect(sched, start, end)
                assert got == _oracle(spec, tz, False, sched.is_fixed_time, start, end)
    # From inside the repeated hour (01:56 EST), with the fall-back in an
    # earlier chunk: 01:58 already fired in the first copy.
    assert fires("58 1 * * *", "2026-11-01T06:56:00Z", 1, "America/New_York") == [
        "2026-11-02T06:58:00Z"]
    assert fires("30 1 1 11 *", "2025-11-02T00:00:00Z", 2, "America/New_York") == [
        "2026-11-01T05:30:00Z", "2027-11-01T05:30:00Z"]
    assert fires("*/30 1 1 11 *", "2026-10-20T00:00:00Z", 4, "America/New_York") == [
        "2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z",
        "2026-11-01T06:30:00Z"]


# ---------------------------------------------------------------------------
# Sharing parsed schedules, and the cheap lower bound used at start-up
# ---------------------------------------------------------------------------

def test_same_spec_and_zone_share_one_schedule() -> None:
    a = CronSchedule.parse("15 3 * * MON-FRI", "Europe/Berlin", hash_key="job-a")
    b = CronSchedule.parse("15 3 * * MON-FRI", "europe/berlin", hash_key="job-b")
    assert a is b  # unhashed: the job name plays no part
    other_zone = CronSchedule.parse("15 3 * * MON-FRI", "Asia/Tokyo")
    assert other_zone is not a and other_zone.timezone == "Asia/Tokyo"
    start = ms("2026-01-01T00:00:00Z")
    assert a.next_after(start) == ms("2026-01-01T02:15:00Z")
    assert other_zone.next_after(start) == ms("2026-01-01T18:15:00Z")
    # Differently written, same meaning: still right, shared or not.
    assert CronSchedule.parse(" 15  3 * * mon-fri ", "Europe/Berlin").next_after(start) == a.next_after(start)


def test_hashed_specs_are_not_shared_between_job_names() -> None:
    start = ms("2026-01-01T00:00:00Z")
    firsts = {}
    for name in ("backup-db", "rotate-logs", "ping", "report", "sync"):
        sched = CronSchedule.parse("H H * * *", "UTC", hash_key=name)
        again = CronSchedule.parse("H H * * *", "UTC", hash_key=name)
        assert sched.next_n(start, 2) == again.next_n(start, 2)
        firsts[name] = sched.next_after(start)
    assert len(set(firsts.values())) > 1
    # The same spec without H is shared; with H each name keeps its own time.
    assert CronSchedule.parse("H H * * *", hash_key="a") is not CronSchedule.parse("H H * * *", hash_key="a")


HASH_SPECS = ["H * * * *", "H H * * *", "H(0-29) H(9-17) * * MON-FRI", "H H/4 * * *", "H/15 * * * *",
              "H(0-29)/10 H(9-17) * * *", "H H H * *", "H H * * H", "H * * * * *", "H H H * * *",
              "30 H(1-5)/2 * JAN,JUL *"]


@pytest.mark.parametrize("spec", HASH_SPECS)
def test_hash_values_are_croniters_own(spec: str) -> None:
    """H is resolved the way croniter itself resolves it for that hash id."""
    seconds = len(spec.split()) == 6
    expr = " ".join("H(1-28)" if i == (3 if seconds else 2) and f == "H" else f
                    for i, f in enumerate(spec.split()))
    start = datetime(2026, 1, 1)
    for i in range(40):
        name = f"job-{i}"
        ours = CronSchedule.parse(spec, "UTC", hash_key=name).next_n(ms("2026-01-01T00:00:00Z"), 4)
        it = croniter(expr, start, hash_id=name, second_at_beginning=seconds)
        theirs = [int(it.get_next(datetime).replace(tzinfo=UTC).timestamp()) * 1000 for _ in range(4)]
        assert ours == theirs, name


@pytest.mark.parametrize("spec", [
    "0 0 * * 1#2,2#3", "0 0 * * mon#2,tue", "0 0 ? * mon", "0 0 15W * *", "0 0 L * 5L",
    "0 0 1,L * *", "0 0 L-2 * *", "0 0 * * 1-5#2", "59/15 * * * *", "0 0 jan-jan * *",
    "*/7 1/5 1-10/3 */2 mon-fri/2", "0 0 * * l1-3", "0 0 * * 0-7", "1,2 3 4 5 6 7",
    "0 0 * * 1#6", "0 0 * * L", "1-2-3 * * * *", "0 0 * * 5#0", "0 0 1-31 * mon",
])
def test_checking_fields_one_by_one_agrees_with_croniter(spec: str) -> None:
    """Fields are validated one at a time (cached): the verdict must be
    croniter's verdict on the whole expression."""
    try:
        template = cron._template(spec)
    except ValidationError:
        return  # rejected before croniter is asked
    expr = " ".join(template.expr_fields)
    seconds = len(template.expr_fields) == 6
    try:
        croniter(expr, 0, second_at_beginning=seconds)
        whole_ok = True
    except (ValueError, KeyError):
        whole_ok = False
    try:
        CronSchedule.parse(spec)
        ours_ok = True
    except ValidationError as exc:
        ours_ok = "never fires" in exc.message  # a valid expression with no date
    assert ours_ok == whole_ok


ESTIMATE_SPECS = ["30 2 * * *", "0 * * * *", "*/15 2 * * *", "0 9 * * MON-FRI", "0 0 L * *",
                  "45 1 * * 0", "0 30 2 * * *", "*/20 * * * * *", "0 0 1 JAN,JUL *", "0 12 * * TUE#2",
                  "H H * * *", "@hourly", "@every 1h30m", "0 0 29 2 *", "* 2 * 3 0#2"]
ESTIMATE_ZONES = ["UTC", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "Europe/London"]


@pytest.mark.parametrize("tz", ESTIMATE_ZONES)
def test_estimate_is_never_after_the_real_next_fire_time(tz: str) -> None:
    # Instants around transitions (both hemispheres) and ordinary ones.
    instants = [ms(x) for x in ("2026-03-08T06:59:59Z", "2026-03-29T00:30:00Z", "2026-04-04T15:10:00Z",
                                "2026-10-03T15:45:00Z", "2026-11-01T05:59:00Z", "2026-11-01T06:30:00Z",
                                "2026-01-01T00:00:00Z", "2027-06-15T13:37:11Z")]
    instants += [ms("2026-01-01T00:00:00Z") + k * 7_654_321_987 // 100 for k in range(60)]
    for spec in ESTIMATE_SPECS:
        sched = CronSchedule.parse(spec, tz, hash_key="estimate")
        for t in instants:
            bound, exact = sched.estimate_next_after(t)
            real = sched.next_after(t)
            if exact:
                assert bound == real, (spec, iso(t))
            else:
                assert bound is not None and bound > t // 1000 * 1000, (spec, iso(t))
                assert real is None or bound <= real, (spec, iso(t))


def test_estimate_is_exact_for_daily_specs_away_from_transitions() -> None:
    sched = CronSchedule.parse("10 20 11 * * *", "Asia/Tokyo")  # 11:20:10 JST = 02:20:10Z
    t = ms("2026-05-01T12:00:00Z")
    assert sched.estimate_next_after(t) == (ms("2026-05-02T02:20:10Z"), False)
    assert sched.next_after(t) == ms("2026-05-02T02:20:10Z")
