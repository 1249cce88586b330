"""Opaque page tokens for the Admin list calls (Google AIP-158 style).

A token carries the cursor (the sort key of the last item sent) and a digest
of the request's filters, so a token reused with other filters is refused
instead of silently paging a different list. Tokens are not secrets and not
signed: a forged cursor only selects another page of rows the caller may
already read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from google.protobuf.message import Message

from crontrio.common.errors import ValidationError

# A reply stays under this many bytes (gRPC's default cap is 4 MiB, ours
# 16 MiB); a page is cut short rather than exceed it.
REPLY_BUDGET_BYTES = 4 * 1024 * 1024
_VERSION = 1
M = TypeVar("M", bound=Message)


def _digest(filters: Sequence[Any]) -> str:
    return hashlib.sha256(json.dumps(list(filters), sort_keys=True).encode()).hexdigest()[:16]


def encode(cursor: Sequence[Any], filters: Sequence[Any]) -> str:
    raw = json.dumps([_VERSION, list(cursor), _digest(filters)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, filters: Sequence[Any], shape: Sequence[type], field: str = "page_token") -> list[Any]:
    """The cursor in `token` (its items of the types in `shape`); ValidationError
    naming `field` if it is not one of ours or was made for other filters."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, cursor, digest = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValidationError(field, "not a page token from this API") from exc
    if (
        version != _VERSION
        or not isinstance(cursor, list)
        or len(cursor) != len(shape)
        or not all(type(item) is kind for item, kind in zip(cursor, shape, strict=True))
    ):
        raise ValidationError(field, "not a page token from this API")
    if digest != _digest(filters):
        raise ValidationError(field, "was made for other filters; repeat the request's filters, or start without a token")
    return cursor


def within_budget(items: Sequence[M], budget: int = REPLY_BUDGET_BYTES) -> list[M]:
    """The leading items whose encoded size fits the budget (always at least one)."""
    out: list[M] = []
    used = 0
    for item in items:
        used += item.ByteSize() + 8  # + field tag and length prefix
        if out and used > budget:
            break
        out.append(item)
    return out


def page(items: Sequence[M], size: int, cursor_of: Callable[[M], Sequence[Any]], filters: Sequence[Any]) -> tuple[list[M], str]:
    """Cut `items` (fetched with one more than `size`, to know whether more
    exist) to a page within the byte budget; the page and its next token."""
    kept = within_budget(items[:size])
    more = len(items) > len(kept)
    return kept, encode(cursor_of(kept[-1]), filters) if more and kept else ""
