"""One SQLite database: a serialised writer connection and a reader connection.

All writes go through ``Database.write``: one transaction (``BEGIN IMMEDIATE``)
at a time, in the order callers arrive, on one connection. Reads use a second
connection, so they see only committed data (WAL snapshots) and never wait for
a writer. ``durable=True`` commits with ``synchronous=FULL`` (the WAL is synced
before the commit returns): use it when the commit is about to be acknowledged
to a peer. Everything else commits with ``NORMAL``, which in WAL mode survives a
process kill but may lose the last commits on a power cut.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from master.jobs import StoreError
from master.store.schema import MIGRATIONS

T = TypeVar("T")
Writer = Callable[[aiosqlite.Connection], Awaitable[T]]


class SchemaTooNew(StoreError):
    """The database was written by a newer pyti."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(f"database schema version {found} is newer than this pyti's ({known})")
        self.found = found
        self.known = known


async def _connect(path: Path) -> aiosqlite.Connection:
    try:
        conn = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from exc
    conn.row_factory = sqlite3.Row
    await conn.execute("PRAGMA busy_timeout = 5000")
    return conn


async def migrate(conn: aiosqlite.Connection, target: int | None = None) -> int:
    """Apply forward migrations up to ``target`` (default: the newest); the version reached."""
    goal = len(MIGRATIONS) if target is None else target
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0
    if version > len(MIGRATIONS):
        raise SchemaTooNew(version, len(MIGRATIONS))
    while version < goal:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version]:
                await conn.execute(statement)
            # PRAGMA user_version lives in the header page: it commits with the rest.
            await conn.execute(f"PRAGMA user_version = {version + 1}")
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        version += 1
    return version


class Database:
    """The writer and reader connections of one database file."""

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection):
        self.path = path
        self._writer = writer
        self._reader = reader
        self._lock = asyncio.Lock()
        self._inflight: set[asyncio.Task[Any]] = set()
        self._closed = False

    @classmethod
    async def open(cls, path: Path) -> Database:
        """Open (creating it if needed), switch to WAL, migrate. Raises ``StoreError``."""
        writer = await _connect(path)
        try:
            async with writer.execute("PRAGMA journal_mode = WAL") as cur:
                row = await cur.fetchone()
            if row is None or str(row[0]).lower() != "wal":
                raise StoreError(f"{path}: the database refused WAL mode")
            await writer.execute("PRAGMA synchronous = NORMAL")
            await migrate(writer)
            reader = await _connect(path)
        except sqlite3.Error as exc:
            await writer.close()
            raise StoreError(f"cannot use database {path}: {exc}") from exc
        except BaseException:
            await writer.close()
            raise
        return cls(path, writer, reader)

    async def write(self, fn: Writer[T], *, durable: bool = False) -> T:
        """Run ``fn(conn)`` in one ``BEGIN IMMEDIATE`` transaction; its result.

        Atomic: if ``fn`` raises, everything it did is rolled back and the error
        re-raised (sqlite errors as ``StoreError``). Cancelling the caller does
        not cancel the transaction: it completes (commit or rollback) in the
        background, so a cancelled write either happened entirely or not at all.
        """
        if self._closed:
            raise StoreError("the store is closed")
        task = asyncio.ensure_future(self._run(fn, durable))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return await asyncio.shield(task)

    async def _run(self, fn: Writer[T], durable: bool) -> T:
        async with self._lock:
            conn = self._writer
            if durable:
                await conn.execute("PRAGMA synchronous = FULL")
            try:
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    result = await fn(conn)
                    await conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        await conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"database error: {exc}") from exc
            finally:
                if durable:
                    await conn.execute("PRAGMA synchronous = NORMAL")
            return result

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Rows of a read-only query against the last committed state."""
        try:
            rows = await self._reader.execute_fetchall(sql, tuple(params))
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}") from exc
        return list(rows)

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def close(self) -> None:
        """Let in-flight writes finish, then close both connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        await self._reader.close()
        await self._writer.close()
