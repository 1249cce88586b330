"""Page tokens and the per-reply byte budget of the Admin list calls."""

from __future__ import annotations

import pytest

from crontrio.common.errors import ValidationError
from crontrio.dispatcher import paging
from crontrio.protos import crontrio_pb2 as pb


def test_token_round_trip_and_binding_to_filters() -> None:
    filters = ["runs", 0, "backup", ["failed"], 0, 0]
    token = paging.encode([1_780_000_000_000, 2, "3-1780000000000-2"], filters)
    assert paging.decode(token, filters, (int, int, str)) == [1_780_000_000_000, 2, "3-1780000000000-2"]
    with pytest.raises(ValidationError, match="page_token: was made for other filters"):
        paging.decode(token, ["runs", 0, "other", ["failed"], 0, 0], (int, int, str))
    for bad in ("", "!!!", "bm90IGpzb24", paging.encode(["x"], filters)):
        with pytest.raises(ValidationError, match="page_token: not a page token"):
            paging.decode(bad, filters, (int, int, str))
    with pytest.raises(ValidationError, match="page_token:"):
        paging.decode(paging.encode([True], ["jobs", ""]), ["jobs", ""], (int,))  # a bool is no id


def test_a_page_stops_at_the_byte_budget_and_says_where_to_go_on() -> None:
    runs = [pb.Run(run_id=f"1-{i}-1", scheduled_ms=i, attempt=1, error="e" * 1000) for i in range(50, 0, -1)]
    page, token = paging.page(runs, 20, lambda r: [r.scheduled_ms, r.attempt, r.run_id], ["f"])
    assert len(page) == 20 and token  # the size limit
    small = paging.within_budget(runs, budget=10_000)
    assert 5 <= len(small) < 10 and sum(r.ByteSize() for r in small) <= 10_000
    huge = [pb.Run(run_id="big", error="x" * 50_000)]
    assert paging.within_budget(huge, budget=1_000) == huge  # one item always goes, however large
    last, none = paging.page(runs[:3], 20, lambda r: [r.scheduled_ms, r.attempt, r.run_id], ["f"])
    assert len(last) == 3 and none == ""
