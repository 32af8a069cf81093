"""The log throttle lets a few lines through per window and counts the rest."""

from __future__ import annotations

import pytest

from master.throttle import LogThrottle


def test_limit_per_window_and_suppressed_count_reported_once() -> None:
    """Past the limit events are suppressed; the next window reports how many, once."""
    now = [0.0]
    throttle = LogThrottle(limit=3, window=10.0, clock=lambda: now[0])
    assert [throttle.allow() for _ in range(5)] == [
        (True, 0), (True, 0), (True, 0), (False, 0), (False, 0),
    ]  # fmt: skip
    now[0] = 10.5
    assert throttle.allow() == (True, 2)
    assert throttle.allow() == (True, 0)


def test_bad_settings_are_refused() -> None:
    """A zero limit or window is a programming error."""
    with pytest.raises(ValueError, match="limit"):
        LogThrottle(limit=0)
    with pytest.raises(ValueError, match="window"):
        LogThrottle(window=0)
