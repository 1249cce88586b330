"""What the common.cron tests share: instants written as ISO text, and fire
times collected by chaining next_after (so chaining is exercised everywhere)."""

from __future__ import annotations

from datetime import UTC, datetime

from crontrio.common.cron import CronSchedule


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
