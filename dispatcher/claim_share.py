"""Which live dispatcher claims a firing first.

Firings due together are claimed in one batch (FiringRunner.claim). With
several dispatchers racing for the same batch, the first pipeline to reach
Redis would win every firing of it, and the same dispatcher (the one whose
lead is a little longer) would win every burst: the others would sit idle,
and adding dispatchers would add no capacity. So each firing has a preferred
dispatcher among the live ones (rendezvous hashing of the firing id over
their ids: every dispatcher computes the same answer from the same list,
and a dispatcher that leaves moves only its own share). A dispatcher claims
its own share at once and the rest after SHARE_GRACE_SECONDS, by when a live
peer has claimed its share; the share of a dead or slow peer is then won by
whoever asks first. Claims stay exclusive either way (SET NX, then the run
table's key): this decides who does the work, never whether it is done once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

# Long enough for a live peer that popped the same batch to have claimed its
# share (one Redis round trip per thousand firings), short against the lead
# of firings sent ahead (dispatch_ahead_ms, 1 s by default).
SHARE_GRACE_SECONDS = 0.15

T = TypeVar("T")


def preferred(firing: str, dispatchers: Sequence[str]) -> str:
    """The dispatcher that claims `firing` first (rendezvous hashing)."""
    # blake2b, not crc32: crc32 is linear, so the scores of one firing under
    # different dispatcher ids are correlated and the shares come out uneven.
    return max(dispatchers, key=lambda d: hashlib.blake2b(f"{d}|{firing}".encode(), digest_size=8).digest())


def split_share(items: Sequence[T], firing_ids: Sequence[str], me: str, dispatchers: Sequence[str]) -> tuple[list[T], list[T]]:
    """(the items whose firing `me` claims first, the others). Everything is
    `me`'s when it is alone or not (yet) among the live dispatchers."""
    if len(dispatchers) < 2 or me not in dispatchers:
        return list(items), []
    mine: list[T] = []
    theirs: list[T] = []
    for item, firing in zip(items, firing_ids, strict=True):
        (mine if preferred(firing, dispatchers) == me else theirs).append(item)
    return mine, theirs
