"""common/session_batch.py: batches are cut by size, in order, nothing lost."""

from __future__ import annotations

from crontrio.common.session_batch import MAX_BATCH_BYTES, cut
from crontrio.protos import crontrio_pb2 as pb


def finished(i: int, tail: int) -> pb.SessionEvent:
    return pb.SessionEvent(finished=pb.RunFinished(run_id=f"1-{i}-1", output_tail=b"x" * tail))


def test_what_fits_stays_one_batch_uncopied() -> None:
    events = [finished(i, 100) for i in range(1000)]
    (only,) = cut(events)
    assert only is events


def test_a_batch_is_cut_before_it_grows_past_the_limit_keeping_the_order() -> None:
    events = [finished(i, 1000) for i in range(50)]
    chunks = cut(events, max_bytes=10_000)
    assert [e for chunk in chunks for e in chunk] == events
    assert len(chunks) > 1
    assert all(pb.EventBatch(events=chunk).ByteSize() <= 10_000 for chunk in chunks)


def test_an_item_larger_than_the_limit_goes_alone() -> None:
    events = [finished(0, 10), finished(1, 50_000), finished(2, 10)]
    assert [list(chunk) for chunk in cut(events, max_bytes=10_000)] == [events[:1], events[1:2], events[2:]]


def test_a_full_batch_fits_grpc_s_default_message_limit() -> None:
    events = [finished(i, 10_000) for i in range(1000)]
    chunks = cut(events)
    assert len(chunks) > 1
    for chunk in chunks:
        message = pb.SessionEvent(batch=pb.EventBatch(events=chunk))
        assert MAX_BATCH_BYTES - 20_000 < message.ByteSize() <= 4 * 1024 * 1024 or chunk is chunks[-1]
