"""Route strategies: which executors a run goes to (dispatcher/routing.py Router.plan)."""

from __future__ import annotations

import hashlib
import random
from collections import Counter

import pytest

from crontrio.common import model
from crontrio.common.model import Job
from crontrio.common.registry.base import ExecutorRef
from crontrio.dispatcher.routing import (
    BROADCAST,
    CONSISTENT_HASH,
    FAILOVER,
    FIRST,
    LEAST_BUSY,
    RANDOM,
    ROUND_ROBIN,
    ROUTE_STRATEGIES,
    SHARDED,
    Router,
    fans_out,
    rendezvous_weight,
)

# Deliberately not in address order: every strategy must not depend on the registry's order.
EXECUTORS = [ExecutorRef(address=f"10.0.0.{n}:5921", host=f"h{n}") for n in (3, 1, 5, 2, 4)]
BY_ADDRESS = sorted(EXECUTORS, key=lambda e: e.address)


def job(strategy: str = ROUND_ROBIN, job_id: int = 7, name: str = "nightly", target: str = "") -> Job:
    return Job(name=name, spec="* * * * *", command="true", id=job_id, target=target, route_strategy=strategy)


def jobs(strategy: str, count: int = 1000) -> list[Job]:
    return [job(strategy, job_id=i, name=f"job-{i}") for i in range(1, count + 1)]


def owners(router: Router, strategy: str, candidates: list[ExecutorRef]) -> dict[int, str]:
    """job id -> address of the executor each synthetic job is routed to."""
    return {j.id: router.plan(j, candidates)[0].address for j in jobs(strategy)}


def test_strategy_names_in_order() -> None:
    assert ROUTE_STRATEGIES == (
        "round_robin",
        "random",
        "first",
        "least_busy",
        "consistent_hash",
        "failover",
        "broadcast",
        "sharded",
    )
    assert ROUTE_STRATEGIES[0] == Job(name="j", spec="* * * * *", command="true").route_strategy
    # The model's list (used to validate jobs) must not drift from the router's.
    assert getattr(model, "ROUTE_STRATEGIES", ROUTE_STRATEGIES) == ROUTE_STRATEGIES


def test_fans_out_only_broadcast_and_sharded() -> None:
    assert [s for s in ROUTE_STRATEGIES if fans_out(s)] == [BROADCAST, SHARDED]
    assert Router.fans_out(SHARDED) and not Router.fans_out(FAILOVER)
    assert not fans_out("no_such_strategy")


@pytest.mark.parametrize("strategy", [*ROUTE_STRATEGIES, "no_such_strategy"])
def test_no_candidates_plans_nothing(strategy: str) -> None:
    router = Router(rng=random.Random(1), load=lambda _address: 0)
    assert router.plan(job(strategy), []) == []
    assert router.pick(job(strategy), []) is None


@pytest.mark.parametrize("strategy", [ROUND_ROBIN, RANDOM, FIRST, LEAST_BUSY, CONSISTENT_HASH])
def test_single_executor_strategies_plan_one_candidate(strategy: str) -> None:
    router = Router(rng=random.Random(1), load=lambda _address: 0)
    for _ in range(20):
        planned = router.plan(job(strategy), EXECUTORS)
        assert len(planned) == 1
        assert planned[0] in EXECUTORS


def test_round_robin_visits_all_evenly_in_address_order() -> None:
    router = Router(rng=random.Random(3))
    picks = [router.plan(job(ROUND_ROBIN), EXECUTORS)[0] for _ in range(500)]
    assert Counter(picks) == {e: 100 for e in EXECUTORS}
    # Consecutive picks walk the address order, from a random starting place.
    start = BY_ADDRESS.index(picks[0])
    assert picks[:5] == (BY_ADDRESS[start:] + BY_ADDRESS[:start])


def test_round_robin_counts_per_target() -> None:
    router = Router(rng=random.Random(3))
    a = [router.plan(job(ROUND_ROBIN, target=""), EXECUTORS)[0] for _ in range(5)]
    router.plan(job(ROUND_ROBIN, target="group:other"), EXECUTORS)  # another target's turn does not shift this one
    b = [router.plan(job(ROUND_ROBIN, target=""), EXECUTORS)[0] for _ in range(5)]
    assert a == b
    assert set(a) == set(EXECUTORS)


def test_round_robin_start_is_random() -> None:
    starts = {Router(rng=random.Random(seed)).plan(job(), EXECUTORS)[0] for seed in range(50)}
    assert len(starts) > 1


def test_unknown_strategy_routes_round_robin() -> None:
    router = Router(rng=random.Random(3))
    picks = Counter(router.plan(job("no_such_strategy"), EXECUTORS)[0] for _ in range(50))
    assert picks == {e: 10 for e in EXECUTORS}


def test_random_is_seeded_and_covers_all() -> None:
    first = [Router(rng=random.Random(42)).plan(job(RANDOM), EXECUTORS)[0] for _ in range(3)]
    assert first[0] == first[1] == first[2]  # same seed, same choice
    router = Router(rng=random.Random(42))
    picks = Counter(router.plan(job(RANDOM), EXECUTORS)[0] for _ in range(1000))
    assert set(picks) == set(EXECUTORS)
    assert all(120 <= n <= 280 for n in picks.values())  # ~200 each
    # Independent of the order the registry lists executors in.
    a = Router(rng=random.Random(9))
    b = Router(rng=random.Random(9))
    assert [a.plan(job(RANDOM), EXECUTORS)[0] for _ in range(20)] == [
        b.plan(job(RANDOM), list(reversed(EXECUTORS)))[0] for _ in range(20)
    ]


def test_first_is_lowest_address_always() -> None:
    router = Router(rng=random.Random(1))
    assert {router.plan(job(FIRST), EXECUTORS)[0] for _ in range(20)} == {BY_ADDRESS[0]}
    assert router.plan(job(FIRST), list(reversed(EXECUTORS))) == [BY_ADDRESS[0]]
    assert router.plan(job(FIRST), BY_ADDRESS[1:]) == [BY_ADDRESS[1]]


def test_least_busy_picks_least_loaded() -> None:
    loads = {e.address: 5 for e in EXECUTORS}
    loads["10.0.0.4:5921"] = 1
    router = Router(rng=random.Random(1), load=loads.__getitem__)
    for _ in range(10):
        assert router.plan(job(LEAST_BUSY), EXECUTORS)[0].address == "10.0.0.4:5921"
    loads["10.0.0.4:5921"] = 9
    loads["10.0.0.2:5921"] = 0
    assert router.plan(job(LEAST_BUSY), EXECUTORS)[0].address == "10.0.0.2:5921"


def test_least_busy_spreads_ties() -> None:
    loads = {e.address: 0 for e in EXECUTORS}
    loads["10.0.0.1:5921"] = 3  # busy: never chosen while others are idle
    router = Router(rng=random.Random(1), load=loads.__getitem__)
    picks = Counter(router.plan(job(LEAST_BUSY), EXECUTORS)[0].address for _ in range(400))
    assert picks == {"10.0.0.2:5921": 100, "10.0.0.3:5921": 100, "10.0.0.4:5921": 100, "10.0.0.5:5921": 100}


def test_least_busy_follows_live_load() -> None:
    """The dispatcher counts a run in flight once routed: a burst fills executors evenly."""
    in_flight = Counter[str]()
    router = Router(rng=random.Random(1), load=lambda address: in_flight[address])
    for _ in range(15):
        in_flight[router.plan(job(LEAST_BUSY), EXECUTORS)[0].address] += 1
    assert sorted(in_flight.values()) == [3, 3, 3, 3, 3]


def test_least_busy_without_load_spreads_like_round_robin() -> None:
    router = Router(rng=random.Random(1))
    picks = Counter(router.plan(job(LEAST_BUSY), EXECUTORS)[0] for _ in range(50))
    assert picks == {e: 10 for e in EXECUTORS}


def test_consistent_hash_is_stable_across_routers_and_order() -> None:
    # Two dispatchers (different seeds, different registry order) route every job alike.
    a = Router(rng=random.Random(1))
    b = Router(rng=random.Random(2))
    assert owners(a, CONSISTENT_HASH, EXECUTORS) == owners(b, CONSISTENT_HASH, list(reversed(EXECUTORS)))
    # And repeatedly to the same executor.
    assert {a.plan(job(CONSISTENT_HASH), EXECUTORS)[0] for _ in range(20)} == {a.plan(job(CONSISTENT_HASH), EXECUTORS)[0]}


def test_consistent_hash_is_fixed_across_processes() -> None:
    """blake2b, not the salted hash(): a known value stays put."""
    chosen = Router().plan(job(CONSISTENT_HASH, job_id=7, name="nightly"), EXECUTORS)[0]
    expected = max(BY_ADDRESS, key=lambda e: rendezvous_weight(job(job_id=7, name="nightly"), e.address))
    assert chosen == expected
    assert rendezvous_weight(job(job_id=7, name="nightly"), "10.0.0.1:5921") == int.from_bytes(
        hashlib.blake2b(b"7:nightly:10.0.0.1:5921", digest_size=8).digest(), "big"
    )


def test_consistent_hash_spreads_jobs() -> None:
    counts = Counter(owners(Router(), CONSISTENT_HASH, EXECUTORS).values())
    assert set(counts) == {e.address for e in EXECUTORS}
    assert all(130 <= n <= 270 for n in counts.values())  # ~200 each


def test_consistent_hash_removing_an_executor_moves_only_its_jobs() -> None:
    router = Router()
    before = owners(router, CONSISTENT_HASH, EXECUTORS)
    gone = "10.0.0.3:5921"
    after = owners(router, CONSISTENT_HASH, [e for e in EXECUTORS if e.address != gone])
    moved = {j for j in before if before[j] != after[j]}
    assert moved == {j for j, address in before.items() if address == gone}
    assert moved  # that executor did own some jobs
    assert all(after[j] != gone for j in moved)


def test_consistent_hash_adding_an_executor_moves_about_a_sixth() -> None:
    router = Router()
    before = owners(router, CONSISTENT_HASH, EXECUTORS)
    sixth = ExecutorRef(address="10.0.0.6:5921")
    after = owners(router, CONSISTENT_HASH, [*EXECUTORS, sixth])
    moved = [j for j in before if before[j] != after[j]]
    assert 80 <= len(moved) <= 250  # ~1/6 of 1,000
    assert all(after[j] == sixth.address for j in moved)  # only onto the newcomer


def test_failover_is_all_candidates_from_the_hash_choice() -> None:
    router = Router(rng=random.Random(1))
    for j in jobs(FAILOVER, 50):
        planned = router.plan(j, EXECUTORS)
        assert sorted(planned, key=lambda e: e.address) == BY_ADDRESS
        assert planned[0] == router.plan(job(CONSISTENT_HASH, job_id=j.id, name=j.name), EXECUTORS)[0]
        assert router.plan(j, list(reversed(EXECUTORS))) == planned  # stable order
        assert Router(rng=random.Random(2)).plan(j, EXECUTORS) == planned  # same on every dispatcher


def test_failover_next_is_where_the_job_goes_when_the_first_leaves() -> None:
    router = Router()
    for j in jobs(FAILOVER, 50):
        planned = router.plan(j, EXECUTORS)
        assert router.plan(j, planned[1:]) == planned[1:]
        assert router.plan(job(CONSISTENT_HASH, job_id=j.id, name=j.name), planned[1:]) == [planned[1]]


def test_failover_spreads_first_choices() -> None:
    firsts = Counter(address for address in owners(Router(), FAILOVER, EXECUTORS).values())
    assert set(firsts) == {e.address for e in EXECUTORS}


@pytest.mark.parametrize("strategy", [BROADCAST, SHARDED])
def test_fan_out_plans_every_candidate_by_address(strategy: str) -> None:
    router = Router(rng=random.Random(1))
    assert router.plan(job(strategy), EXECUTORS) == BY_ADDRESS
    assert router.plan(job(strategy), list(reversed(EXECUTORS))) == BY_ADDRESS
    assert router.plan(job(strategy), [EXECUTORS[0]]) == [EXECUTORS[0]]


@pytest.mark.parametrize("strategy", ROUTE_STRATEGIES)
def test_duplicate_addresses_are_planned_once(strategy: str) -> None:
    router = Router(rng=random.Random(1))
    planned = router.plan(job(strategy), [*EXECUTORS, *EXECUTORS])
    assert len(planned) == len({e.address for e in planned})
    assert len(planned) == (5 if strategy in (FAILOVER, BROADCAST, SHARDED) else 1)


def test_pick_is_the_head_of_the_plan() -> None:
    router = Router(rng=random.Random(1))
    assert router.pick(job(FIRST), EXECUTORS) == BY_ADDRESS[0]
    assert router.pick(job(BROADCAST), EXECUTORS) == BY_ADDRESS[0]
