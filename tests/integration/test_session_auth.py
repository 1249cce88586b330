"""The auth interceptor with session tokens, on an in-process gRPC server:
role and actor from the session, local callers without tokens, a store that
cannot be asked."""

from __future__ import annotations

import grpc
import pytest

from crontrio.common.auth import AuthInterceptor, TokenTable, current_actor, current_kind, current_role, hash_token
from crontrio.common.grpc_server import ServiceServer
from crontrio.protos import crontrio_pb2 as pb
from crontrio.protos import crontrio_pb2_grpc as pb_grpc


class _Echo(pb_grpc.AdminServicer):  # type: ignore[misc]
    async def WhoAmI(self, request: pb.WhoAmIRequest, context: grpc.aio.ServicerContext) -> pb.WhoAmIReply:
        return pb.WhoAmIReply(name=current_actor(), role=current_role(), kind=current_kind())

    async def Login(self, request: pb.LoginRequest, context: grpc.aio.ServicerContext) -> pb.LoginReply:
        return pb.LoginReply(user=current_actor())


async def _lookup(token: str) -> tuple[str, str] | None:
    if token == "cts_broken":
        raise RuntimeError("database is locked")
    return {"cts_ann": ("ann", "viewer")}.get(token)


@pytest.mark.parametrize("tokens", [{}, {"ops": f"admin:{hash_token('ops-token')}"}])
async def test_sessions_beside_api_tokens(tokens: dict[str, str]) -> None:
    interceptor = AuthInterceptor(TokenTable(tokens), _lookup, allow_local=not tokens)
    server = ServiceServer("127.0.0.1:0", ["crontrio.v1.Admin"], interceptors=[interceptor])
    pb_grpc.add_AdminServicer_to_server(_Echo(), server.server)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.AdminStub(channel)

            def auth(token: str) -> tuple[tuple[str, str]]:
                return (("authorization", f"Bearer {token}"),)

            me = await stub.WhoAmI(pb.WhoAmIRequest(), metadata=auth("cts_ann"))
            assert (me.name, me.role, me.kind) == ("ann", "viewer", "session")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.CreateUser(pb.CreateUserRequest(name="x"), metadata=auth("cts_ann"))
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "user 'ann' has role viewer" in (
                err.value.details() or ""
            )
            for bad in ("cts_gone", "not-a-token"):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.WhoAmI(pb.WhoAmIRequest(), metadata=auth(bad))
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.WhoAmI(pb.WhoAmIRequest(), metadata=auth("cts_broken"))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "database is locked" in (err.value.details() or "")
            # Login is open either way.
            assert (await stub.Login(pb.LoginRequest())).user == "local"
            if tokens:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.WhoAmI(pb.WhoAmIRequest())
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert (await stub.WhoAmI(pb.WhoAmIRequest(), metadata=auth("ops-token"))).kind == "token"
            else:
                local = await stub.WhoAmI(pb.WhoAmIRequest())
                assert (local.name, local.role, local.kind) == ("local", "admin", "local")
    finally:
        await server.stop(0)
