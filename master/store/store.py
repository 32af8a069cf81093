"""``Store``: the master's system of record, one SQLite database in composed parts.

``Store.open`` opens the database (``master.store.db``: one writer thread with
group commit, an aiosqlite reader, migrations) and hands it to each part; each
part owns its tables:

- ``store.jobs`` (``master.store.jobs``): jobs and attempts, moved by the one
  state machine (``master.store.transitions``);
- ``store.events`` (``master.store.events``): a job's event stream (group-committed);
- ``store.callbacks`` (``master.store.callbacks``): pending completion webhooks;
- ``store.feed`` (``master.store.feed``): feed cursors and seen releases;
- ``store.slaves`` (``master.store.slaves``): slaves that ever connected;
- ``store.history`` (``master.store.history``): a project's tested releases (read-only);
- ``store.fleet`` (``master.store.fleet``): the fleet's figures per hour (read-only).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from master.store.callbacks import CallbackStore
from master.store.db import Database
from master.store.events import EventStore
from master.store.feed import FeedStore
from master.store.fleet import FleetStore
from master.store.history import HistoryStore
from master.store.jobs import JobStore
from master.store.slaves import SlaveStore


class Store:
    """Open with ``await Store.open(path)``; ``await store.close()`` always."""

    def __init__(self, db: Database, *, retry_limit: int, quarantine_after: int) -> None:
        self._db = db
        self.jobs = JobStore(db, retry_limit=retry_limit, quarantine_after=quarantine_after)
        self.events = EventStore(db)
        self.callbacks = CallbackStore(db)
        self.feed = FeedStore(db)
        self.slaves = SlaveStore(db)
        self.history = HistoryStore(db)
        self.fleet = FleetStore(db)

    @classmethod
    async def open(cls, path: Path, *, retry_limit: int = 2, quarantine_after: int = 3) -> Store:
        """Open or create the database and migrate it. Raises ``StoreError``.

        ``retry_limit``: infra_error results re-queued before one is final.
        ``quarantine_after``: consecutive lost slaves after which a job is quarantined.
        """
        store = cls(
            await Database.open(path), retry_limit=retry_limit, quarantine_after=quarantine_after
        )
        store.events.start()
        return store

    @property
    def path(self) -> Path:
        return self._db.path

    async def close(self) -> None:
        """Store queued event batches, finish in-flight writes, close (idempotent)."""
        await self.events.close()
        await self._db.close()

    async def integrity_ok(self) -> bool:
        """SQLite's own quick check (for tests and ``/healthz``)."""
        try:
            row = await self._db.fetchone("PRAGMA quick_check")
        except sqlite3.Error:
            return False
        return row is not None and row[0] == "ok"
