"""Choosing an executor for a run among those matching the job's target."""

from __future__ import annotations

import random

from common.model import Job
from common.registry.base import ExecutorRef


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


class RoundRobinRouter:
    """Round-robin per target, so each target's executors share its load evenly.

    Each counter starts at a random place: several dispatchers starting at 0
    would all send their first runs to the same executor.
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._next: dict[str, int] = {}

    def pick(self, job: Job, candidates: list[ExecutorRef]) -> ExecutorRef | None:
        if not candidates:
            return None
        ordered = sorted(candidates, key=lambda e: e.address)  # stable across registry refreshes
        if job.target not in self._next:
            self._next[job.target] = self._rng.randrange(len(ordered))
        index = self._next[job.target] % len(ordered)
        self._next[job.target] = index + 1
        return ordered[index]
