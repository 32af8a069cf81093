"""``pyti tail``'s reconnect delays: growing, jittered ±50 %, spread across many clients."""

from __future__ import annotations

import random

from master.client.tail import BACKOFF_S, retry_delay


def _busiest(values: list[float], width: float) -> int:
    values = sorted(values)
    return max(sum(1 for v in values[i:] if v - u < width) for i, u in enumerate(values))


def test_delays_grow_and_stay_within_half_to_one_and_a_half_of_the_step() -> None:
    """After ``n`` failures the delay lies in [b/2, 3b/2] of the n-th step (the last step
    repeats); the mean stays the step's, so the time before giving up does not shrink."""
    rng = random.Random(3)
    for failures in range(len(BACKOFF_S) + 3):
        base = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
        delays = [retry_delay(failures, rng) for _ in range(2000)]
        assert base / 2 <= min(delays) and max(delays) <= base * 1.5
        assert abs(sum(delays) / len(delays) - base) < 0.05 * base


def test_tails_of_one_restarted_master_do_not_retry_in_the_same_instant() -> None:
    """100 tails that lost the master at once spread their first retry over 0.1-0.3 s
    (without jitter all 100 would be in the same 10 ms)."""
    delays = [retry_delay(0, random.Random(seed)) for seed in range(100)]
    assert max(delays) - min(delays) >= 0.15
    assert _busiest(delays, 0.010) <= 15, sorted(delays)
