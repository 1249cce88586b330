"""The audit log: every change made through the admin API, with who made it."""

from __future__ import annotations

import json
import logging

from google.protobuf.json_format import MessageToDict

from crontrio.common.auth import current_actor
from crontrio.common.clock import now_ms
from crontrio.common.convert import job_to_pb
from crontrio.common.model import AuditEntry, Job
from crontrio.common.secrets import redact, redact_for_audit
from crontrio.common.store.async_store import AsyncStore

log = logging.getLogger(__name__)


def job_json(job: Job | None) -> str:
    """A job as the API shows it, secrets redacted, for before/after snapshots."""
    if job is None:
        return ""
    return _snapshot(redact(job))


def job_change_json(before: Job | None, after: Job | None) -> tuple[str, str]:
    """Before and after snapshots of a change: secret values never appear,
    only whether each one changed ("<redacted:changed>") or not ("<redacted>")."""
    b, a = redact_for_audit(before, after)
    return (_snapshot(b) if b is not None else "", _snapshot(a) if a is not None else "")


def _snapshot(job: Job) -> str:
    data = MessageToDict(job_to_pb(job), preserving_proto_field_name=True)
    for volatile in ("next_fire_ms", "updated_ms"):
        data.pop(volatile, None)
    return json.dumps(data, sort_keys=True)


class AuditLog:
    def __init__(self, store: AsyncStore) -> None:
        self._store = store

    async def record(self, action: str, target: str, before: str = "", after: str = "", actor: str = "") -> None:
        """Store one entry; `actor` defaults to the caller (current_actor())."""
        entry = AuditEntry(
            at_ms=now_ms(),
            actor=actor or current_actor(),
            action=action,
            target=target,
            before=before,
            after=after,
        )
        try:
            await self._store.add_audit(entry)
        except Exception as exc:  # noqa: BLE001 - the change itself succeeded; say loudly that its record did not
            log.error("audit entry %s %s by %s could not be stored: %s", action, target, entry.actor, exc)
            return
        log.info("audit: %s %s by %s", action, target, entry.actor)
