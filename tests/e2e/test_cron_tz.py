"""A CRON_TZ=Zone spec prefix through the admin API of a real dispatcher."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest

from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc
from testing_support.trio import Trio

pytestmark = pytest.mark.xdist_group("semantics")


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()) * 1000


def test_cron_tz_prefix_is_honoured_and_contradictions_refused(busy_trio: Trio) -> None:
    with grpc.insecure_channel(busy_trio.dispatcher) as channel:
        admin = pb_grpc.AdminStub(channel)
        preview = admin.PreviewSpec(
            pb.PreviewSpecRequest(spec="CRON_TZ=Asia/Tokyo 0 9 * * *", count=2, after_ms=_ms("2026-06-01T12:00:00"))
        )
        assert list(preview.fire_ms) == [_ms("2026-06-02T00:00:00"), _ms("2026-06-03T00:00:00")]

        created = admin.CreateJob(pb.Job(name="tokyo-nine", spec="CRON_TZ=Asia/Tokyo 0 9 * * *", command="true"))
        # 09:00 in Tokyo is midnight UTC, whatever day it is now.
        assert created.next_fire_ms > 0 and created.next_fire_ms % 86_400_000 == 0
        assert admin.GetJob(pb.JobRef(name="tokyo-nine")).next_fire_ms == created.next_fire_ms

        for spec, timezone in [("CRON_TZ=Asia/Tokyo 0 9 * * *", "Europe/Berlin"), ("CRON_TZ=Mars/Base 0 9 * * *", "")]:
            with pytest.raises(grpc.RpcError) as err:
                admin.CreateJob(pb.Job(name="tz-bad", spec=spec, timezone=timezone, command="true"))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (err.value.details() or "").startswith("spec:"), err.value.details()
            with pytest.raises(grpc.RpcError) as err:
                admin.PreviewSpec(pb.PreviewSpecRequest(spec=spec, timezone=timezone, count=1))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as err:
            admin.GetJob(pb.JobRef(name="tz-bad"))  # nothing stored
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        admin.DeleteJob(pb.JobRef(name="tokyo-nine"))
