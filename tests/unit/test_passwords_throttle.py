"""Password hashing (scrypt) and the failed-login throttle."""

from __future__ import annotations

from crontrio.common.passwords import hash_password, password_problem, verify_password
from crontrio.dispatcher.login_throttle import FREE_FAILURES, PEER_FREE_FAILURES, PEER_PREFIX, LoginThrottle


def test_hash_is_salted_carries_its_parameters_and_verifies() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second  # random salt
    assert first.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse", first) and verify_password("correct horse", second)
    assert not verify_password("correct hors", first)
    assert not verify_password("x", "not a hash") and not verify_password("x", "scrypt$a$b$c$d$e")
    assert password_problem("short") and password_problem("long enough") is None


def test_throttle_locks_a_user_name_after_free_failures_with_growing_waits() -> None:
    now = [1000.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    keys = ("user:bob", PEER_PREFIX + "ipv4:10.0.0.1")
    for _ in range(FREE_FAILURES):
        assert throttle.wait_seconds(keys) == 0
        throttle.failed(keys)
    assert throttle.wait_seconds(keys) == 1.0
    throttle.failed(keys)
    assert throttle.wait_seconds(keys) == 2.0
    now[0] += 2.0
    assert throttle.wait_seconds(keys) == 0
    # Another name from the same peer is not locked yet (peers get a larger budget) ...
    assert throttle.wait_seconds(("user:alice", keys[1])) == 0
    for _ in range(PEER_FREE_FAILURES):
        throttle.failed(("user:x", keys[1]))
    # ... until the peer itself has failed too often.
    assert throttle.wait_seconds(("user:alice", keys[1])) > 0
    throttle.succeeded(keys)
    assert throttle.wait_seconds(("user:bob",)) == 0


def test_an_unknown_user_is_checked_against_a_dummy_hash_made_once_and_never_matches() -> None:
    from crontrio.common.passwords import dummy_hash
    from crontrio.dispatcher.users import _verify

    made = dummy_hash()
    assert made.startswith("scrypt$16384$8$1$")  # costs what a real user's check costs
    assert dummy_hash() is made
    assert not _verify("", None) and not _verify("anything at all", None)
    assert _verify("correct horse", hash_password("correct horse"))
    assert not _verify("wrong", hash_password("correct horse"))
