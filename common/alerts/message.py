"""What an alert says: one channel-neutral record, and the builders that make one.

Channels render an `Alert` their own way (a mail, one SMS line, a chat
message), so it carries a one-line `subject`, a plain multi-line `text` and
the same facts as structured `fields`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from crontrio.common import status as st
from crontrio.common.model import Job, RunRecord, iso_ms

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)

OUTPUT_TAIL_LINES = 20
OUTPUT_TAIL_BYTES = 2048
SUBJECT_MAX_CHARS = 200
ERROR_FIELD_MAX_CHARS = 1000

_SEVERITY_OF_STATUS = {
    st.FAILED: ERROR,
    st.TIMEOUT: ERROR,
    st.LOST: ERROR,
    st.KILLED: ERROR,
    st.MISSED: ERROR,
    st.SKIPPED: WARNING,
    st.SUCCEEDED: INFO,
}
# Control characters other than tab and newline: a job's output may hold
# anything, an alert body should not (terminal escapes, NULs, \r progress bars).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Alert:
    """One alert, before any channel renders it.

    ``key`` is its identity for throttling: alerts with the same key (e.g.
    ``run:backup:failed`` or ``executor-down:10.0.0.5:5921``) within the
    throttle window are sent once.
    """

    key: str
    subject: str  # one line
    text: str  # plain text, several lines
    fields: dict[str, str] = field(default_factory=dict)
    severity: str = ERROR

    def with_suppressed(self, count: int) -> Alert:
        """This alert, saying that `count` identical ones were not sent."""
        if count <= 0:
            return self
        note = f"({count} similar alert{'s' if count != 1 else ''} suppressed)"
        return dataclasses.replace(
            self,
            subject=f"{self.subject} {note}",
            text=f"{self.text.rstrip()}\n\n{note}\n",
            fields={**self.fields, "suppressed": str(count)},
        )


def one_line(text: str, limit: int = SUBJECT_MAX_CHARS) -> str:
    """Collapse whitespace (newlines included) and cap the length: a header-safe line."""
    line = " ".join(_CONTROL.sub(" ", text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def output_tail(output: bytes, lines: int = OUTPUT_TAIL_LINES, max_bytes: int = OUTPUT_TAIL_BYTES) -> str:
    """The last `lines` lines of a run's output, at most `max_bytes` of UTF-8, control characters removed."""
    text = output.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text).rstrip()
    tail = "\n".join(text.split("\n")[-lines:]) if text else ""
    raw = tail.encode("utf-8")
    if len(raw) > max_bytes:
        # Cut at the front; drop a split UTF-8 sequence rather than show garbage.
        tail = "…" + raw[len(raw) - max_bytes + len("…".encode()) :].decode("utf-8", errors="ignore")
    return tail


def _duration(run: RunRecord) -> str:
    if not run.started_ms or not run.finished_ms or run.finished_ms < run.started_ms:
        return "-"
    return f"{(run.finished_ms - run.started_ms) / 1000:.3f}s"


def _when(ms: int) -> str:
    return iso_ms(ms) if ms else "-"


def run_alert(job: Job, run: RunRecord, retries_used: int) -> Alert:
    """The alert for one run's outcome (failed, timed out, lost, ... or succeeded)."""
    status = run.status
    severity = _SEVERITY_OF_STATUS.get(status, WARNING)
    tail = output_tail(run.output)
    error = run.error.strip()
    fields: dict[str, str] = {
        "job": job.name,
        "run_id": run.run_id,
        "status": status,
        "executor": run.executor or "-",
        "host": run.host or "-",
        "scheduled": _when(run.scheduled_ms),
        "started": _when(run.started_ms),
        "finished": _when(run.finished_ms),
        "duration": _duration(run),
        "exit_code": str(run.exit_code),
        "attempt": str(run.attempt),
        "retries": f"{retries_used} of {job.retries}",
        "trigger": run.trigger,
    }
    if error:
        fields["error"] = error if len(error) <= ERROR_FIELD_MAX_CHARS else error[: ERROR_FIELD_MAX_CHARS - 1] + "…"
    if run.shard_total:
        fields["shard"] = f"{run.shard + 1} of {run.shard_total}"
    fields["output_tail"] = tail

    subject = one_line(f"[crontrio] job {job.name} {status} (run {run.run_id}, exit code {run.exit_code})")
    labels = [
        ("Job", "job"),
        ("Run", "run_id"),
        ("Status", "status"),
        ("Executor", "executor"),
        ("Host", "host"),
        ("Scheduled", "scheduled"),
        ("Started", "started"),
        ("Finished", "finished"),
        ("Duration", "duration"),
        ("Exit code", "exit_code"),
        ("Attempt", "attempt"),
        ("Retries", "retries"),
        ("Shard", "shard"),
        ("Trigger", "trigger"),
    ]
    body = [f"{label + ':':<11} {fields[name]}" for label, name in labels if name in fields]
    if error:
        body += ["", "Error:", error]
    if tail:
        truncated = " (output truncated by the executor)" if run.output_truncated else ""
        body += ["", f"Output (last {OUTPUT_TAIL_LINES} lines){truncated}:", tail]
    else:
        body += ["", "Output: (none)"]
    return Alert(key=f"run:{job.name}:{status}", subject=subject, text="\n".join(body) + "\n", fields=fields, severity=severity)


def overrun_alert(job: Job, run: RunRecord) -> Alert:
    """The alert for a run past its timeout that was left running (timeout_action alert)."""
    fields: dict[str, str] = {
        "job": job.name,
        "run_id": run.run_id,
        "status": "overrunning",
        "executor": run.executor or "-",
        "host": run.host or "-",
        "scheduled": _when(run.scheduled_ms),
        "started": _when(run.started_ms),
        "timeout": f"{job.timeout_seconds:g}s",
        "overran": _when(run.overrun_ms),
    }
    subject = one_line(
        f"[crontrio] job {job.name} overran its {job.timeout_seconds:g}s timeout and is still running (run {run.run_id})"
    )
    labels = [("Job", "job"), ("Run", "run_id"), ("Executor", "executor"), ("Host", "host")]
    labels += [("Scheduled", "scheduled"), ("Started", "started"), ("Timeout", "timeout"), ("Overran", "overran")]
    body = [f"{label + ':':<11} {fields[name]}" for label, name in labels]
    body += [
        "",
        f"The run passed its {job.timeout_seconds:g}s timeout. The job's timeout action is 'alert', so it was",
        f"not killed: it is still running, and its real end will be recorded (cronctl run show {run.run_id}).",
    ]
    # Keyed by run: another run overrunning is news, this one again is not.
    return Alert(key=f"overrun:{run.run_id}", subject=subject, text="\n".join(body) + "\n", fields=fields, severity=WARNING)


def system_alert(key: str, subject: str, text: str, severity: str = WARNING) -> Alert:
    """An alert about crontrio itself (an executor down, missed firings, ...)."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    line = one_line(subject)
    if not line.startswith("[crontrio]"):
        line = one_line(f"[crontrio] {line}")
    return Alert(key=key, subject=line, text=text if text.endswith("\n") else text + "\n", fields={}, severity=severity)
