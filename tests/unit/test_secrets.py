"""Placeholders for job secrets: redacted copies, audit markers, keep-on-update."""

from __future__ import annotations

import pytest

from crontrio.common.errors import ValidationError
from crontrio.common.model import Job
from crontrio.common.secrets import REDACTED, REDACTED_CHANGED, keep_stored, redact, redact_for_audit


def _job(**kw: object) -> Job:
    return Job(name="j", spec="@daily", command="true", **kw)  # type: ignore[arg-type]


def test_redact_hides_values_keeps_names() -> None:
    job = _job(env={"A": "1", "B": "2"}, http_headers={"X-Key": "k"})
    shown = redact(job)
    assert shown.env == {"A": REDACTED, "B": REDACTED} and shown.http_headers == {"X-Key": REDACTED}
    assert job.env == {"A": "1", "B": "2"}  # the original is untouched
    plain = _job()
    assert redact(plain) is plain


def test_audit_copies_mark_what_changed() -> None:
    before = _job(env={"SAME": "s", "CHANGED": "old", "GONE": "g"})
    after = _job(env={"SAME": "s", "CHANGED": "new", "ADDED": "a"})
    b, a = redact_for_audit(before, after)
    assert b is not None and a is not None
    assert b.env == {"SAME": REDACTED, "CHANGED": REDACTED_CHANGED, "GONE": REDACTED_CHANGED}
    assert a.env == {"SAME": REDACTED, "CHANGED": REDACTED_CHANGED, "ADDED": REDACTED_CHANGED}
    created = redact_for_audit(None, after)[1]
    assert created is not None and set(created.env.values()) == {REDACTED_CHANGED}


def test_placeholders_keep_stored_values_or_are_refused() -> None:
    stored = _job(env={"K": "secret"}, http_headers={"Authorization": "Bearer t"})
    sent = _job(env={"K": REDACTED, "NEW": "v"}, http_headers={"Authorization": REDACTED_CHANGED})
    kept = keep_stored(sent, stored)
    assert kept.env == {"K": "secret", "NEW": "v"} and kept.http_headers == {"Authorization": "Bearer t"}
    with pytest.raises(ValidationError, match=r"^env\.OTHER: '<redacted>' stands for a stored secret"):
        keep_stored(_job(env={"OTHER": REDACTED}), stored)
    with pytest.raises(ValidationError, match=r"^http_headers\.X: .*a new job has no stored value"):
        keep_stored(_job(http_headers={"X": REDACTED}), None)
    plain = _job(env={"K": "given"})
    assert keep_stored(plain, stored) is plain
