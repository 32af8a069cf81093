"""A log throttle: at most N lines per window for one noisy event, the rest counted.

A flood of hostile connections must not turn into a flood of log lines (each is
a JSON encode and a write on the event loop, and it buries what matters). The
metric that counts the events is updated for every one; the log says how many
it left out when the next window opens.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class LogThrottle:
    """Allow ``limit`` events per ``window`` seconds; report how many were suppressed."""

    def __init__(
        self, limit: int = 20, window: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be ≥ 1 and window > 0")
        self._limit = limit
        self._window = window
        self._clock = clock
        self._started = clock()
        self._count = 0
        self._suppressed = 0

    def allow(self) -> tuple[bool, int]:
        """(log this one?, events suppressed in the previous window, to report once).

        The count is non-zero only on the first allowed event of a new window.
        """
        now = self._clock()
        carried = 0
        if now - self._started >= self._window:
            carried, self._suppressed = self._suppressed, 0
            self._started, self._count = now, 0
        if self._count < self._limit:
            self._count += 1
            return True, carried
        self._suppressed += 1
        return False, carried
