"""The slaves that ever connected (table ``slaves``): history, not the live view.

The live view (who is connected now, its slots and jobs) is the registry.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from master.store.db import Database
from master.store.rows import dumps, loads


class SlaveStore:
    """``store.slaves``: one row per slave name."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def seen(self, name: str, address: str, capabilities: dict[str, Any]) -> None:
        """Record a slave that connected."""

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

    async def gone(self, name: str) -> None:
        """The slave disconnected."""

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE slaves SET connected = 0, last_seen = ? WHERE name = ?",
                (time.time(), name),
            )

        await self._db.write(tx)

    async def advertised(self) -> list[dict[str, Any]]:
        """The capabilities every slave last advertised (its images, for ``master.images``)."""
        rows = await self._db.fetchall("SELECT capabilities FROM slaves ORDER BY last_seen")
        docs = [loads(r["capabilities"], {}) for r in rows]
        return [d for d in docs if isinstance(d, dict)]

    async def known(self) -> list[dict[str, Any]]:
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
