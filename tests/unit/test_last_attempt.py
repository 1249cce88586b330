"""common.model.last_attempt: the one retry limit."""

from __future__ import annotations

from crontrio.common.model import Job, last_attempt


def test_the_last_attempt_is_the_first_try_plus_the_retries() -> None:
    assert last_attempt(Job(name="j", spec="* * * * *", command="true")) == 1
    assert last_attempt(Job(name="j", spec="* * * * *", command="true", retries=3)) == 4
