"""Job description, owner and tags in the store (migration 0008_job_meta), on
SQLite and a real MariaDB: round trip, list filters, upgrade of existing rows."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from crontrio.common.config import DatabaseConfig
from crontrio.common.model import Job
from crontrio.common.store import migrate
from crontrio.common.store.engine import make_engine
from crontrio.common.store.sql_store import SqlStore


def job(name: str, **kw: object) -> Job:
    return Job(name=name, spec="* * * * *", command="true", **kw)  # type: ignore[arg-type]


def test_meta_round_trips(store: SqlStore) -> None:
    description = "Nightly backup of the billing DB.\nPage the owner on failure.\tThanks: é ✓"
    created = store.create_job(job("meta", description=description, owner="team-billing", tags=("backup", "db.billing")))
    got = store.get_job(job_id=created.id)
    assert got is not None
    assert (got.description, got.owner, got.tags) == (description, "team-billing", ("backup", "db.billing"))


def test_list_filters_by_tag_and_owner(store: SqlStore) -> None:
    store.create_job(job("a", tags=("backup", "nightly"), owner="ops"))
    store.create_job(job("b", tags=("backup_x",), owner="ops"))  # '_' must not act as a LIKE wildcard
    store.create_job(job("c", tags=("backupxx",), owner="dev"))
    store.create_job(job("d", tags=("nightly",), owner="dev"))
    store.create_job(job("e"))
    assert [j.name for j in store.list_jobs(tag="backup")] == ["a"]
    assert [j.name for j in store.list_jobs(tag="backup_x")] == ["b"]
    assert [j.name for j in store.list_jobs(tag="nightly")] == ["a", "d"]
    assert [j.name for j in store.list_jobs(owner="dev")] == ["c", "d"]
    assert [j.name for j in store.list_jobs(owner="dev", tag="nightly")] == ["d"]
    assert [j.name for j in store.list_jobs(tag="nightly", limit=1)] == ["a"]
    first = store.list_jobs(tag="nightly", limit=1)[0]
    assert [j.name for j in store.list_jobs(tag="nightly", after_id=first.id)] == ["d"]
    assert store.list_jobs(tag="none") == []


def test_upgrade_from_0007_keeps_rows_with_empty_meta(store_config: DatabaseConfig) -> None:
    engine = make_engine(store_config)
    try:
        cfg = migrate._alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0007_users")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO jobs (name, spec, timezone, type, command, http_method, http_headers, http_body,"
                    " expected_statuses, timeout_seconds, retries, retry_interval_seconds, enabled, target, workdir, env,"
                    " overlap_policy, misfire_policy, catch_up_window_seconds, retry_backoff, retry_max_interval_seconds,"
                    " retry_jitter, route_strategy, run_as_user, follow_redirects, skip_tls_verify, keywords, keyword_action,"
                    " after_jobs, notify_policy, notify_channels, notify_emails, notify_phones, created_ms, updated_ms)"
                    " VALUES ('old', '@daily', 'UTC', 'shell', 'true', 'GET', '{}', '', '', 0, 0, 0, 1, '', '', '{}',"
                    " 'allow', 'skip', 3600, 1, 0, 0, 'round_robin', '', 0, 0, '[]', 'fail', '[]', 'never', '[]', '[]', '[]',"
                    " 1, 1)"
                )
            )
        migrate.upgrade(engine, store_config)
        assert migrate.current_revision(engine) == migrate.head_revision()  # 0008_job_meta and any after it
        (old,) = SqlStore(engine).list_jobs()
        assert (old.name, old.description, old.owner, old.tags, old.defect) == ("old", "", "", (), "")
    finally:
        engine.dispose()
