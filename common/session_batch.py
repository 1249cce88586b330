"""Batches on an Executor.Session stream: how each side says it knows them,
and how large one may grow (docs/ARCHITECTURE.md, "Send it").

The runs a dispatcher sends in one turn of its event loop go as one RunBatch,
and the events an executor has pending when it writes go as one EventBatch.
A burst can put thousands in one turn, and a RunFinished carries its output
tail (64 KiB by default, at most 8 MiB): a batch is cut at MAX_BATCH_BYTES so
that no batch is larger than any channel takes. A message over a channel's
limit breaks the stream, and every run on it falls back to a Run call of
its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

# Each side's metadata at the stream's start (value "1"): the executor's
# initial metadata says it takes RunBatch, the dispatcher's call metadata
# says it reads EventBatch. A side that does not say so gets no batch.
METADATA_KEY = "crontrio-session-batch"

# Under gRPC's default 4 MiB message limit (crontrio's channels take 16 MiB),
# so a batch fits any channel; an item larger than this goes alone, as it
# would without batches.
MAX_BATCH_BYTES = 3 * 1024 * 1024
# What each item adds in its batch: its field tag and length.
_ITEM_OVERHEAD = 8


class _Sized(Protocol):
    def ByteSize(self) -> int: ...


Item = TypeVar("Item", bound=_Sized)


def cut(items: Sequence[Item], max_bytes: int = MAX_BATCH_BYTES) -> list[Sequence[Item]]:
    """``items`` in order, in runs of at most ``max_bytes`` (an item larger
    than that alone); a single run, uncopied, when all fit."""
    chunks: list[Sequence[Item]] = []
    start = size = 0
    for i, item in enumerate(items):
        item_size = item.ByteSize() + _ITEM_OVERHEAD
        if size + item_size > max_bytes and i > start:
            chunks.append(items[start:i])
            start, size = i, 0
        size += item_size
    chunks.append(items[start:] if start else items)
    return chunks
