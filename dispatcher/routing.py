"""Choosing an executor for a run among those matching the job's target."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

from crontrio.common.model import ROUTE_STRATEGIES, Job
from crontrio.common.registry.base import ExecutorRef


def _host_of(address: str) -> str:
    return address.rpartition(":")[0].strip("[]")


def matching_executors(
    job: Job,
    executors: list[ExecutorRef],
    machine_groups: dict[str, list[str]] | None = None,
    unhealthy: set[str] | frozenset[str] = frozenset(),
) -> list[ExecutorRef]:
    """Healthy executors a job may run on.

    Targets: "" = any executor; "group:NAME" = the hosts of [machine] NAME
    (gocron's host groups) or, when no such [machine] entry exists, the
    executors registered with group NAME; anything else = one host, by its
    address (host:port) or host name.
    """
    live = [e for e in executors if e.address not in unhealthy]
    target = job.target
    if not target:
        return live
    if target.startswith("group:"):
        group = target.removeprefix("group:")
        hosts = (machine_groups or {}).get(group)
        if hosts is not None:
            wanted = set(hosts)
            return [e for e in live if e.host in wanted or _host_of(e.address) in wanted or e.address in wanted]
        return [e for e in live if e.group == group]
    return [e for e in live if target in (e.address, e.host)]


ROUND_ROBIN = "round_robin"
RANDOM = "random"
FIRST = "first"
LEAST_BUSY = "least_busy"
CONSISTENT_HASH = "consistent_hash"
FAILOVER = "failover"
BROADCAST = "broadcast"
SHARDED = "sharded"

# Every route strategy a job may name; the first is the default.
# The names are validated against common.model.ROUTE_STRATEGIES; the same tuple.
assert ROUTE_STRATEGIES == (ROUND_ROBIN, RANDOM, FIRST, LEAST_BUSY, CONSISTENT_HASH, FAILOVER, BROADCAST, SHARDED)
DEFAULT_ROUTE_STRATEGY = ROUND_ROBIN

# Strategies whose plan is every candidate, each to run the task (the others'
# plan is executors to try in turn until one takes the run).
_FAN_OUT = frozenset({BROADCAST, SHARDED})


def fans_out(strategy: str) -> bool:
    """True when a run of this strategy goes to every executor of its plan (broadcast, sharded)."""
    return strategy in _FAN_OUT


def _by_address(candidates: list[ExecutorRef]) -> list[ExecutorRef]:
    """Candidates in address order, one per address: stable across registry refreshes."""
    unique: dict[str, ExecutorRef] = {}
    for executor in candidates:
        unique.setdefault(executor.address, executor)
    return [unique[address] for address in sorted(unique)]


def rendezvous_weight(job: Job, address: str) -> int:
    """The job's weight on one executor for rendezvous (highest-random-weight)
    hashing. Derived from the bytes alone (no salted hash()), so every
    dispatcher process computes the same one."""
    key = f"{job.id}:{job.name}:{address}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def _rendezvous_order(job: Job, ordered: list[ExecutorRef]) -> list[ExecutorRef]:
    """Candidates from the job's highest weight down. The head is its
    consistent-hash executor; when that one leaves, the next becomes the head,
    so failing over goes where consistent hashing would then route."""
    return sorted(ordered, key=lambda e: (-rendezvous_weight(job, e.address), e.address))


class Router:
    """Decides which executors a run goes to, by the job's route strategy.

    One per dispatcher: the round-robin counters live here. Counters are per
    target and start at a random place, since several dispatchers starting at
    0 would all send their first runs to the same executor.
    """

    def __init__(self, rng: random.Random | None = None, load: Callable[[str], int] | None = None) -> None:
        self._rng = rng or random.Random()
        # load(address): runs this dispatcher has in flight on that executor.
        self._load = load
        self._next: dict[str, int] = {}
        self._next_tie: dict[str, int] = {}

    fans_out = staticmethod(fans_out)

    def plan(self, job: Job, candidates: list[ExecutorRef]) -> list[ExecutorRef]:
        """The executors to try for one run, in order.

        - round_robin / random / first / least_busy / consistent_hash: one
          executor ([] when there are no candidates).
        - failover: every candidate, from the job's consistent-hash choice on,
          in a stable order: the job keeps its executor while that is healthy,
          and the caller tries the next when the first is unreachable.
        - broadcast / sharded: every candidate, by address; the caller runs the
          task on each (shard index = position in the list, total = its length).

        An unknown strategy routes round-robin.
        """
        ordered = _by_address(candidates)
        if not ordered:
            return []
        strategy = job.route_strategy
        if strategy in _FAN_OUT:
            return ordered
        if strategy == FAILOVER:
            return _rendezvous_order(job, ordered)
        if strategy == CONSISTENT_HASH:
            return [max(ordered, key=lambda e: (rendezvous_weight(job, e.address), e.address))]
        if strategy == FIRST:
            return [ordered[0]]
        if strategy == RANDOM:
            return [self._rng.choice(ordered)]
        if strategy == LEAST_BUSY:
            return [self._least_busy(job, ordered)]
        return [self._round_robin(self._next, job.target, ordered)]

    def pick(self, job: Job, candidates: list[ExecutorRef]) -> ExecutorRef | None:
        """The first executor of the plan, or None when there is none."""
        planned = self.plan(job, candidates)
        return planned[0] if planned else None

    def _round_robin(self, counters: dict[str, int], key: str, ordered: list[ExecutorRef]) -> ExecutorRef:
        if key not in counters:
            counters[key] = self._rng.randrange(len(ordered))
        index = counters[key] % len(ordered)
        counters[key] = index + 1
        return ordered[index]

    def _least_busy(self, job: Job, ordered: list[ExecutorRef]) -> ExecutorRef:
        if self._load is None:
            idlest = ordered
        else:
            loads = [self._load(e.address) for e in ordered]
            fewest = min(loads)
            idlest = [e for e, n in zip(ordered, loads, strict=True) if n == fewest]
        if len(idlest) == 1:
            return idlest[0]
        # Equal loads take turns, so a burst of firings does not all land on the first.
        return self._round_robin(self._next_tie, job.target, idlest)


class RoundRobinRouter(Router):
    """A Router that routes every job round-robin, whatever its strategy."""

    def plan(self, job: Job, candidates: list[ExecutorRef]) -> list[ExecutorRef]:
        ordered = _by_address(candidates)
        return [self._round_robin(self._next, job.target, ordered)] if ordered else []
