"""Choosing an executor for a run among those matching the job's target."""

from __future__ import annotations

from collections import defaultdict

from common.model import Job
from common.registry.base import ExecutorRef


def matching_executors(job: Job, executors: list[ExecutorRef]) -> list[ExecutorRef]:
    """Executors a job may run on: any (empty target), a group ("group:NAME"),
    or one host (its address or host name)."""
    target = job.target
    if not target:
        return executors
    if target.startswith("group:"):
        group = target.removeprefix("group:")
        return [e for e in executors if e.group == group]
    return [e for e in executors if target in (e.address, e.host)]


class RoundRobinRouter:
    """Round-robin per target, so each target's executors share its load evenly."""

    def __init__(self) -> None:
        self._next: dict[str, int] = defaultdict(int)

    def pick(self, job: Job, candidates: list[ExecutorRef]) -> ExecutorRef | None:
        if not candidates:
            return None
        ordered = sorted(candidates, key=lambda e: e.address)  # stable across registry refreshes
        index = self._next[job.target] % len(ordered)
        self._next[job.target] = index + 1
        return ordered[index]
