"""What the feed watcher remembers: where it is in each feed, and the releases it has seen."""

from __future__ import annotations

import sqlite3
import time

from master.jobs import FeedState
from master.store.db import Database


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
