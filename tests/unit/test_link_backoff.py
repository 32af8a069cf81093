"""The slave link's reconnect delays: doubling, capped, and jittered across a fleet."""

from __future__ import annotations

import random

from slave.link import Backoff


def _busiest(values: list[float], width: float) -> int:
    values = sorted(values)
    return max(sum(1 for v in values[i:] if v - u < width) for i, u in enumerate(values))


def test_delays_double_within_equal_jitter_bounds_up_to_the_cap() -> None:
    """The delay after ``k`` failures lies in [b/2, b], b = first * 2**k capped at ``cap``."""
    backoff = Backoff(first=0.5, cap=30.0)
    rng = random.Random(5)
    for k, base in enumerate([0.5, 1, 2, 4, 8, 16, 30, 30]):
        for _ in range(200):
            assert base / 2 <= backoff.delay(k, rng) <= base
    assert 15.0 <= backoff.delay(10_000, rng) <= 30.0  # no overflow after a long outage


def test_a_fleet_failing_together_spreads_its_retries() -> None:
    """100 slaves that lost the master at once retry over the whole jitter window, not in
    one instant (without jitter all 100 would fall in the same 10 ms)."""
    backoff = Backoff(first=0.5, cap=30.0)
    for failures in range(4):
        base = 0.5 * 2**failures
        delays = [backoff.delay(failures, random.Random(seed)) for seed in range(100)]
        assert max(delays) - min(delays) >= 0.8 * base / 2
        assert _busiest(delays, 0.010) <= 15, (failures, sorted(delays))
