"""Charts as server-rendered SVG (no JavaScript library): a job's recent
runs (duration and outcome over time) and the last 24 hours' runs by
outcome. Colours come from CSS classes (c-<status>), so dark mode applies;
every value in the markup is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from markupsafe import Markup

from crontrio.console.text import at, duration

WIDTH, HEIGHT, PAD = 600, 140, 18
# Outcome groups of the 24-hour chart, bottom to top, with the CSS class of each.
OUTCOMES = (
    ("succeeded", ("succeeded",)),
    ("failed", ("failed", "timeout", "lost", "killed", "missed")),
    ("skipped", ("skipped",)),
    ("running", ("pending", "queued", "running")),
)
HOUR_MS = 3600_000


def _svg(body: list[str], label: str) -> Markup:
    head = f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">'
    return Markup(head + "".join(body) + "</svg>")


def runs_chart(runs: Sequence[Any], tz: str, label: str) -> Markup:
    """A bar per run, oldest left: height = duration, colour = outcome."""
    runs = list(reversed(runs))
    if not runs:
        return Markup("")
    spans = [max(0, r.finished_ms - r.started_ms) if r.started_ms and r.finished_ms else 0 for r in runs]
    longest = max(spans) or 1
    step = min((WIDTH - 2 * PAD) / len(runs), 24.0)  # a few runs: narrow bars, not a wall
    body = [f'<line class="axis" x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}"/>']
    for i, (run, span) in enumerate(zip(runs, spans, strict=True)):
        height = max(3.0, (HEIGHT - 2 * PAD) * span / longest)
        x = PAD + i * step + step * 0.15
        title = f"{run.run_id} · {run.status} · {duration(run.started_ms, run.finished_ms) or '-'} · {at(run.scheduled_ms, tz)}"
        body.append(
            f'<rect class="c-{escape(run.status)}" x="{x:.1f}" y="{HEIGHT - PAD - height:.1f}" '
            f'width="{step * 0.7:.1f}" height="{height:.1f}"><title>{escape(title)}</title></rect>'
        )
    body.append(f'<text x="{PAD}" y="12">{escape(duration(1, 1 + longest) if max(spans) else "0 s")}</text>')
    body.append(f'<text x="{PAD}" y="{HEIGHT - 4}">{escape(at(runs[0].scheduled_ms, tz))}</text>')
    body.append(f'<text x="{WIDTH - PAD}" y="{HEIGHT - 4}" text-anchor="end">{escape(at(runs[-1].scheduled_ms, tz))}</text>')
    return _svg(body, label)


def hourly_outcomes(runs: Sequence[Any], now_ms: int) -> list[dict[str, int]]:
    """Counts per outcome group for each of the last 24 hours (oldest first)."""
    start = now_ms - 24 * HOUR_MS
    buckets = [{name: 0 for name, _ in OUTCOMES} for _ in range(24)]
    group_of = {status: name for name, statuses in OUTCOMES for status in statuses}
    for run in runs:
        index = (run.scheduled_ms - start) // HOUR_MS
        if 0 <= index < 24 and run.status in group_of:
            buckets[index][group_of[run.status]] += 1
    return buckets


def hourly_outcomes_from_counts(counts: dict[int, dict[str, int]], now_ms: int) -> list[dict[str, int]]:
    """As hourly_outcomes, from Admin.CountRuns' hourly buckets ({start ms: {status: runs}},
    since now_ms - 24 h): every run of the day counted, none listed."""
    start = now_ms - 24 * HOUR_MS
    buckets = [{name: 0 for name, _ in OUTCOMES} for _ in range(24)]
    group_of = {status: name for name, statuses in OUTCOMES for status in statuses}
    for bucket_start, by_status in counts.items():
        index = (bucket_start - start) // HOUR_MS
        for status, count in by_status.items():
            if 0 <= index < 24 and status in group_of:
                buckets[index][group_of[status]] += count
    return buckets


def outcomes_chart(buckets: list[dict[str, int]], now_ms: int, tz: str, label: str) -> Markup:
    """Stacked bars, one per hour, of the runs scheduled in it by outcome."""
    most = max((sum(b.values()) for b in buckets), default=0) or 1
    step = (WIDTH - 2 * PAD) / len(buckets)
    body = [f'<line class="axis" x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}"/>']
    start = now_ms - 24 * HOUR_MS
    for i, bucket in enumerate(buckets):
        base: float = HEIGHT - PAD
        x = PAD + i * step + step * 0.1
        hour = at(start + i * HOUR_MS, tz)
        for name, _ in OUTCOMES:
            count = bucket[name]
            if not count:
                continue
            height = (HEIGHT - 2 * PAD) * count / most
            base -= height
            body.append(
                f'<rect class="c-{name}" x="{x:.1f}" y="{base:.1f}" width="{step * 0.8:.1f}" height="{height:.1f}">'
                f"<title>{escape(f'{hour}: {count} {name}')}</title></rect>"
            )
    body.append(f'<text x="{PAD}" y="12">{most}</text>')
    body.append(f'<text x="{PAD}" y="{HEIGHT - 4}">{escape(at(start, tz))}</text>')
    body.append(f'<text x="{WIDTH - PAD}" y="{HEIGHT - 4}" text-anchor="end">{escape(at(now_ms, tz))}</text>')
    return _svg(body, label)
