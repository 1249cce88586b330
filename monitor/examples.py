"""The example jobs a fresh embedded install starts with, so something visibly runs."""

from __future__ import annotations

import logging

from crontrio.common.config import Config
from crontrio.common.model import HTTP, Job
from crontrio.common.store.sql_store import SqlStore

log = logging.getLogger(__name__)
SEEDED_KEY = "examples_seeded"


def example_jobs(cfg: Config) -> list[Job]:
    jobs = [
        Job(
            name="hello-shell",
            spec="*/10 * * * * *",
            command='echo "hello from $(hostname) at $(date -u +%H:%M:%S)"; uptime',
            timeout_seconds=30,
        )
    ]
    if cfg.monitor.http_listen:
        jobs.append(
            Job(
                name="monitor-healthz",
                spec="* * * * *",
                type=HTTP,
                command=f"http://{cfg.monitor.http_listen}/healthz",
                timeout_seconds=10,
                retries=1,
                retry_interval_seconds=5,
            )
        )
    return jobs


def seed_examples(store: SqlStore, cfg: Config) -> int:
    """Add the example jobs once, to an empty store; never again after (a user
    who deleted them does not want them back)."""
    if store.get_meta(SEEDED_KEY) is not None or store.count_jobs() > 0:
        return 0
    jobs = example_jobs(cfg)
    for job in jobs:
        store.create_job(job)
        log.info("added example job %s (%s): %s", job.name, job.spec, job.command)
    store.set_meta(SEEDED_KEY, "1")
    return len(jobs)
