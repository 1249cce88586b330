"""The dashboard's 24-hour chart counts every run of a busy day: the store
counts them per hour (Admin.CountRuns with bucket_ms) instead of the console
listing them, which stopped at the newest 2,000."""

from __future__ import annotations

import re
import time

from testing_support.trio import Trio
from tests.e2e.console_helpers import admin_password, browser_login, console_trio, console_url

__all__ = ["console_trio"]  # the module-scoped fixture, used below
RUN_COLUMNS = (
    "run_id, job_id, job_name, scheduled_ms, attempt, status, dispatcher, executor, host, pid, exit_code, "
    "started_ms, finished_ms, output, output_truncated, error, created_ms, updated_ms, shard, shard_total, trigger"
)


def test_the_day_chart_counts_all_of_a_busy_days_runs(console_trio: Trio) -> None:
    t = console_trio
    now = int(time.time() * 1000)
    # 2,600 runs over the last 20 hours, every 13th failed; one 2 days old (outside).
    t.sql(
        f"INSERT INTO runs ({RUN_COLUMNS}) "
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2600) "
        f"SELECT 'busy-' || i, 900, 'busy', {now} - 72000000 + i * 27000, 1, "
        "CASE WHEN i % 13 = 0 THEN 'failed' ELSE 'succeeded' END, 'd', 'e', 'h', 0, 0, 0, 0, x'', 0, '', 0, 0, 0, 0, '' FROM n"
    )
    t.sql(
        f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ('old-1', 900, 'busy', {now - 2 * 86_400_000}, 1, 'failed', "
        "'d', 'e', 'h', 0, 1, 0, 0, x'', 0, '', 0, 0, 0, 0, '')"
    )
    admin = browser_login(console_url(t), "admin", admin_password(t))
    page = admin.get("/").text
    counts = dict(re.findall(r'data-outcome="(\w+)">(\d+)<', page))
    assert int(counts["failed"]) == 2600 // 13
    assert int(counts["succeeded"]) == 2600 - 2600 // 13
    assert "the newest 2,000 runs" not in page
    bars = re.search(r'<svg class="chart".*?</svg>', page, re.S)
    assert bars and bars.group(0).count('class="c-succeeded"') >= 20  # spread over the hours, not one bar
