"""Tests for common.cron: field forms, macros, @every, H, and the shared schedules
and cheap lower bound used at start-up.

Validation is in test_cron_spec.py, DST semantics in test_cron_dst.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from croniter import croniter

from crontrio.common.cron import CronSchedule, validate_timezone
from crontrio.common.errors import ValidationError
from tests.unit.cron_helpers import fires, iso, ms

# ---------------------------------------------------------------------------
# Field forms (UTC; 2026-01-01 is a Thursday)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "after", "expected"),
    [
        # 5 fields, steps; strictly after the start.
        (
            "*/15 * * * *",
            "2026-01-01T00:00:00Z",
            ["2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z", "2026-01-01T00:45:00Z", "2026-01-01T01:00:00Z"],
        ),
        # 6 fields, seconds first.
        ("*/20 * * * * *", "2026-01-01T00:00:00Z", ["2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z", "2026-01-01T00:01:00Z"]),
        ("30 0 12 * * *", "2026-01-01T00:00:00Z", ["2026-01-01T12:00:30Z", "2026-01-02T12:00:30Z"]),
        ("0 30 2 * * *", "2026-01-01T03:00:00Z", ["2026-01-02T02:30:00Z", "2026-01-03T02:30:00Z"]),
        # Ranges with steps, start/step.
        (
            "10-20/5 8-9 * * *",
            "2026-01-01T00:00:00Z",
            [
                "2026-01-01T08:10:00Z",
                "2026-01-01T08:15:00Z",
                "2026-01-01T08:20:00Z",
                "2026-01-01T09:10:00Z",
                "2026-01-01T09:15:00Z",
                "2026-01-01T09:20:00Z",
                "2026-01-02T08:10:00Z",
            ],
        ),
        (
            "5/20 0 * * *",
            "2026-01-01T00:00:00Z",
            ["2026-01-01T00:05:00Z", "2026-01-01T00:25:00Z", "2026-01-01T00:45:00Z", "2026-01-02T00:05:00Z"],
        ),
        # An equal range is that single value (croniter alone reads it as '*').
        ("5-5 * * * *", "2026-01-01T00:00:00Z", ["2026-01-01T00:05:00Z", "2026-01-01T01:05:00Z"]),
        # Weekday names and ranges.
        ("0 9 * * MON-FRI", "2026-01-01T12:00:00Z", ["2026-01-02T09:00:00Z", "2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z"]),
        ("0 9 * * sat,sun", "2026-01-01T12:00:00Z", ["2026-01-03T09:00:00Z", "2026-01-04T09:00:00Z", "2026-01-10T09:00:00Z"]),
        (
            "0 9 * * FRI-MON",
            "2026-01-01T12:00:00Z",  # wrapping range
            [
                "2026-01-02T09:00:00Z",
                "2026-01-03T09:00:00Z",
                "2026-01-04T09:00:00Z",
                "2026-01-05T09:00:00Z",
                "2026-01-09T09:00:00Z",
            ],
        ),
        (
            "0 0 * * 7",
            "2026-01-01T00:00:00Z",  # 7 is Sunday too
            ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"],
        ),
        # Month names.
        ("0 0 1 JAN,JUL *", "2026-01-01T00:00:00Z", ["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"]),
        (
            "0 0 1 jun-aug *",
            "2026-01-01T00:00:00Z",
            ["2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z", "2026-08-01T00:00:00Z", "2027-06-01T00:00:00Z"],
        ),
        # L = last day of the month (leap year included).
        (
            "0 0 L * *",
            "2026-01-15T00:00:00Z",
            ["2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z", "2026-04-30T00:00:00Z"],
        ),
        ("0 0 L 2 *", "2027-03-01T00:00:00Z", ["2028-02-29T00:00:00Z", "2029-02-28T00:00:00Z"]),
        # 5L = last Friday of the month; L5 and FRIL are the same.
        ("0 0 * * 5L", "2026-01-01T00:00:00Z", ["2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z", "2026-03-27T00:00:00Z"]),
        ("0 0 * * FRIL", "2026-01-01T00:00:00Z", ["2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z", "2026-03-27T00:00:00Z"]),
        ("0 0 * * L5", "2026-01-01T00:00:00Z", ["2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z", "2026-03-27T00:00:00Z"]),
        # n#k = k-th weekday of the month.
        ("0 0 * * 1#2", "2026-01-01T00:00:00Z", ["2026-01-12T00:00:00Z", "2026-02-09T00:00:00Z", "2026-03-09T00:00:00Z"]),
        ("0 0 * * MON#1", "2026-01-01T00:00:00Z", ["2026-01-05T00:00:00Z", "2026-02-02T00:00:00Z", "2026-03-02T00:00:00Z"]),
        # Day-of-month and day-of-week both restricted: OR (Vixie), not AND.
        (
            "0 0 1 * 1",
            "2026-01-01T00:00:00Z",
            [
                "2026-01-05T00:00:00Z",
                "2026-01-12T00:00:00Z",
                "2026-01-19T00:00:00Z",
                "2026-01-26T00:00:00Z",
                "2026-02-01T00:00:00Z",
                "2026-02-02T00:00:00Z",
            ],
        ),
        # ... for every form: days 1-7 or the 2nd Friday (9 Jan, 13 Feb) ...
        (
            "0 9 1-7 * 5#2",
            "2026-01-07T12:00:00Z",
            [
                "2026-01-09T09:00:00Z",
                "2026-02-01T09:00:00Z",
                "2026-02-02T09:00:00Z",
                "2026-02-03T09:00:00Z",
                "2026-02-04T09:00:00Z",
                "2026-02-05T09:00:00Z",
                "2026-02-06T09:00:00Z",
                "2026-02-07T09:00:00Z",
                "2026-02-13T09:00:00Z",
            ],
        ),
        # ... the last day or the last Saturday (28 Mar, 25 Apr) ...
        (
            "0 9 L * 6L",
            "2026-03-01T00:00:00Z",
            ["2026-03-28T09:00:00Z", "2026-03-31T09:00:00Z", "2026-04-25T09:00:00Z", "2026-04-30T09:00:00Z"],
        ),
        # ... the 10th, 15th and 20th or the 2nd Friday.
        (
            "0 9 10-20/5 * 5#2",
            "2026-01-01T00:00:00Z",
            [
                "2026-01-09T09:00:00Z",
                "2026-01-10T09:00:00Z",
                "2026-01-15T09:00:00Z",
                "2026-01-20T09:00:00Z",
                "2026-02-10T09:00:00Z",
                "2026-02-13T09:00:00Z",
                "2026-02-15T09:00:00Z",
            ],
        ),
        # A day field beginning with '*' (a step too) is not a restriction:
        # both fields must match. Odd days that are Mondays ...
        (
            "0 9 */2 * 1",
            "2026-01-01T00:00:00Z",
            ["2026-01-05T09:00:00Z", "2026-01-19T09:00:00Z", "2026-02-09T09:00:00Z", "2026-02-23T09:00:00Z"],
        ),
        # ... and the 1st when a Sunday, Tuesday, Thursday or Saturday.
        (
            "0 9 1 * */2",
            "2026-01-01T00:00:00Z",
            ["2026-01-01T09:00:00Z", "2026-02-01T09:00:00Z", "2026-03-01T09:00:00Z", "2026-08-01T09:00:00Z"],
        ),
        # Only one restricted: that one alone.
        ("0 0 13 * *", "2026-01-01T00:00:00Z", ["2026-01-13T00:00:00Z", "2026-02-13T00:00:00Z"]),
        # Feb 29 only exists in leap years.
        ("0 0 29 2 *", "2026-01-01T00:00:00Z", ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]),
    ],
)
def test_field_forms(spec: str, after: str, expected: list[str]) -> None:
    assert fires(spec, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@yearly", ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
        ("@annually", ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
        ("@monthly", ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"]),
        ("@weekly", ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"]),
        ("@daily", ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]),
        ("@midnight", ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]),
        ("@hourly", ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]),
        ("@DAILY", ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]),
    ],
)
def test_macros(macro: str, expected: list[str]) -> None:
    assert fires(macro, "2026-01-01T00:00:00Z", 2) == expected


@pytest.mark.parametrize(
    ("spec", "after", "expected"),
    [
        ("@every 30s", "2026-01-01T00:00:10Z", ["2026-01-01T00:00:30Z", "2026-01-01T00:01:00Z", "2026-01-01T00:01:30Z"]),
        # 5400 s divides 2026-01-01T00:00Z (1767225600) exactly.
        ("@every 1h30m", "2026-01-01T00:00:00Z", ["2026-01-01T01:30:00Z", "2026-01-01T03:00:00Z"]),
        # 4020 s: 1767225600 / 4020 = 439608.36, so the first multiple after is
        # 439609 * 4020 = 1767228180 = 00:43:00Z, then +67 min.
        ("@every 1h7m", "2026-01-01T00:00:00Z", ["2026-01-01T00:43:00Z", "2026-01-01T01:50:00Z", "2026-01-01T02:57:00Z"]),
        ("@every 1d", "2026-01-01T10:00:00Z", ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]),
        ("@every 2h", "2026-01-01T01:00:00Z", ["2026-01-01T02:00:00Z", "2026-01-01T04:00:00Z"]),
    ],
)
def test_every(spec: str, after: str, expected: list[str]) -> None:
    assert fires(spec, after, len(expected)) == expected


def test_every_ignores_dst() -> None:
    # Spring forward in New York at 07:00Z: an interval schedule does not care.
    assert fires("@every 1h", "2026-03-08T05:30:00Z", 3, "America/New_York") == [
        "2026-03-08T06:00:00Z",
        "2026-03-08T07:00:00Z",
        "2026-03-08T08:00:00Z",
    ]
    assert fires("@every 1h", "2026-11-01T04:30:00Z", 3, "America/New_York") == [
        "2026-11-01T05:00:00Z",
        "2026-11-01T06:00:00Z",
        "2026-11-01T07:00:00Z",
    ]


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
    assert [iso(x) for x in sched.next_n(ms("2026-01-01T00:00:00Z"), 2)] == ["2026-01-01T12:00:00Z", "2026-01-02T12:00:00Z"]
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


@pytest.mark.parametrize(
    ("spec", "fixed"),
    [
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
    ],
)
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
    others = {tuple(CronSchedule.parse("H H * * *", hash_key=f"job-{i}").next_n(start, 1)) for i in range(10)}
    assert len(others) > 1


def test_hash_forms_stay_in_range() -> None:
    for i in range(50):
        key = f"job-{i}"
        ranged = CronSchedule.parse("H(0-29)/10 H(9-17) * * *", hash_key=key)
        times = [datetime.fromtimestamp(x // 1000, UTC) for x in ranged.next_n(ms("2026-01-01T00:00:00Z"), 4)]
        # One hashed hour; minutes every 10 from a hashed start below 10.
        assert len({t.hour for t in times}) == 1 and 9 <= times[0].hour <= 17
        assert times[0].minute < 10
        assert [t.minute - times[0].minute for t in times[:3]] == [0, 10, 20]
        # A bare H in day-of-month stays on a day every month has.
        dom = CronSchedule.parse("0 0 H * *", hash_key=key)
        days = [datetime.fromtimestamp(x // 1000, UTC).day for x in dom.next_n(ms("2026-01-01T00:00:00Z"), 3)]
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


HASH_SPECS = [
    "H * * * *",
    "H H * * *",
    "H(0-29) H(9-17) * * MON-FRI",
    "H H/4 * * *",
    "H/15 * * * *",
    "H(0-29)/10 H(9-17) * * *",
    "H H H * *",
    "H H * * H",
    "H * * * * *",
    "H H H * * *",
    "30 H(1-5)/2 * JAN,JUL *",
]


@pytest.mark.parametrize("spec", HASH_SPECS)
def test_hash_values_are_croniters_own(spec: str) -> None:
    """H is resolved the way croniter itself resolves it for that hash id."""
    seconds = len(spec.split()) == 6
    expr = " ".join("H(1-28)" if i == (3 if seconds else 2) and f == "H" else f for i, f in enumerate(spec.split()))
    start = datetime(2026, 1, 1)
    for i in range(40):
        name = f"job-{i}"
        ours = CronSchedule.parse(spec, "UTC", hash_key=name).next_n(ms("2026-01-01T00:00:00Z"), 4)
        it = croniter(expr, start, hash_id=name, second_at_beginning=seconds)
        theirs = [int(it.get_next(datetime).replace(tzinfo=UTC).timestamp()) * 1000 for _ in range(4)]
        assert ours == theirs, name


ESTIMATE_SPECS = [
    "30 2 * * *",
    "0 * * * *",
    "*/15 2 * * *",
    "0 9 * * MON-FRI",
    "0 0 L * *",
    "45 1 * * 0",
    "0 30 2 * * *",
    "*/20 * * * * *",
    "0 0 1 JAN,JUL *",
    "0 12 * * TUE#2",
    "H H * * *",
    "@hourly",
    "@every 1h30m",
    "0 0 29 2 *",
    "* 2 * 3 0#2",
]
ESTIMATE_ZONES = ["UTC", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "Europe/London"]


@pytest.mark.parametrize("tz", ESTIMATE_ZONES)
def test_estimate_is_never_after_the_real_next_fire_time(tz: str) -> None:
    # Instants around transitions (both hemispheres) and ordinary ones.
    instants = [
        ms(x)
        for x in (
            "2026-03-08T06:59:59Z",
            "2026-03-29T00:30:00Z",
            "2026-04-04T15:10:00Z",
            "2026-10-03T15:45:00Z",
            "2026-11-01T05:59:00Z",
            "2026-11-01T06:30:00Z",
            "2026-01-01T00:00:00Z",
            "2027-06-15T13:37:11Z",
        )
    ]
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
