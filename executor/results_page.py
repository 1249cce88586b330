"""One page of ListResults: its tokens and which results it holds
(docs/ARCHITECTURE.md, failure cases: "huge results").

Results are paged in (finished_ms, run_id) order; a page token is the key of
the last result of the previous page. The results are the journaled ones and
those kept in memory because the journal could not take them
(executor/runs.py); this module chooses a page from both, bounded in bytes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from crontrio.common.errors import ValidationError
from crontrio.executor.journal import Journal, ResultKey
from crontrio.protos import crontrio_pb2

# Bytes of results in one ListResults reply (gRPC refuses messages over 16 MiB,
# and a reply that fails for its size makes a live executor look dead). A
# single result is at most MAX_OUTPUT_LIMIT_BYTES of tail, so it always fits.
LIST_RESULTS_PAGE_BYTES = 4 * 1024 * 1024
# Journal keys read to fill one page: bounds the work of a page when the
# results are many and small.
PAGE_SCAN_ROWS = 10_000


def parse_page_token(token: str) -> ResultKey | None:
    """The position a ListResults page_token stands for (None: the start);
    ValidationError naming page_token when it is not one we gave out."""
    if not token:
        return None
    ms, sep, run_id = token.partition("/")
    if not sep or not ms.isdigit() or not run_id:
        raise ValidationError("page_token", f"not a token from a previous ListResults reply: {token[:80]!r}")
    return ResultKey(int(ms), run_id)


def page_token(key: ResultKey) -> str:
    return f"{key.finished_ms}/{key.run_id}"


def page_budget(max_bytes: int) -> int:
    """The bytes of one page: what the caller asked, LIST_RESULTS_PAGE_BYTES at most."""
    return min(max_bytes, LIST_RESULTS_PAGE_BYTES) if max_bytes > 0 else LIST_RESULTS_PAGE_BYTES


def choose_page(
    keys: Sequence[ResultKey],
    in_memory: Iterable[crontrio_pb2.RunFinished],
    *,
    wanted: Collection[str],
    after: ResultKey | None,
    budget: int,
) -> tuple[list[ResultKey], bool]:
    """The keys of one page, in order, and whether more follow.

    ``keys`` are the journal's next keys after ``after`` (PAGE_SCAN_ROWS at
    most); ``in_memory`` the results the journal could not take. A page holds
    at least one result and otherwise at most ``budget`` bytes.
    """
    scanned_all = len(keys) < PAGE_SCAN_ROWS
    candidates = {key.run_id: key for key in keys}
    for result in in_memory:
        key = ResultKey(result.finished_ms, result.run_id, result.ByteSize())
        if (wanted and key.run_id not in wanted) or (after is not None and key <= after):
            continue
        if scanned_all or key <= keys[-1]:  # beyond the scan, it belongs to a later page
            candidates.setdefault(key.run_id, key)
    chosen: list[ResultKey] = []
    size = 0
    for key in sorted(candidates.values()):
        if chosen and size + key.size > budget:
            break
        chosen.append(key)
        size += key.size
    return chosen, len(chosen) < len(candidates) or not scanned_all


async def read_page(
    journal: Journal, in_memory: Mapping[str, crontrio_pb2.RunFinished], run_ids: Sequence[str], token: str, max_bytes: int
) -> tuple[list[crontrio_pb2.RunFinished], str]:
    """The results of one page (of all results, or of ``run_ids``) from
    ``token`` on, journaled or kept ``in_memory``, in (finished_ms, run_id)
    order; and the token of the next page, "" after the last."""
    after = parse_page_token(token)
    keys = await journal.result_keys(run_ids, after, PAGE_SCAN_ROWS)
    chosen, more = choose_page(keys, list(in_memory.values()), wanted=set(run_ids), after=after, budget=page_budget(max_bytes))
    kept = {key.run_id: in_memory.get(key.run_id) for key in chosen if key.run_id in in_memory}
    journaled = [key.run_id for key in chosen if key.run_id not in kept]
    results = await journal.results(journaled) if journaled else []
    results += [result for result in kept.values() if result is not None]
    results.sort(key=lambda r: (r.finished_ms, r.run_id))
    return results, page_token(chosen[-1]) if more and chosen else ""
