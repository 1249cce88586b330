"""The store contract, run against every database backend.

SQLite (embedded mode) and a real MariaDB server (distributed mode), each a
fresh database per test.
"""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import text

from crontrio.common.model import Job, RunRecord
from crontrio.common.store.migrate import current_revision, head_revision
from crontrio.common.store.sql_store import JobExistsError, SqlStore


def job(name: str = "j", **kw: object) -> Job:
    return Job(name=name, spec="* * * * *", command="true", **kw)  # type: ignore[arg-type]


def run(job_id: int, scheduled: int, attempt: int = 1, status: str = "pending") -> RunRecord:
    return RunRecord(
        run_id=f"{job_id}-{scheduled}-{attempt}",
        job_id=job_id,
        job_name="j",
        scheduled_ms=scheduled,
        attempt=attempt,
        status=status,
    )


def test_schema_is_at_head(store: SqlStore) -> None:
    assert current_revision(store.engine) == head_revision()


def test_job_round_trip(store: SqlStore) -> None:
    created = store.create_job(
        job(
            "full",
            timezone="Europe/Berlin",
            type="http",
            http_headers={"X-A": "1"},
            expected_statuses=(200, 204),
            timeout_seconds=2.5,
            retries=3,
            retry_interval_seconds=1.5,
            env={"K": "v"},
            workdir="/tmp",
            target="group:php",
        )
    )
    assert created.id > 0 and created.created_ms > 0
    fetched = store.get_job(name="full")
    assert fetched == created
    assert store.get_job(job_id=created.id) == created
    assert dataclasses.replace(fetched, id=0, created_ms=0, updated_ms=0) == job(
        "full",
        timezone="Europe/Berlin",
        type="http",
        http_headers={"X-A": "1"},
        expected_statuses=(200, 204),
        timeout_seconds=2.5,
        retries=3,
        retry_interval_seconds=1.5,
        env={"K": "v"},
        workdir="/tmp",
        target="group:php",
    )


def test_duplicate_name_is_refused(store: SqlStore) -> None:
    store.create_job(job("dup"))
    with pytest.raises(JobExistsError):
        store.create_job(job("dup"))


def test_update_and_delete(store: SqlStore) -> None:
    created = store.create_job(job("a"))
    updated = store.update_job(dataclasses.replace(created, command="echo 2"))
    assert updated is not None and updated.command == "echo 2"
    assert store.delete_job(created.id)
    assert store.get_job(job_id=created.id) is None
    assert not store.delete_job(created.id)
    assert store.update_job(created) is None


def test_ids_are_never_reused(store: SqlStore) -> None:
    first = store.create_job(job("a"))
    store.delete_job(first.id)
    assert store.create_job(job("b")).id > first.id


def test_change_log_sees_plain_sql_insert_update_delete(store: SqlStore) -> None:
    start = store.revision()
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO jobs (name, spec, command) VALUES ('sql', '*/5 * * * *', 'true')"))
    rev1, ids = store.changes_since(start)
    (sql_job,) = store.jobs_by_ids(ids)
    assert sql_job.name == "sql" and sql_job.timezone == "UTC" and sql_job.type == "shell" and sql_job.enabled
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET command = 'false' WHERE name = 'sql'"))
    rev2, ids2 = store.changes_since(rev1)
    assert rev2 > rev1 and ids2 == {sql_job.id}
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM jobs WHERE name = 'sql'"))
    rev3, ids3 = store.changes_since(rev2)
    assert rev3 > rev2 and ids3 == {sql_job.id}
    assert store.jobs_by_ids(ids3) == []
    assert store.changes_since(rev3) == (rev3, set())


def test_unreadable_row_is_listed_with_a_defect(store: SqlStore) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO jobs (name, spec, command, http_headers) VALUES ('broken', '* * * * *', 'true', '[1]')"))
    (broken,) = store.list_jobs()
    assert "http_headers" in broken.defect


def test_runs_are_unique_per_firing_attempt(store: SqlStore) -> None:
    assert store.write_runs([run(1, 1000), run(1, 1000), run(1, 1000, attempt=2)], []) == [True, False, True]
    assert store.write_runs([run(1, 1000)], []) == [False]


def test_run_updates_apply_in_order(store: SqlStore) -> None:
    store.write_runs([run(1, 1000)], [("1-1000-1", {"status": "running", "pid": 42}), ("1-1000-1", {"status": "succeeded"})])
    got = store.get_run("1-1000-1")
    assert got is not None and (got.status, got.pid) == ("succeeded", 42)
    with pytest.raises(ValueError, match="unknown run fields"):
        store.write_runs([], [("1-1000-1", {"nope": 1})])


def test_list_runs_newest_first_with_filters(store: SqlStore) -> None:
    store.write_runs([run(1, 1000), run(1, 2000), run(2, 1500), run(1, 2000, attempt=2, status="failed")], [])
    assert [r.run_id for r in store.list_runs(limit=10)] == ["1-2000-2", "1-2000-1", "2-1500-1", "1-1000-1"]
    assert [r.run_id for r in store.list_runs(job_id=2)] == ["2-1500-1"]
    assert [r.run_id for r in store.list_runs(statuses=["failed"])] == ["1-2000-2"]
    assert len(store.list_runs(limit=2)) == 2


def test_output_bytes_round_trip(store: SqlStore) -> None:
    payload = bytes(range(256)) * 256  # 64 KiB, every byte value
    store.write_runs([dataclasses.replace(run(1, 1000), output=payload, output_truncated=True)], [])
    got = store.get_run("1-1000-1")
    assert got is not None and got.output == payload and got.output_truncated


def test_meta(store: SqlStore) -> None:
    assert store.get_meta("k") is None
    store.set_meta("k", "1")
    store.set_meta("k", "2")
    assert store.get_meta("k") == "2"


def test_list_jobs_pages_and_prefix(store: SqlStore) -> None:
    for name in ("web-a", "web_b", "webxc", "db-a"):
        store.create_job(job(name))
    assert [j.name for j in store.list_jobs(name_prefix="web_")] == ["web_b"]  # '_' is literal, not a wildcard
    assert [j.name for j in store.list_jobs(name_prefix="web")] == ["web-a", "web_b", "webxc"]
    first = store.list_jobs(limit=2)
    rest = store.list_jobs(after_id=first[-1].id, limit=2)
    assert [j.name for j in first + rest] == ["web-a", "web_b", "webxc", "db-a"]


def test_audit_log_newest_first_with_paging(store: SqlStore) -> None:
    from crontrio.common.model import AuditEntry

    ids = [
        store.add_audit(AuditEntry(at_ms=i, actor="alice", action="job.update", target=f"j{i % 2}", before="{}", after="{}"))
        for i in range(5)
    ]
    assert [e.id for e in store.list_audit(limit=10)] == ids[::-1]
    assert [e.target for e in store.list_audit(target="j1")] == ["j1", "j1"]
    assert [e.id for e in store.list_audit(before_id=ids[2], limit=10)] == ids[:2][::-1]
    assert store.list_audit(limit=1)[0].actor == "alice"


def test_notify_fields_round_trip(store: SqlStore) -> None:
    created = store.create_job(
        job(
            "n",
            notify_policy="on_failure",
            notify_channels=("email", "sms"),
            notify_emails=("ops",),
            notify_phones=("+15550100",),
        )
    )
    got = store.get_job(job_id=created.id)
    assert got is not None
    assert (got.notify_policy, got.notify_channels, got.notify_emails, got.notify_phones) == (
        "on_failure",
        ("email", "sms"),
        ("ops",),
        ("+15550100",),
    )


def test_timeout_action_round_trips_and_an_overrun_is_marked_once(store: SqlStore) -> None:
    stored = store.create_job(job("slow", timeout_seconds=1.0, timeout_action="alert"))
    assert store.get_job(job_id=stored.id).timeout_action == "alert"  # type: ignore[union-attr]
    store.write_runs([run(stored.id, 1000)], [(f"{stored.id}-1000-1", {"status": "running", "started_ms": 1000})])
    run_id = f"{stored.id}-1000-1"
    # The dispatcher's timer and the monitor's scan may both try: one wins.
    assert store.mark_overrun(run_id, 2500) is True
    assert store.mark_overrun(run_id, 2600) is False
    store.write_runs([], [(run_id, {"status": "succeeded", "finished_ms": 4000})])
    got = store.get_run(run_id)
    assert got is not None and (got.status, got.overrun_ms) == ("succeeded", 2500)  # the end keeps the overrun
    # A run that already ended is never marked.
    store.write_runs([run(stored.id, 5000, status="failed")], [])
    assert store.mark_overrun(f"{stored.id}-5000-1", 6000) is False
