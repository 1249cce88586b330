"""The burst on the peers (APScheduler in memory, Celery beat + RedBeat),
each in bench/.venv-peers, its lag measured at a fresh sink the same way as
crontrio's (bench/burst.py)."""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.burst_common import CPU_BEFORE_MS, READY_MARGIN_S, SCENARIO, default_lead, sink_lags, start_sink
from bench.fire_lag import lag_histogram
from bench.harness import (
    REPO,
    Scenario,
    default_out_dir,
    make_result,
    summary_line,
    write_result,
)

PEERS = {
    # system -> the driver in bench/.venv-peers
    "apscheduler-memory": "bench.peers.apscheduler_burst",
    "celery-redbeat": "bench.peers.celery_burst",
}


def run_peer(
    system: str, jobs: int = 10_000, lead: int | None = None, out_dir: Path | None = None, keep: bool = False
) -> tuple[dict[str, Any], Path]:
    """The same burst on a peer (PEERS, in bench/.venv-peers), its lag measured at a fresh sink."""
    from bench.peers.__main__ import ensure_venv

    py = ensure_venv()
    out_dir = out_dir or default_out_dir()
    # A peer starts in its own interpreter and loads its jobs after the due second is fixed.
    lead = lead if lead is not None else default_lead(jobs) + 5 + jobs // 1000
    with Scenario(f"{SCENARIO}-{system}", keep) as sc:
        sink, port, sink_stats = start_sink(sc, "httpsink")
        due_s = math.ceil(time.time()) + lead
        result_file = sc.root / "peer.json"
        argv = [str(py), "-m", PEERS[system], "--jobs", str(jobs), "--due", str(due_s)]
        argv += ["--url", f"http://127.0.0.1:{port}", "--result", str(result_file)]
        peer = subprocess.run(argv, cwd=REPO, timeout=lead + 240, capture_output=True, text=True)
        if peer.returncode != 0 or not result_file.exists():
            raise RuntimeError(f"{system} burst peer exited with {peer.returncode}:\n{peer.stderr[-4000:]}")
        report = json.loads(result_file.read_text())
        if report["ready_before_due_s"] < READY_MARGIN_S:
            raise RuntimeError(f"{system} was ready {report['ready_before_due_s']} s before the due second: raise --lead")
        sink_cpu = sink.stats()
        sink.stop()
        lags, arrived, http_dups, requests = sink_lags(sink_stats, jobs, due_s * 1000)
    b, a = report.pop("cpu_before"), report.pop("cpu_after")
    if "cpu" in b:  # one process (APScheduler): name it
        b, a = {"scheduler": b}, {"scheduler": a}
    cpu = {n: round(a[n]["cpu"] - b[n]["cpu"], 2) for n in a if a.get(n) and b.get(n)}
    window_s = report["cpu_window_end_ms"] / 1000 - (due_s - CPU_BEFORE_MS / 1000)
    extra = {
        **report,
        "due_ms": due_s * 1000,
        "lag_measured_at": "the HTTP sink: first request per job - due time",
        "requests_total": requests,
        "burst_window_s": round(window_s, 2),
        "cpu_seconds_burst": cpu,
        "cpu_ms_per_firing": {n: round(1000 * c / arrived, 3) for n, c in cpu.items()} if arrived else {},
        "loadavg_before": [float(x) for x in report.pop("loadavg_before")],
        "loadavg_after": [float(x) for x in report.pop("loadavg_after")],
        "lag_distribution_ms": lag_histogram(lags),
    }
    result = make_result(
        SCENARIO,
        "",
        {"jobs": jobs, "lead_seconds": lead},
        sc.started_at,
        expected=jobs,
        run=arrived,
        duplicates=http_dups,  # peers keep no run table: requests beyond one per job
        window_seconds=window_s,
        lags_ms=lags,
        stats={**a, "httpsink": sink_cpu},
        extra=extra,
    )
    result["system"] = system
    path = write_result(out_dir, result)
    per_firing = " ".join(f"{n} {v:g}" for n, v in extra["cpu_ms_per_firing"].items())
    print(
        summary_line(result, path).replace(f"{SCENARIO}:", f"{SCENARIO}/{system}:", 1) + f" | burst cpu ms/firing {per_firing}",
        flush=True,
    )
    return result, path
