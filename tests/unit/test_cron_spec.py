"""Tests for common.cron_spec: what a spec may be, the messages naming the field,
the CRON_TZ= prefix, and field-by-field checks agreeing with croniter."""

from __future__ import annotations

import pytest
from croniter import croniter

from crontrio.common import cron_spec
from crontrio.common.cron import CronSchedule, validate_timezone
from crontrio.common.errors import ValidationError
from tests.unit.cron_helpers import fires, ms

# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
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
    ],
)
def test_bad_spec(spec: str, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        CronSchedule.parse(spec)
    assert err.value.field == "spec"
    assert message in err.value.message


def test_whether_some_date_matches_is_decided_per_month_field() -> None:
    """Specs with the same day fields share one day rule, which keeps whether
    some date matches per month field: the 30th is no date of February, and
    is one of March, whichever of the specs is asked first."""
    for first, second in (("0 0 30 2 *", "0 0 30 2,3 *"), ("1 0 30 2,3 *", "1 0 30 2 *")):
        for spec in (first, second):
            if "2,3" in spec:
                minute = spec.split()[0]
                after = CronSchedule.parse(spec).next_after(ms("2030-01-01T00:00:00Z"))
                assert after == ms(f"2030-03-30T00:0{minute}:00Z")
            else:
                with pytest.raises(ValidationError, match="never fires"):
                    CronSchedule.parse(spec)


def test_a_field_checked_once_is_checked_alike_in_every_spec() -> None:
    """Fields are checked once per text and position (cron_spec._template_field):
    a bad field is refused every time and in every spec it appears in, with
    the same message; a good one means the same wherever it is written."""
    for spec in ("70 * * * *", "70 0 * * *", "70 * * * *"):
        with pytest.raises(ValidationError, match="field 'minute' value 70 out of range 0-59"):
            CronSchedule.parse(spec)
    # "70" as the second of six fields is a minute there too; as the first it is a second.
    with pytest.raises(ValidationError, match="field 'second' value 70 out of range 0-59"):
        CronSchedule.parse("70 0 * * * *")
    for spec in ("R * * * *", "0 R * * *"):
        with pytest.raises(ValidationError, match="R \\(random\\) is not supported"):
            CronSchedule.parse(spec)
    # The same H field resolves per job name, not once for all.
    a = CronSchedule.parse("H 3 * * *", hash_key="job-a").next_n(0, 3)
    b = CronSchedule.parse("H 3 * * *", hash_key="job-b").next_n(0, 3)
    assert a != b
    assert a == CronSchedule.parse("H 3 * * *", hash_key="job-a").next_n(0, 3)
    # "5-5" is rewritten to "5" in any field position it is cached for.
    assert CronSchedule.parse("5-5 * * * *").next_n(0, 2) == CronSchedule.parse("5 * * * *").next_n(0, 2)
    assert CronSchedule.parse("0 5-5 * * *").next_n(0, 2) == CronSchedule.parse("0 5 * * *").next_n(0, 2)


def test_cron_tz_prefix_sets_the_zone() -> None:
    # 09:00 in Tokyo is 00:00Z; in New York (EDT) 13:00Z.
    assert fires("CRON_TZ=Asia/Tokyo 0 9 * * *", "2026-06-01T12:00:00Z", 2) == ["2026-06-02T00:00:00Z", "2026-06-03T00:00:00Z"]
    sched = CronSchedule.parse("  CRON_TZ=america/new_york   0 9 * * MON ", "")
    assert (sched.spec, sched.timezone) == ("0 9 * * MON", "America/New_York")
    assert sched.next_after(ms("2026-06-01T12:00:00Z")) == ms("2026-06-01T13:00:00Z")  # a Monday
    # The same zone in the job's field too, the TZ= spelling, macros, H, @every.
    assert CronSchedule.parse("TZ=Asia/Tokyo @daily", "Asia/Tokyo").next_after(ms("2026-06-01T12:00:00Z")) == ms(
        "2026-06-01T15:00:00Z"
    )
    hashed = CronSchedule.parse("CRON_TZ=Asia/Tokyo H H * * *", hash_key="job-a")
    assert hashed.timezone == "Asia/Tokyo"
    assert hashed.next_n(ms("2026-06-01T00:00:00Z"), 3) == CronSchedule.parse("H H * * *", "Asia/Tokyo", hash_key="job-a").next_n(
        ms("2026-06-01T00:00:00Z"), 3
    )
    assert CronSchedule.parse("CRON_TZ=Asia/Tokyo @every 5m").timezone == "Asia/Tokyo"


@pytest.mark.parametrize(
    ("spec", "tz", "message"),
    [
        ("CRON_TZ=Asia/Tokyo 0 9 * * *", "Europe/Berlin", "CRON_TZ=Asia/Tokyo contradicts the job's time zone Europe/Berlin"),
        ("CRON_TZ=Mars/Base 0 9 * * *", "UTC", "CRON_TZ: unknown time zone 'Mars/Base'"),
        ("CRON_TZ= 0 9 * * *", "UTC", "CRON_TZ= needs a time zone"),
        ("CRON_TZ=Asia/Tokyo", "UTC", "needs a schedule after CRON_TZ=Asia/Tokyo"),
        ("CRON_TZ=Asia/Tokyo   ", "UTC", "needs a schedule after CRON_TZ=Asia/Tokyo"),
        ("0 9 * * * CRON_TZ=Asia/Tokyo", "UTC", "CRON_TZ=Zone must come first"),
        ("CRON_TZ=Asia/Tokyo 61 9 * * *", "UTC", "field 'minute' value 61 out of range"),
    ],
)
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


@pytest.mark.parametrize(
    "spec",
    [
        "0 0 * * 1#2,2#3",
        "0 0 * * mon#2,tue",
        "0 0 ? * mon",
        "0 0 15W * *",
        "0 0 L * 5L",
        "0 0 1,L * *",
        "0 0 L-2 * *",
        "0 0 * * 1-5#2",
        "59/15 * * * *",
        "0 0 jan-jan * *",
        "*/7 1/5 1-10/3 */2 mon-fri/2",
        "0 0 * * l1-3",
        "0 0 * * 0-7",
        "1,2 3 4 5 6 7",
        "0 0 * * 1#6",
        "0 0 * * L",
        "1-2-3 * * * *",
        "0 0 * * 5#0",
        "0 0 1-31 * mon",
    ],
)
def test_checking_fields_one_by_one_agrees_with_croniter(spec: str) -> None:
    """Fields are validated one at a time (cached): the verdict must be
    croniter's verdict on the whole expression."""
    try:
        template = cron_spec.spec_template(spec)
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
