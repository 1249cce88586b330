from __future__ import annotations

from collections import Counter

from crontrio.common.model import Job
from crontrio.common.registry.base import ExecutorRef
from crontrio.dispatcher.routing import RoundRobinRouter, matching_executors

E1 = ExecutorRef(address="192.168.2.74:5921", group="php", host="web1")
E2 = ExecutorRef(address="192.168.2.75:5921", group="php", host="web2")
E3 = ExecutorRef(address="10.0.0.9:5921", group="default", host="batch")
ALL = [E1, E2, E3]
MACHINES = {"phpgroup": ["192.168.2.74", "192.168.2.75"], "batchhosts": ["batch"]}


def job(target: str = "") -> Job:
    return Job(name="j", spec="* * * * *", command="true", target=target)


def test_empty_target_means_any_executor() -> None:
    assert matching_executors(job(), ALL, MACHINES) == ALL


def test_machine_group_matches_hosts_by_ip_or_name() -> None:
    assert matching_executors(job("group:phpgroup"), ALL, MACHINES) == [E1, E2]
    assert matching_executors(job("group:batchhosts"), ALL, MACHINES) == [E3]


def test_registered_group_when_no_machine_entry() -> None:
    assert matching_executors(job("group:php"), ALL, MACHINES) == [E1, E2]
    assert matching_executors(job("group:nosuch"), ALL, MACHINES) == []


def test_single_host_by_address_or_name() -> None:
    assert matching_executors(job("10.0.0.9:5921"), ALL) == [E3]
    assert matching_executors(job("web2"), ALL) == [E2]


def test_unhealthy_executors_are_not_routed_to() -> None:
    assert matching_executors(job(), ALL, MACHINES, unhealthy={E1.address}) == [E2, E3]
    assert matching_executors(job("group:phpgroup"), ALL, MACHINES, unhealthy={E1.address, E2.address}) == []


def test_round_robin_spreads_evenly_per_target() -> None:
    router = RoundRobinRouter()
    picks = Counter(router.pick(job(), ALL) for _ in range(30))
    assert picks == {E1: 10, E2: 10, E3: 10}
    assert router.pick(job(), []) is None
