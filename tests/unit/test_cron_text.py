"""common/cron_text.py: cron specs in plain English and Simplified Chinese."""

from __future__ import annotations

import pytest

from crontrio.common.cron_text import describe

CASES = [
    # spec, English, Chinese
    ("30 2 * * *", "at 02:30 every day", "每天 02:30"),
    ("*/10 * * * * *", "every 10 seconds", "每 10 秒"),
    ("@every 10s", "every 10 seconds", "每 10 秒"),
    ("@every 1h30m", "every 1 hour 30 minutes", "每 1 小时 30 分钟"),
    ("@every 1m", "every minute", "每 1 分钟"),
    ("0 * * * 1-5", "at minute 0 past every hour on Monday to Friday", "周一至周五 每小时的第 0 分钟"),
    ("0 * * * MON-FRI", "at minute 0 past every hour on Monday to Friday", "周一至周五 每小时的第 0 分钟"),
    ("* * * * *", "every minute", "每分钟"),
    ("*/15 * * * *", "every 15 minutes", "每 15 分钟"),
    ("30 * * * * *", "at second 30 past every minute", "每分钟的第 30 秒"),
    ("15 10 9 * * *", "at 09:10:15 every day", "每天 09:10:15"),
    ("0 9,18 * * *", "at 09:00 and 18:00 every day", "每天 09:00、18:00"),
    ("0 9-17 * * *", "at minute 0 past every hour from 9 to 17", "9 点至 17 点每小时的第 0 分钟"),
    ("0 */2 * * *", "at minute 0 past every 2 hours", "每 2 小时的第 0 分钟"),
    ("1,2,3 * * * *", "at minutes 1, 2 and 3 past every hour", "每小时的第 1、2、3 分钟"),
    ("0 0 1 * *", "at 00:00 on day 1 of the month", "每月 1 日 00:00"),
    ("0 0 1-7 * *", "at 00:00 on days 1 to 7 of the month", "每月 1 日至 7 日 00:00"),
    ("0 0 */2 * *", "at 00:00 every 2 days", "每 2 天 00:00"),
    ("0 9 L * *", "at 09:00 on the last day of the month", "每月最后一天 09:00"),
    ("0 9 L-3 * *", "at 09:00 on 3 days before the last day of the month", "每月最后一天前 3 天 09:00"),
    ("0 9 * * 5L", "at 09:00 on the last Friday of the month", "每月最后一个周五 09:00"),
    ("0 9 * * 1#2", "at 09:00 on the second Monday of the month", "每月第 2 个周一 09:00"),
    ("0 12 * * 0,6", "at 12:00 on Sunday and Saturday", "周日、周六 12:00"),
    ("0 15 * * 7", "at 15:00 on Sunday", "周日 15:00"),
    ("0 0 1 * 1", "at 00:00 on day 1 of the month or on Monday", "每月 1 日或周一 00:00"),
    ("0 0 1 1,7 *", "at 00:00 on day 1 of the month in January and July", "1 月、7 月 1 日 00:00"),
    ("0 0 * JAN-MAR *", "at 00:00 every day from January to March", "1 月至 3 月 每天 00:00"),
    (
        "*/5 9-17 * * 1-5",
        "every 5 minutes past every hour from 9 to 17 on Monday to Friday",
        "周一至周五 9 点至 17 点每小时的每 5 分钟",
    ),
    ("@daily", "at 00:00 every day", "每天 00:00"),
    ("@midnight", "at 00:00 every day", "每天 00:00"),
    ("@hourly", "at minute 0 past every hour", "每小时的第 0 分钟"),
    ("@weekly", "at 00:00 on Sunday", "周日 00:00"),
    ("@monthly", "at 00:00 on day 1 of the month", "每月 1 日 00:00"),
    ("@yearly", "at 00:00 on day 1 of the month in January", "1 月 1 日 00:00"),
]


@pytest.mark.parametrize(("spec", "english", "chinese"), CASES)
def test_describes_in_both_languages(spec: str, english: str, chinese: str) -> None:
    assert describe(spec) == english
    assert describe(spec, "zh-CN") == chinese


def test_extra_spaces_are_read_as_one() -> None:
    assert describe("  30   2 * *  * ") == "at 02:30 every day"


@pytest.mark.parametrize(
    "spec",
    [
        "H * * * *",  # hashed: the minute depends on the job name
        "0 0 1W * *",  # nearest weekday: not phrased
        "0 0 * * * * 2030",  # 7 fields
        "@reboot",
        "@every soon",
        "61 * * * *",  # out of range
        "0 0 5-1 * *",  # backwards range
        "*/0 * * * *",
        "* ,* * * *",
        "not a spec",
        "",
    ],
)
def test_unphrasable_forms_come_back_as_the_spec(spec: str) -> None:
    assert describe(spec) == spec
    assert describe(spec, "zh-CN") == spec
