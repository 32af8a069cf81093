"""What the feed watcher remembers: where it is in each feed, and the releases it has seen.

A seen release the feed queued also carries the set of files already handed to a job
(sha256 digests) and when to look for files uploaded since (``master.feed.late``).
"""

from __future__ import annotations

import json
import sqlite3
import time

from master.jobs import FeedState, TrackedRelease
from master.store.db import Database


def _digests(text: str | None) -> frozenset[str]:
    try:
        raw = json.loads(text) if text else []
    except ValueError:
        raw = []
    return frozenset(d for d in raw if isinstance(d, str)) if isinstance(raw, list) else frozenset()


class FeedStore:
    """``store.feed``: tables ``feed_state`` (per feed URL) and ``releases`` (seen releases)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_state(self, url: str) -> FeedState | None:
        row = await self._db.fetchone("SELECT * FROM feed_state WHERE url = ?", (url,))
        if row is None:
            return None
        return FeedState(
            cursor=row["cursor"],
            etag=row["etag"],
            last_modified=row["last_modified"],
            updated_at=row["updated_at"],
        )

    async def set_state(self, url: str, state: FeedState) -> None:
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

    async def mark_release_seen(
        self,
        project: str,
        version: str,
        source: str,
        *,
        files: frozenset[str] | None = None,
        recheck_at: float | None = None,
    ) -> bool:
        """Remember a release; True if it was not known before (a known one is left as is).

        ``files``: the sha256 of the files it was queued with, ``recheck_at``: when to
        look for files uploaded later (``master.feed.late``); both None for a release
        that was not queued (filtered, given up on).
        """
        listed = None if files is None else json.dumps(sorted(files))

        def tx(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT OR IGNORE INTO releases"
                " (project, version, source, first_seen, files, recheck_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (project, version, source, time.time(), listed, recheck_at),
            )
            return cur.rowcount == 1

        return await self._db.write(tx)

    async def record_recheck(
        self, project: str, version: str, files: frozenset[str], recheck_at: float | None
    ) -> None:
        """A re-check of a tracked release is done: add ``files``, look again at ``recheck_at``.

        The file set only grows; ``recheck_at`` None ends the re-checks; ``rechecks`` + 1.
        A release that is not tracked (never queued by the feed) is left alone.
        """

        def tx(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT files FROM releases"
                " WHERE project = ? AND version = ? AND files IS NOT NULL",
                (project, version),
            ).fetchone()
            if row is None:
                return
            known = _digests(row[0]) | files
            conn.execute(
                "UPDATE releases SET files = ?, recheck_at = ?, rechecks = rechecks + 1"
                " WHERE project = ? AND version = ?",
                (json.dumps(sorted(known)), recheck_at, project, version),
            )

        await self._db.write(tx)

    async def due_rechecks(self, now: float, limit: int) -> list[TrackedRelease]:
        """Up to ``limit`` tracked releases whose re-check is due, the longest overdue first."""
        rows = await self._db.fetchall(
            "SELECT project, version, files, first_seen, rechecks FROM releases"
            " WHERE recheck_at IS NOT NULL AND recheck_at <= ? ORDER BY recheck_at LIMIT ?",
            (now, max(0, limit)),
        )
        return [
            TrackedRelease(r["project"], r["version"], _digests(r["files"]), r["first_seen"], r[4])
            for r in rows
        ]

    async def tracked(self, project: str, version: str) -> TrackedRelease | None:
        """The tracked state of one seen release (None if unseen or never queued by the feed)."""
        row = await self._db.fetchone(
            "SELECT project, version, files, first_seen, rechecks FROM releases"
            " WHERE project = ? AND version = ? AND files IS NOT NULL",
            (project, version),
        )
        if row is None:
            return None
        return TrackedRelease(row[0], row[1], _digests(row[2]), row[3], row[4])
