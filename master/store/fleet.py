"""``store.fleet``: how the fleet did over the last hours, in hour buckets — the front page's plots.

Per hour (aligned to the hour, the last one is the hour now running):

- ``finished`` jobs and their ``outcomes``;
- ``attempts`` that ended and how many of them were ``infra_failures`` (outcome
  ``infra_error``, or the slave was lost) — the ``infra_error_rate`` counts attempts,
  not jobs, because a retried infrastructure failure never reaches a job's outcome;
- ``queue_depth`` at the end of the hour, worked back from the depth now: a job
  entered the queue when it was created and left it at its latest claim
  (``assigned_at``) or, never claimed, when it ended (cancelled, untestable). A job
  claimed more than once counts as queued until its latest claim: an estimate,
  exact when nothing was re-queued.

Every query reads only the window, through the time indexes of schema v5.
"""

from __future__ import annotations

import math
from typing import Any, Final

from master.store.db import Database

HOUR: Final = 3600.0
MAX_HOURS: Final = 24 * 7

_FINISHED = (
    "SELECT CAST((finished_at - ?) / 3600 AS INTEGER), outcome, COUNT(*) FROM jobs"
    " WHERE finished_at >= ? AND outcome IS NOT NULL GROUP BY 1, 2"
)
_ATTEMPTS = (
    "SELECT CAST((ended_at - ?) / 3600 AS INTEGER),"
    " SUM(outcome = 'infra_error' OR status = 'lost'), COUNT(*)"
    " FROM attempts WHERE ended_at >= ? GROUP BY 1"
)
_CREATED = (
    "SELECT CAST((created_at - ?) / 3600 AS INTEGER), COUNT(*) FROM jobs"
    " WHERE created_at >= ? GROUP BY 1"
)
_CLAIMED = (
    "SELECT CAST((assigned_at - ?) / 3600 AS INTEGER), COUNT(*) FROM jobs"
    " WHERE assigned_at >= ? GROUP BY 1"
)
_ENDED_UNCLAIMED = (
    "SELECT CAST((finished_at - ?) / 3600 AS INTEGER), COUNT(*) FROM jobs"
    " WHERE finished_at >= ? AND assigned_at IS NULL GROUP BY 1"
)
_QUEUE = "SELECT COUNT(*), MIN(created_at) FROM jobs WHERE state = 'queued'"


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


class FleetStore:
    """Read-only figures over all jobs."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def hours(self, now: float, hours: int = 24) -> dict[str, Any]:
        """``{"now", "queue", "hours": [...], "totals"}`` for the last ``hours`` hours."""
        hours = max(1, min(hours, MAX_HOURS))
        start = math.floor(now / HOUR) * HOUR - (hours - 1) * HOUR
        buckets: list[dict[str, Any]] = [
            {"start": start + i * HOUR, "finished": 0, "outcomes": {}, "attempts": 0}
            for i in range(hours)
        ]

        def bucket(index: Any) -> dict[str, Any] | None:
            return buckets[index] if isinstance(index, int) and 0 <= index < hours else None

        for index, outcome, n in await self._db.fetchall(_FINISHED, (start, start)):
            if (b := bucket(index)) is not None:
                b["finished"] += n
                b["outcomes"][outcome] = b["outcomes"].get(outcome, 0) + n
        for b in buckets:
            b["infra_failures"] = 0
        for index, infra, n in await self._db.fetchall(_ATTEMPTS, (start, start)):
            if (b := bucket(index)) is not None:
                b["attempts"] += n
                b["infra_failures"] += infra or 0
        entered = [0] * hours
        left = [0] * hours
        for sql, counts in ((_CREATED, entered), (_CLAIMED, left), (_ENDED_UNCLAIMED, left)):
            for index, n in await self._db.fetchall(sql, (start, start)):
                if isinstance(index, int) and 0 <= index < hours:
                    counts[index] += n
        row = await self._db.fetchone(_QUEUE)
        depth, oldest = (row[0], row[1]) if row is not None else (0, None)
        level = depth
        for i in range(hours - 1, -1, -1):
            buckets[i]["queue_depth"] = max(0, level)
            level = level - entered[i] + left[i]
        for b in buckets:
            b["infra_error_rate"] = _rate(b["infra_failures"], b["attempts"])
        outcomes: dict[str, int] = {}
        for b in buckets:
            for outcome, n in b["outcomes"].items():
                outcomes[outcome] = outcomes.get(outcome, 0) + n
        finished = sum(b["finished"] for b in buckets)
        attempts = sum(b["attempts"] for b in buckets)
        infra = sum(b["infra_failures"] for b in buckets)
        return {
            "now": now,
            "queue": {
                "depth": depth,
                "oldest_created_at": oldest,
                "oldest_age_s": None if oldest is None else max(0.0, now - oldest),
            },
            "hours": buckets,
            "totals": {
                "hours": hours,
                "finished": finished,
                "outcomes": dict(sorted(outcomes.items())),
                "jobs_per_hour": round(finished / hours, 2),
                "attempts": attempts,
                "infra_failures": infra,
                "infra_error_rate": _rate(infra, attempts),
            },
        }
