"""timeout_action: what reaches the executor and the API, and what the overrun alert says."""

from __future__ import annotations

from crontrio.common.alerts.message import overrun_alert
from crontrio.common.convert import job_from_pb, job_to_pb, run_to_pb
from crontrio.common.model import TIMEOUT_ALERT, TIMEOUT_KILL, Job, RunRecord
from crontrio.dispatcher.run_request import build_run_request, request_template
from crontrio.protos import crontrio_pb2 as pb


def job(action: str) -> Job:
    return Job(name="slow", spec="@daily", command="sleep 9", id=7, timeout_seconds=5, timeout_action=action)


def record() -> RunRecord:
    return RunRecord(run_id="7-1000-1", job_id=7, job_name="slow", scheduled_ms=1000, attempt=1, status="running")


def test_kill_sends_the_timeout_alert_sends_none_so_the_executor_never_kills() -> None:
    assert build_run_request(job(TIMEOUT_KILL), record()).timeout_seconds == 5
    assert build_run_request(job(TIMEOUT_ALERT), record()).timeout_seconds == 0
    template = request_template(job(TIMEOUT_ALERT))
    assert build_run_request(job(TIMEOUT_ALERT), record(), template).timeout_seconds == 0


def test_timeout_action_round_trips_and_defaults_to_kill() -> None:
    assert job_from_pb(job_to_pb(job(TIMEOUT_ALERT))).timeout_action == TIMEOUT_ALERT
    assert job_from_pb(pb.Job(name="old", spec="@daily", command="true")).timeout_action == TIMEOUT_KILL
    overran = RunRecord(**{**record().__dict__, "overrun_ms": 6000})
    assert run_to_pb(overran).overrun_ms == 6000


def test_the_overrun_alert_says_it_overran_and_is_still_running() -> None:
    run = RunRecord(**{**record().__dict__, "started_ms": 1000, "overrun_ms": 6000, "executor": "10.0.0.5:5921"})
    alert = overrun_alert(job(TIMEOUT_ALERT), run)
    assert "overran its 5s timeout and is still running" in alert.subject and "7-1000-1" in alert.subject
    assert "not killed" in alert.text and "10.0.0.5:5921" in alert.text
    assert alert.key == "overrun:7-1000-1"  # per run: another run's overrun is not throttled away
