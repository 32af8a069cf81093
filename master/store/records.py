"""The store's smaller tables: callbacks, feed state, seen releases, slaves, event reads."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from master.jobs import Callback, EventRow, FeedState, Job
from master.store.db import Database
from master.store.rows import callback_from_row, dumps, event_from_row


def insert_callback(conn: sqlite3.Connection, job: Job, now: float) -> None:
    """Queue the completion webhook of a job that just ended (same transaction)."""
    if not job.callback_url:
        return
    conn.execute(
        "INSERT INTO callbacks (job_id, url, payload, attempts, next_at, created_at)"
        " VALUES (?, ?, ?, 0, ?, ?)",
        (job.id, job.callback_url, dumps(job.to_dict()), now, now),
    )


class RecordTables:
    """Mixed into ``Store``: everything but the job state machine."""

    _db: Database

    # ------------------------------------------------------------ events ----

    async def get_events(self, job_id: int, *, after: int = 0, limit: int = 1000) -> list[EventRow]:
        """Stored events of a job with ``seq > after``, in order, at most ``limit``."""
        rows = await self._db.fetchall(
            "SELECT * FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (job_id, after, max(0, limit)),
        )
        return [event_from_row(r) for r in rows]

    async def max_seq(self, job_id: int) -> int:
        """The highest stored event seq of a job (0 if none)."""
        row = await self._db.fetchone(
            "SELECT COALESCE(MAX(seq), 0) FROM events WHERE job_id = ?", (job_id,)
        )
        return int(row[0]) if row else 0

    # --------------------------------------------------------- callbacks ----

    async def due_callbacks(self, now: float, limit: int = 100) -> list[Callback]:
        """Pending webhooks whose next try is due, oldest first."""
        rows = await self._db.fetchall(
            "SELECT * FROM callbacks WHERE done_at IS NULL AND next_at <= ?"
            " ORDER BY next_at, id LIMIT ?",
            (now, limit),
        )
        return [callback_from_row(r) for r in rows]

    async def callback_done(self, callback_id: int) -> None:
        """The webhook was delivered (or given up on): never due again."""

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE callbacks SET done_at = ? WHERE id = ?", (time.time(), callback_id)
            )

        await self._db.write(tx)

    async def callback_failed(self, callback_id: int, next_at: float) -> None:
        """A delivery failed: count it and try again at ``next_at``."""

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE callbacks SET attempts = attempts + 1, next_at = ? WHERE id = ?",
                (next_at, callback_id),
            )

        await self._db.write(tx)

    # -------------------------------------------------------------- feed ----

    async def get_feed_state(self, url: str) -> FeedState | None:
        row = await self._db.fetchone("SELECT * FROM feed_state WHERE url = ?", (url,))
        if row is None:
            return None
        return FeedState(
            cursor=row["cursor"],
            etag=row["etag"],
            last_modified=row["last_modified"],
            updated_at=row["updated_at"],
        )

    async def set_feed_state(self, url: str, state: FeedState) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO feed_state (url, cursor, etag, last_modified, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (url) DO UPDATE SET cursor = excluded.cursor,"
                " etag = excluded.etag, last_modified = excluded.last_modified,"
                " updated_at = excluded.updated_at",
                (
                    url,
                    state.cursor,
                    state.etag,
                    state.last_modified,
                    state.updated_at or time.time(),
                ),
            )

        await self._db.write(tx)

    async def release_seen(self, project: str, version: str) -> bool:
        row = await self._db.fetchone(
            "SELECT 1 FROM releases WHERE project = ? AND version = ?", (project, version)
        )
        return row is not None

    async def mark_release_seen(self, project: str, version: str, source: str) -> bool:
        """Remember a release; True if it was not known before."""

        def tx(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT OR IGNORE INTO releases (project, version, source, first_seen)"
                " VALUES (?, ?, ?, ?)",
                (project, version, source, time.time()),
            )
            return cur.rowcount == 1

        return await self._db.write(tx)

    # ------------------------------------------------------------ slaves ----

    async def slave_seen(self, name: str, address: str, capabilities: dict[str, Any]) -> None:
        """Record a slave that connected (for history; the live view is the registry)."""

        def tx(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.execute(
                "INSERT INTO slaves (name, address, capabilities, first_seen, last_seen, connected)"
                " VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (name) DO UPDATE SET"
                " address = excluded.address, capabilities = excluded.capabilities,"
                " last_seen = excluded.last_seen, connected = 1",
                (name, address, dumps(capabilities), now, now),
            )

        await self._db.write(tx)

    async def slave_gone(self, name: str) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE slaves SET connected = 0, last_seen = ? WHERE name = ?",
                (time.time(), name),
            )

        await self._db.write(tx)

    async def known_slaves(self) -> list[dict[str, Any]]:
        rows = await self._db.fetchall("SELECT * FROM slaves ORDER BY name")
        return [
            {
                "name": r["name"],
                "address": r["address"],
                "first_seen": r["first_seen"],
                "last_seen": r["last_seen"],
                "connected": bool(r["connected"]),
            }
            for r in rows
        ]
