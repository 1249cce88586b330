"""The monitor's view of the dispatchers: who is there, and how to call them."""

from __future__ import annotations

import time
from collections.abc import Callable

from crontrio.common.config import TlsConfig
from crontrio.common.grpc_channel import make_channel
from crontrio.common.tls import load_tls
from crontrio.protos import crontrio_pb2_grpc as pb_grpc

# A statically configured dispatcher counts as alive this long after it last
# answered; only a dispatcher known to be gone has its runs reconciled.
STATIC_ALIVE_SECONDS = 10.0


class DispatcherLinks:
    """Dispatcher addresses and ids, from etcd registrations or from conf.ini.

    `discovered` returns {dispatcher_id: address} from etcd when the
    deployment has etcd (None until the watch has synced); otherwise the
    configured addresses are used and a dispatcher's id is learned from its
    answers.

    Calls go over TLS when `tls` is set ([tls] admin = true) and carry
    `token` (an admin token, [monitor] token) when one is given: dispatchers
    with [tokens] configured refuse Control calls without it. Every call
    also carries `cluster_secret`, which the Control service always requires.
    """

    def __init__(
        self,
        static_addresses: list[str],
        discovered: Callable[[], dict[str, str] | None] | None = None,
        *,
        tls: TlsConfig | None = None,
        token: str = "",
        cluster_secret: str | None = None,
    ) -> None:
        self._tls = tls
        self._cluster_secret = cluster_secret
        if tls is not None:
            load_tls(tls)  # a bad [tls] file stops the monitor at start
        self._token = token
        self._static = list(static_addresses)
        self._discovered = discovered
        self._stubs: dict[str, pb_grpc.ControlStub] = {}
        self._ids: dict[str, str] = {}  # address -> id, learned from answers
        self._last_ok: dict[str, float] = {}

    def addresses(self) -> list[str]:
        if self._discovered is not None:
            return sorted(set((self._discovered() or {}).values()))
        return list(self._static)

    def stub(self, address: str) -> pb_grpc.ControlStub:
        stub = self._stubs.get(address)
        if stub is None:
            channel = make_channel(address, self._tls, client_cert=True, token=self._token, cluster_secret=self._cluster_secret)
            stub = self._stubs[address] = pb_grpc.ControlStub(channel)
        return stub

    def answered(self, address: str, dispatcher_id: str) -> None:
        self._ids[address] = dispatcher_id
        self._last_ok[address] = time.monotonic()

    def live_ids(self) -> set[str] | None:
        """Ids of dispatchers known to be alive; None while that is not yet known."""
        if self._discovered is not None:
            found = self._discovered()
            return None if found is None else set(found)
        if len(self._ids) < len(self._static) and not self._last_ok:
            return None  # nobody has answered yet: we cannot tell dead from not-yet-asked
        now = time.monotonic()
        return {self._ids[a] for a, t in self._last_ok.items() if now - t <= STATIC_ALIVE_SECONDS}

    def live_addresses(self) -> list[str]:
        if self._discovered is not None:
            return self.addresses()
        now = time.monotonic()
        return [a for a, t in self._last_ok.items() if now - t <= STATIC_ALIVE_SECONDS]
