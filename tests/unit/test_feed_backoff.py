"""Backoff doubles per failure, is capped, jittered, honours Retry-After, resets."""

from __future__ import annotations

import random

import pytest

from master.feed.backoff import Backoff


def test_delays_double_within_jitter_bounds_and_cap() -> None:
    """The n-th delay lies in [b/2, b] with b = initial * 2**(n-1), capped at maximum."""
    backoff = Backoff(1.0, 10.0, rng=random.Random(7))
    for n, base in enumerate([1, 2, 4, 8, 10, 10, 10], start=1):
        delay = backoff.failure()
        assert backoff.failures == n
        assert base / 2 <= delay <= base


def test_jitter_spreads_delays() -> None:
    """Two watchers failing together do not retry in lockstep."""
    a, b = Backoff(8.0, 100.0, rng=random.Random(1)), Backoff(8.0, 100.0, rng=random.Random(2))
    assert a.failure() != b.failure()


def test_success_resets_to_the_initial_delay() -> None:
    """After a success the next failure waits the initial delay again."""
    backoff = Backoff(1.0, 100.0, rng=random.Random(3))
    for _ in range(5):
        backoff.failure()
    backoff.success()
    assert backoff.failure() <= 1.0


def test_retry_after_is_a_lower_bound_but_capped() -> None:
    """A server's Retry-After lengthens the wait, never beyond the maximum."""
    backoff = Backoff(1.0, 60.0, rng=random.Random(4))
    assert backoff.failure(retry_after=30.0) == 30.0
    assert backoff.failure(retry_after=3600.0) == 60.0


def test_huge_failure_counts_do_not_overflow() -> None:
    """Thousands of failures still give the capped delay, not an OverflowError."""
    assert Backoff(1.0, 5.0).delay_for(10_000) <= 5.0


def test_bad_bounds_are_refused() -> None:
    """A zero initial delay or a maximum below it is a programming error."""
    with pytest.raises(ValueError, match="initial"):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError, match="initial"):
        Backoff(2.0, 1.0)
