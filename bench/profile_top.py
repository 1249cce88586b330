"""py-spy raw stacks summarised for people: the top functions by own time,
by package, crontrio's inclusive, and each sample charged to the innermost
crontrio function (bench/burst.py --profile)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from bench.fire_lag import top_frames

# Frames every sample of a service passes through: never where the cost is.
_ENTRY = (
    "<module> (",
    "main (",
    "run_loop (",
    "serve_until_stopped (",
    "DbThreads.run.<locals>.<lambda> (",
    "AsyncStore._run.<locals>.<lambda> (",
)
_NO_CROND = {
    "Runner.run (asyncio/runners.py)": "event loop in C (uvloop: callbacks, task steps, socket I/O)",
    "Thread.run (threading.py)": "a thread running C only (gRPC core's poller)",
    "_worker (concurrent/futures/thread.py)": "thread-pool hand-off (wake-up, GIL)",
}


def charged(raw: Path, limit: int = 25) -> tuple[int, list[tuple[str, int]]]:
    """Samples charged to the innermost crontrio function on their stack (so
    library and C time counts for the crontrio code that asked for it); a
    stack without one is named by its leaf."""
    out: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";") if "(" in f]
        ours = [f for f in frames if "(crontrio/" in f and not f.startswith(_ENTRY)]
        if ours:
            key = ours[-1].replace("(crontrio/", "(")
        elif frames:
            key = _NO_CROND.get(frames[-1], f"no crontrio frame: {frames[-1]}")
        else:
            key = "?"
        out[key] += int(n)
    return total, out.most_common(limit)


def write_top_text(raw: Path, out: Path, title: str) -> None:
    """The top 25 functions by own time (py-spy on-CPU samples), by package,
    crontrio inclusive, and charged to the innermost crontrio function."""
    top = top_frames(raw, 25)
    total, by_ours = charged(raw)
    lines = [
        f"{title}: {top['samples']} samples of runnable threads (py-spy, 100 Hz, every thread; C time counts for "
        "its Python caller; a thread waiting for a core on a loaded machine counts too, so use the shares, not the counts)",
        "",
        "## charged to the innermost crontrio function (library and C time count for their crontrio caller)",
        *(f"{100 * c / total:6.1f}%  {frame}" for frame, c in by_ours),
        "",
    ]
    for heading, key in (
        ("own time (the leaf frame), % of samples", "self_pct"),
        ("own time by package", "self_by_package_pct"),
        ("crontrio functions anywhere on the stack (inclusive)", "crontrio_inclusive_pct"),
    ):
        lines += [f"## {heading}"] + [f"{pct:6.1f}%  {frame}" for frame, pct in top[key].items()] + [""]
    out.write_text("\n".join(lines))
