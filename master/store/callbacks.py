"""Completion webhooks, persisted so none is lost on a restart (table ``callbacks``).

A job that ends queues its webhook in the same transaction (``queue_callback``,
called by the state machine); the sender (``master.http.callbacks``) reads what
is due and records each delivery.
"""

from __future__ import annotations

import sqlite3
import time

from master.jobs import Callback, Job
from master.store.db import Database
from master.store.rows import callback_from_row, dumps


def queue_callback(conn: sqlite3.Connection, job: Job, now: float) -> None:
    """Queue the completion webhook of a job that just ended (same transaction)."""
    if not job.callback_url:
        return
    conn.execute(
        "INSERT INTO callbacks (job_id, url, payload, attempts, next_at, created_at)"
        " VALUES (?, ?, ?, 0, ?, ?)",
        (job.id, job.callback_url, dumps(job.to_dict()), now, now),
    )


class CallbackStore:
    """``store.callbacks``: pending webhooks and their deliveries."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def due(self, now: float, limit: int = 100) -> list[Callback]:
        """Pending webhooks whose next try is due, oldest first."""
        rows = await self._db.fetchall(
            "SELECT * FROM callbacks WHERE done_at IS NULL AND next_at <= ?"
            " ORDER BY next_at, id LIMIT ?",
            (now, limit),
        )
        return [callback_from_row(r) for r in rows]

    async def done(self, callback_id: int) -> None:
        """The webhook was delivered (or given up on): never due again."""

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE callbacks SET done_at = ? WHERE id = ?", (time.time(), callback_id)
            )

        await self._db.write(tx)

    async def failed(self, callback_id: int, next_at: float) -> None:
        """A delivery failed: count it and try again at ``next_at``."""

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE callbacks SET attempts = attempts + 1, next_at = ? WHERE id = ?",
                (next_at, callback_id),
            )

        await self._db.write(tx)
