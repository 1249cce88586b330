"""bench/concurrency.py's CPU split: the executor's own CPU up to the last
start is read from the first sample at or after it, against the sample taken
before the first request."""

from __future__ import annotations

from bench.concurrency import cpu_split


def _sample(t: float, own: float) -> dict[str, float]:
    return {"t": t, "cpu_own": own}


def test_own_cpu_to_last_start_uses_the_first_sample_at_or_after_it() -> None:
    samples = [_sample(100.0, 1.0), _sample(100.5, 1.4), _sample(101.0, 2.0), _sample(101.5, 2.1)]
    final = {"cpu_own": 3.0, "cpu_children": 9.0}
    out = cpu_split(samples, final, last_started=100.7)
    assert out == {"executor_cpu_own_s": 3.0, "executor_cpu_children_s": 9.0, "executor_cpu_own_to_last_start_s": 1.0}


def test_a_last_start_after_every_sample_takes_the_last_one() -> None:
    out = cpu_split([_sample(1.0, 0.5), _sample(1.5, 0.75)], None, last_started=9.0)
    assert out == {"executor_cpu_own_to_last_start_s": 0.25}


def test_nothing_started_gives_no_start_path_figure() -> None:
    assert cpu_split([_sample(1.0, 0.5)], {"cpu_own": 1.0, "cpu_children": 0.0}, last_started=None) == {
        "executor_cpu_own_s": 1.0,
        "executor_cpu_children_s": 0.0,
    }
