"""What a failed call to an executor proves about a run it carried.

Sending a run elsewhere is safe only when it provably never started where it
was sent; anything less would risk running it twice. Two answers prove it:
the call never reached the executor (the channel could not connect), or the
executor refused it without accepting it (draining).
"""

from __future__ import annotations

import grpc

from crontrio.common import status

# A run sent ahead whose executor refuses connections this long before the
# run's time (on the dispatcher's clock) died before starting it: the
# executor's clock may be ahead of the dispatcher's by up to this much.
REROUTE_CLOCK_MARGIN_MS = 250


def never_connected(exc: grpc.aio.AioRpcError) -> bool:
    """The channel had no connection to send the call on: nothing reached the
    executor. (A connection that breaks mid-call reports "Socket closed" or a
    reset instead: the request may have arrived.)"""
    return exc.code() == grpc.StatusCode.UNAVAILABLE and "failed to connect to all addresses" in (exc.details() or "").lower()


def refused_connection(exc: grpc.aio.AioRpcError) -> bool:
    """Nothing listens at the address: the executor process is not running
    there (a host that is merely unreachable times out instead)."""
    return never_connected(exc) and "connection refused" in (exc.details() or "").lower()


def refused_unstarted(exc: grpc.aio.AioRpcError) -> str:
    """Why the executor refused the run without accepting it, or ""."""
    if exc.code() != grpc.StatusCode.UNAVAILABLE:
        return ""
    for key, value in exc.trailing_metadata() or ():
        if key == status.NOT_STARTED_METADATA:
            return str(value) or "refused"
    return ""


def unstarted_proof(exc: grpc.aio.AioRpcError, maybe_delivered: bool, scheduled_ms: int, now_ms: int) -> str:
    """Why a failed Run proves the run never started on that executor, or "".

    Refused unstarted (draining); or the call never reached it and no earlier
    one may have; or nothing listens there before the run's time, so the
    executor died before starting it (a restarted one turns what it held
    into a `lost` result, never runs it)."""
    why = refused_unstarted(exc)
    if why:
        return f"refused it unstarted ({why})"
    if never_connected(exc) and not maybe_delivered:
        return "was not reached"
    if refused_connection(exc) and now_ms < scheduled_ms - REROUTE_CLOCK_MARGIN_MS:
        return "went away before the run's time"
    return ""
