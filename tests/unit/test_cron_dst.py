"""Tests for common.cron across DST transitions (Vixie/ISC rules), and a whole year
against an independent oracle built on zoneinfo's fold rules.

Expected fire times are written by hand as literal UTC instants; the DST
transition instants they rely on are checked against zoneinfo in
test_transition_instants, so a wrong assumption there fails loudly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from crontrio.common import cron_zone
from crontrio.common.cron import CronSchedule
from tests.unit.cron_helpers import collect, fires, iso, ms

# ---------------------------------------------------------------------------
# DST
# ---------------------------------------------------------------------------

# (zone, transition instant, offset before, offset after) in hours: the facts
# the hand-computed expectations below rely on.
TRANSITIONS = [
    ("America/New_York", "2026-03-08T07:00:00Z", -5, -4),  # 02:00 EST -> 03:00 EDT
    ("America/New_York", "2026-11-01T06:00:00Z", -4, -5),  # 02:00 EDT -> 01:00 EST
    ("Australia/Sydney", "2026-04-04T16:00:00Z", 11, 10),  # 03:00 AEDT -> 02:00 AEST
    ("Australia/Sydney", "2026-10-03T16:00:00Z", 10, 11),  # 02:00 AEST -> 03:00 AEDT
    ("Europe/London", "2026-03-29T01:00:00Z", 0, 1),  # 01:00 GMT -> 02:00 BST
    ("Europe/London", "2026-10-25T01:00:00Z", 1, 0),  # 02:00 BST -> 01:00 GMT
    ("Australia/Lord_Howe", "2026-04-04T15:00:00Z", 11, 10.5),  # 02:00 -> 01:30
    ("Australia/Lord_Howe", "2026-10-03T15:30:00Z", 10.5, 11),  # 02:00 -> 02:30
    ("America/Santiago", "2026-04-05T03:00:00Z", -3, -4),  # 24:00 -> 23:00
    ("America/Santiago", "2026-09-06T04:00:00Z", -4, -3),  # 24:00 -> 01:00
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
            "2026-03-06T07:30:00Z",
            "2026-03-07T07:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z",
            "2026-03-10T06:30:00Z",
            "2026-03-11T06:30:00Z",
        ]

    def test_several_gap_times_collapse_into_one_firing(self) -> None:
        assert fires("0,30 2 * * *", "2026-03-07T12:00:00Z", 3, self.TZ) == [
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:00:00Z",
            "2026-03-09T06:30:00Z",
        ]
        # ... also with a real match right at the end of the gap.
        assert fires("0,30 2,3 * * *", "2026-03-08T06:00:00Z", 3, self.TZ) == [
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:30:00Z",
            "2026-03-09T06:00:00Z",
        ]

    def test_fixed_6_fields_in_gap(self) -> None:
        assert fires("*/10 30 2 * * *", "2026-03-07T12:00:00Z", 3, self.TZ) == [
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z",
            "2026-03-09T06:30:10Z",
        ]

    def test_fixed_in_repeated_hour_fires_once_first_copy(self) -> None:
        assert fires("30 1 * * *", "2026-10-29T12:00:00Z", 5, self.TZ) == [
            "2026-10-30T05:30:00Z",
            "2026-10-31T05:30:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-02T06:30:00Z",
            "2026-11-03T06:30:00Z",
        ]

    def test_fixed_queried_from_inside_second_copy(self) -> None:
        # 06:10Z is 01:10 EST, inside the repeated hour: 01:30 already fired.
        assert fires("30 1 * * *", "2026-11-01T06:10:00Z", 1, self.TZ) == ["2026-11-02T06:30:00Z"]
        assert fires("58 1 * * *", "2026-11-01T06:56:00Z", 1, self.TZ) == ["2026-11-02T06:58:00Z"]
        # The first copy's 01:30 still fires if asked from just before it.
        assert fires("30 1 * * *", "2026-11-01T05:10:00Z", 1, self.TZ) == ["2026-11-01T05:30:00Z"]

    def test_fixed_hour_range_over_fall_back(self) -> None:
        # 01:00 EDT, (01:00 EST is the repeat: skipped), 02:00 EST.
        assert fires("0 1-2 * * *", "2026-11-01T04:30:00Z", 3, self.TZ) == [
            "2026-11-01T05:00:00Z",
            "2026-11-01T07:00:00Z",
            "2026-11-02T06:00:00Z",
        ]

    def test_wildcard_hourly_fall_back_fires_in_both_copies(self) -> None:
        assert fires("0 * * * *", "2026-11-01T03:30:00Z", 4, self.TZ) == [
            "2026-11-01T04:00:00Z",  # 00:00 EDT
            "2026-11-01T05:00:00Z",  # 01:00 EDT
            "2026-11-01T06:00:00Z",  # 01:00 EST
            "2026-11-01T07:00:00Z",
        ]  # 02:00 EST

    def test_wildcard_minute_in_fixed_hour_fires_in_both_copies(self) -> None:
        assert fires("*/30 1 * * *", "2026-11-01T04:30:00Z", 5, self.TZ) == [
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-02T06:00:00Z",
        ]

    def test_day_fields_or_on_the_transition_day(self) -> None:
        # Days 1-7 or the 2nd Sunday: 8 March is the 2nd Sunday, and its
        # 02:30 is skipped, so the job fires at the transition.
        assert fires("30 2 1-7 * 0#2", "2026-03-06T00:00:00Z", 4, self.TZ) == [
            "2026-03-06T07:30:00Z",
            "2026-03-07T07:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-04-01T06:30:00Z",
        ]

    def test_wildcard_skips_gap(self) -> None:
        assert fires("0 * * * *", "2026-03-08T05:30:00Z", 3, self.TZ) == [
            "2026-03-08T06:00:00Z",  # 01:00 EST
            "2026-03-08T07:00:00Z",  # 03:00 EDT (02:00 never existed)
            "2026-03-08T08:00:00Z",
        ]
        assert fires("*/30 * * * *", "2026-03-08T06:00:00Z", 3, self.TZ) == [
            "2026-03-08T06:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:30:00Z",
        ]
        # A wildcard job whose only time today is in the gap skips the day.
        assert fires("* 2 * * *", "2026-03-07T12:00:00Z", 1, self.TZ) == ["2026-03-09T06:00:00Z"]

    def test_seconds_job_near_transitions(self) -> None:
        assert fires("*/10 * * * * *", "2026-03-08T06:59:30Z", 4, self.TZ) == [
            "2026-03-08T06:59:40Z",
            "2026-03-08T06:59:50Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:00:10Z",
        ]
        assert fires("*/10 * * * * *", "2026-11-01T05:59:40Z", 3, self.TZ) == [
            "2026-11-01T05:59:50Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T06:00:10Z",
        ]

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
            "2026-04-02T15:30:00Z",
            "2026-04-03T15:30:00Z",
            "2026-04-04T15:30:00Z",  # 02:30 AEDT, first copy only
            "2026-04-05T16:30:00Z",
        ]

    def test_wildcard_in_repeated_hour(self) -> None:
        assert fires("*/30 * * * *", "2026-04-04T14:50:00Z", 6, self.TZ) == [
            "2026-04-04T15:00:00Z",
            "2026-04-04T15:30:00Z",  # 02:00, 02:30 AEDT
            "2026-04-04T16:00:00Z",
            "2026-04-04T16:30:00Z",  # 02:00, 02:30 AEST
            "2026-04-04T17:00:00Z",
            "2026-04-04T17:30:00Z",
        ]

    def test_fixed_in_gap(self) -> None:
        # Spring forward 2026-10-04 02:00 AEST -> 03:00 AEDT (16:00Z on the 3rd).
        assert fires("30 2 * * *", "2026-10-01T00:00:00Z", 4, self.TZ) == [
            "2026-10-01T16:30:00Z",
            "2026-10-02T16:30:00Z",
            "2026-10-03T16:00:00Z",  # the transition itself
            "2026-10-04T15:30:00Z",
        ]

    def test_wildcard_skips_gap(self) -> None:
        assert fires("0 * * * *", "2026-10-03T14:30:00Z", 3, self.TZ) == [
            "2026-10-03T15:00:00Z",
            "2026-10-03T16:00:00Z",
            "2026-10-03T17:00:00Z",
        ]

    def test_seconds_job_near_transitions(self) -> None:
        assert fires("*/10 * * * * *", "2026-10-03T15:59:40Z", 3, self.TZ) == [
            "2026-10-03T15:59:50Z",
            "2026-10-03T16:00:00Z",
            "2026-10-03T16:00:10Z",
        ]
        assert fires("0 30 2 * * *", "2026-10-03T12:00:00Z", 2, self.TZ) == ["2026-10-03T16:00:00Z", "2026-10-04T15:30:00Z"]


class TestLondon:
    TZ = "Europe/London"

    def test_spring_forward(self) -> None:
        assert fires("30 1 * * *", "2026-03-27T12:00:00Z", 3, self.TZ) == [
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z",
        ]
        assert fires("30 * * * *", "2026-03-29T00:00:00Z", 3, self.TZ) == [
            "2026-03-29T00:30:00Z",
            "2026-03-29T01:30:00Z",
            "2026-03-29T02:30:00Z",
        ]

    def test_fall_back(self) -> None:
        assert fires("30 1 * * *", "2026-10-23T12:00:00Z", 3, self.TZ) == [
            "2026-10-24T00:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z",
        ]
        assert fires("30 * * * *", "2026-10-24T23:45:00Z", 3, self.TZ) == [
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-25T02:30:00Z",
        ]


class TestLordHowe:
    """30-minute DST shift."""

    TZ = "Australia/Lord_Howe"

    def test_gap(self) -> None:
        # 2026-10-04 02:00 +10:30 -> 02:30 +11 at 15:30Z on the 3rd.
        assert fires("15 2 * * *", "2026-10-02T00:00:00Z", 3, self.TZ) == [
            "2026-10-02T15:45:00Z",
            "2026-10-03T15:30:00Z",
            "2026-10-04T15:15:00Z",
        ]
        assert fires("*/15 * * * *", "2026-10-03T15:10:00Z", 3, self.TZ) == [
            "2026-10-03T15:15:00Z",  # 01:45
            "2026-10-03T15:30:00Z",  # 02:30 (02:00 and 02:15 skipped)
            "2026-10-03T15:45:00Z",
        ]

    def test_repeat(self) -> None:
        # 2026-04-05 02:00 +11 -> 01:30 +10:30 at 15:00Z on the 4th.
        assert fires("45 1 * * *", "2026-04-03T00:00:00Z", 3, self.TZ) == [
            "2026-04-03T14:45:00Z",
            "2026-04-04T14:45:00Z",
            "2026-04-05T15:15:00Z",
        ]
        assert fires("*/15 * * * *", "2026-04-04T14:20:00Z", 5, self.TZ) == [
            "2026-04-04T14:30:00Z",
            "2026-04-04T14:45:00Z",  # 01:30, 01:45 +11
            "2026-04-04T15:00:00Z",
            "2026-04-04T15:15:00Z",  # 01:30, 01:45 +10:30
            "2026-04-04T15:30:00Z",
        ]


def test_midnight_gap_in_santiago() -> None:
    # Chile springs forward at 24:00 -> 01:00: midnight does not exist.
    assert fires("@daily", "2026-09-04T12:00:00Z", 3, "America/Santiago") == [
        "2026-09-05T04:00:00Z",
        "2026-09-06T04:00:00Z",
        "2026-09-07T03:00:00Z",
    ]


def test_every_second_across_transitions_many_calls() -> None:
    """Thousands of chained calls across each transition: each exactly +1 s."""
    for tz, start in [
        ("America/New_York", "2026-03-08T06:30:00Z"),
        ("America/New_York", "2026-11-01T05:30:00Z"),
        ("Australia/Lord_Howe", "2026-04-04T14:30:00Z"),
    ]:
        sched = CronSchedule.parse("* * * * * *", tz)
        t = ms(start)
        for _ in range(3600):
            nxt = sched.next_after(t)
            assert nxt == t + 1000
            t = nxt


def test_far_away_matches() -> None:
    # Sparse specs jump ahead instead of walking every transition between.
    # 2044-02-29 is the next Monday that is the 5th Monday of a February.
    assert fires("0 0 * 2 1#5", "2026-01-01T00:00:00Z", 1, "Europe/Berlin") == ["2044-02-28T23:00:00Z"]
    assert fires("30 2 29 2 *", "2026-01-01T00:00:00Z", 2, "America/New_York") == ["2028-02-29T07:30:00Z", "2032-02-29T07:30:00Z"]
    # ... and still get the DST rules right when they land on a transition.
    assert fires("30 2 8 3 *", "2025-05-01T00:00:00Z", 2, "America/New_York") == ["2026-03-08T07:00:00Z", "2027-03-08T07:30:00Z"]
    assert fires("30 1 1 11 *", "2025-11-02T00:00:00Z", 2, "America/New_York") == ["2026-11-01T05:30:00Z", "2027-11-01T05:30:00Z"]
    assert fires("*/30 1 1 11 *", "2025-11-02T00:00:00Z", 4, "America/New_York") == [
        "2026-11-01T05:00:00Z",
        "2026-11-01T05:30:00Z",
        "2026-11-01T06:00:00Z",
        "2026-11-01T06:30:00Z",
    ]


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


PROPERTY_ZONES = [
    "America/New_York",
    "Australia/Sydney",
    "Europe/London",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Europe/Dublin",
    "UTC",
]
# Every transition in these zones falls on a Sunday (Saturday's last hour for
# Santiago's fall-back), so the weekend-only specs still cross all of them.
PROPERTY_SPECS = [
    "0 * * * 0,6",
    "30 2 * * *",
    "0,30 1-3 * * *",
    "*/20 1-2 * * *",
    "15 1,2 * * 0",
    "*/15 2 * * 0",
    "45 1 * * *",
    "0 0 * * *",
    "0 30 2 * * *",
    "30 */10 1,2 * * *",
    "15,45 * * * 0",
    "0 23 * * *",
]


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
        gap_end = datetime.fromtimestamp(t - 1, z).utcoffset() != datetime.fromtimestamp(t, z).utcoffset()
        assert matches or (sched.is_fixed_time and gap_end), iso(t * 1000)
    assert got == _oracle(spec, tz, seconds, sched.is_fixed_time, start, end)


@pytest.mark.parametrize("bits", [12, 18])
def test_zone_cache_chunk_size_does_not_matter(monkeypatch: pytest.MonkeyPatch, bits: int) -> None:
    """Tiny cache chunks put a chunk edge next to every transition."""
    monkeypatch.setattr(cron_zone, "_CHUNK_BITS", bits)
    monkeypatch.setattr(cron_zone, "_timelines", {})
    windows = [("2026-03-01T00:00:00Z", "2026-04-10T00:00:00Z"), ("2026-09-25T00:00:00Z", "2026-11-05T00:00:00Z")]
    for tz in ["America/New_York", "Australia/Sydney", "Australia/Lord_Howe"]:
        for spec in ["30 1 * * *", "30 2 * * *", "*/30 1-2 * * *", "0 * * * *"]:
            sched = CronSchedule.parse(spec, tz)
            for first, last in windows:
                start, end = ms(first) // 1000, ms(last) // 1000
                got = collect(sched, start, end)
                assert got == _oracle(spec, tz, False, sched.is_fixed_time, start, end)
    # From inside the repeated hour (01:56 EST), with the fall-back in an
    # earlier chunk: 01:58 already fired in the first copy.
    assert fires("58 1 * * *", "2026-11-01T06:56:00Z", 1, "America/New_York") == ["2026-11-02T06:58:00Z"]
    assert fires("30 1 1 11 *", "2025-11-02T00:00:00Z", 2, "America/New_York") == ["2026-11-01T05:30:00Z", "2027-11-01T05:30:00Z"]
    assert fires("*/30 1 1 11 *", "2026-10-20T00:00:00Z", 4, "America/New_York") == [
        "2026-11-01T05:00:00Z",
        "2026-11-01T05:30:00Z",
        "2026-11-01T06:00:00Z",
        "2026-11-01T06:30:00Z",
    ]


def test_a_zone_answers_each_instant_alike_however_often_and_in_whatever_order_asked() -> None:
    """Timeline keeps its last answer (a full load asks about one instant
    for every job): instants on both sides of a transition, asked in turns
    and again, get the answers a fresh timeline gives."""
    spring = ms("2026-03-29T01:00:00Z") // 1000  # Europe/Berlin: +1 h -> +2 h
    instants = [spring - 1, spring, spring + 7200, spring - 1, spring - 1, spring + 7200, spring]
    shared = cron_zone.Timeline("Europe/Berlin")
    for t in instants:
        assert shared.segment(t) == cron_zone.Timeline("Europe/Berlin").segment(t)
    assert shared.segment(spring - 1)[2] == 3600 and shared.segment(spring)[2] == 7200
