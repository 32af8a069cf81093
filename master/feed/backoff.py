"""Exponential backoff with jitter, for feed polls and JSON API retries."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double per consecutive failure, capped, with "equal jitter".

    Half of each delay is fixed and half random, so many masters (or many retries
    of one master) spread out without any delay collapsing to zero. A server's
    ``Retry-After`` is honoured as a lower bound, still capped by ``maximum``.
    """

    def __init__(self, initial: float, maximum: float, *, rng: random.Random | None = None) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("need 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.failures = 0
        # Jitter is not cryptography; a seedable generator keeps tests reproducible.
        self._rng = rng or random.Random()  # noqa: S311

    def __repr__(self) -> str:
        return f"<Backoff failures={self.failures} initial={self.initial} max={self.maximum}>"

    def delay_for(self, failures: int, retry_after: float | None = None) -> float:
        """The delay after ``failures`` consecutive failures (``failures >= 1``)."""
        base = min(self.maximum, self.initial * 2 ** min(max(failures - 1, 0), 62))
        delay: float = base / 2 + self._rng.uniform(0, base / 2)
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, self.maximum))
        return delay

    def failure(self, retry_after: float | None = None) -> float:
        """Record one more failure; the delay to wait before trying again."""
        self.failures += 1
        return self.delay_for(self.failures, retry_after)

    def success(self) -> None:
        """Back to the initial delay after a success."""
        self.failures = 0
