"""When a failed Run proves that a run never started on its executor (and may
go to another one), and when it does not."""

from __future__ import annotations

import grpc
from grpc.aio import AioRpcError, Metadata

from crontrio.common import status
from crontrio.dispatcher.connect_errors import REROUTE_CLOCK_MARGIN_MS, unstarted_proof

REFUSED = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:5921: "
    "Failed to connect to remote host: Connection refused"
)
TIMED_OUT = "failed to connect to all addresses; last error: UNKNOWN: ipv4:10.0.0.9:5921: Connection timed out"
SCHEDULED = 1_800_000_000_000


def error(details: str, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE, trailing: Metadata | None = None) -> AioRpcError:
    return AioRpcError(code, Metadata(), trailing or Metadata(), details)


def test_a_draining_refusal_proves_it() -> None:
    drained = error("executor is shutting down", trailing=Metadata((status.NOT_STARTED_METADATA, "draining")))
    assert unstarted_proof(drained, True, SCHEDULED, SCHEDULED + 5000) == "refused it unstarted (draining)"
    # The same status without the executor's marker is only a broken connection.
    assert unstarted_proof(error("executor is shutting down"), True, SCHEDULED, SCHEDULED + 5000) == ""


def test_a_call_that_never_connected_proves_it_only_if_no_earlier_one_may_have_arrived() -> None:
    assert unstarted_proof(error(TIMED_OUT), False, SCHEDULED, SCHEDULED + 5000) == "was not reached"
    assert unstarted_proof(error(TIMED_OUT), True, SCHEDULED, SCHEDULED + 5000) == ""


def test_refused_connections_prove_it_only_before_the_runs_time() -> None:
    before = SCHEDULED - REROUTE_CLOCK_MARGIN_MS - 1
    assert unstarted_proof(error(REFUSED), True, SCHEDULED, before) == "went away before the run's time"
    # At its time the executor may have started it just before dying: not a proof.
    assert unstarted_proof(error(REFUSED), True, SCHEDULED, SCHEDULED - REROUTE_CLOCK_MARGIN_MS) == ""
    # A host that times out may be alive behind a partition: never a proof once delivered.
    assert unstarted_proof(error(TIMED_OUT), True, SCHEDULED, before) == ""


def test_a_connection_broken_mid_call_proves_nothing() -> None:
    assert unstarted_proof(error("Socket closed"), False, SCHEDULED, SCHEDULED - 10_000) == ""
    assert unstarted_proof(error("deadline", grpc.StatusCode.DEADLINE_EXCEEDED), False, SCHEDULED, SCHEDULED - 10_000) == ""
