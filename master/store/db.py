"""One SQLite database: a group-committing writer thread and an aiosqlite reader.

Writes: every ``Database.write(fn)`` is a plain synchronous function of a
``sqlite3.Connection``; all of them run on one dedicated thread that owns the
writer connection, in the order callers arrive. The writer takes every write
waiting (up to ``MAX_GROUP``) into one ``BEGIN IMMEDIATE`` transaction, each in
its own ``SAVEPOINT`` (one failing write rolls back only itself), and commits
once, all in a single hop to the thread: many slaves' results and acks share
one transaction and one sync of the WAL, and no transaction pays a thread round
trip per statement. A caller's result is delivered only after the commit.

Reads go through aiosqlite on a second connection: they see only committed data
(WAL snapshots) and never wait for the writer.

``durable=True`` makes the group commit with ``synchronous=FULL`` (the WAL is
synced before the commit returns): use it when the commit is about to be
acknowledged to a peer. Everything else commits with ``NORMAL``, which in WAL
mode survives a process kill but may lose the last commits on a power cut.

The write queue is not bounded by itself: every entry is a caller awaiting its
result, so it is bounded by the number of concurrent callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from master.store.errors import SchemaTooNew, StoreError
from master.store.schema import MIGRATIONS, project_key
from pyti.tasks import cancel_and_wait

T = TypeVar("T")
Writer = Callable[[sqlite3.Connection], T]
MAX_GROUP = 256
CHECKPOINT_INTERVAL = 1.0


@contextlib.contextmanager
def query(
    conn: sqlite3.Connection, sql: str, params: Iterable[Any] = ()
) -> Iterator[sqlite3.Cursor]:
    """A cursor over one statement, closed after use."""
    cur = conn.execute(sql, tuple(params))
    try:
        yield cur
    finally:
        cur.close()


def migrate(conn: sqlite3.Connection, target: int | None = None) -> int:
    """Apply forward migrations up to ``target`` (default: the newest); the version reached.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Registers the
    SQL functions the migrations use (``pyti_project_key``) on ``conn``.
    """
    conn.create_function("pyti_project_key", 1, project_key, deterministic=True)
    goal = len(MIGRATIONS) if target is None else target
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise SchemaTooNew(version, len(MIGRATIONS))
    while version < goal:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            # PRAGMA user_version lives in the header page: it commits with the rest.
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version += 1
    return version


def _open_writer(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 5000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise StoreError(f"{path}: the database refused WAL mode")
        conn.execute("PRAGMA synchronous = NORMAL")
        # Checkpoints run on their own connection and thread (``Database._checkpoints``),
        # never inside a commit a peer is waiting for.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _open_checkpointer(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def _checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _checkpoint_and_close(conn: sqlite3.Connection) -> None:
    try:
        _checkpoint(conn)
    except sqlite3.Error:
        pass
    finally:
        conn.close()


@dataclass(eq=False)
class _Write:
    fn: Writer[Any]
    durable: bool
    future: asyncio.Future[Any]


@dataclass(frozen=True)
class _Failed:
    """One write of a group raised; the others committed."""

    error: BaseException


class Database:
    """The writer thread and the reader connection of one database file."""

    def __init__(
        self,
        path: Path,
        executor: ThreadPoolExecutor,
        writer: sqlite3.Connection,
        reader: aiosqlite.Connection,
    ) -> None:
        self.path = path
        self._executor = executor
        self._writer = writer
        self._reader = reader
        self._queue: asyncio.Queue[_Write] = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="store-writer")
        self._checkpointer = asyncio.create_task(self._checkpoints(), name="store-checkpoint")
        self._full = False  # synchronous mode of the writer connection (writer thread only)
        self._closed = False
        self.commits = 0  # group transactions committed (for tests and benchmarks)

    @classmethod
    async def open(cls, path: Path) -> Database:
        """Open (creating it if needed), switch to WAL, migrate. Raises ``StoreError``."""
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyti-store")
        try:
            writer = await loop.run_in_executor(executor, _open_writer, path)
        except sqlite3.Error as exc:
            executor.shutdown(wait=False)
            raise StoreError(f"cannot use database {path}: {exc}") from exc
        except BaseException:
            executor.shutdown(wait=False)
            raise
        try:
            reader = await aiosqlite.connect(path, isolation_level=None)
            reader.row_factory = sqlite3.Row
            await reader.execute("PRAGMA busy_timeout = 5000")
        except sqlite3.Error as exc:
            await loop.run_in_executor(executor, writer.close)
            executor.shutdown(wait=False)
            raise StoreError(f"cannot open database {path}: {exc}") from exc
        return cls(path, executor, writer, reader)

    async def write(self, fn: Writer[T], *, durable: bool = False) -> T:
        """Run ``fn(conn)`` atomically inside the next group transaction; its result.

        ``fn`` runs on the writer thread: plain ``sqlite3`` calls, no awaiting.
        Atomic: if ``fn`` raises, everything it did is rolled back and the error
        re-raised (sqlite errors as ``StoreError``); other writes of the group
        are unaffected. The result is returned only after the commit. Cancelling
        the caller does not cancel the write: it completes (or rolls back) with
        its group, so a cancelled write happened entirely or not at all.
        """
        if self._closed:
            raise StoreError("the store is closed")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Write(fn, durable, fut))
        return await asyncio.shield(fut)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [await self._queue.get()]
            while len(group) < MAX_GROUP and not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                results = await loop.run_in_executor(self._executor, self._commit, group)
            except Exception as exc:  # BEGIN or COMMIT failed: the whole group is lost
                error = StoreError(f"database error: {exc}")
                error.__cause__ = exc
                results = [_Failed(error)] * len(group)
            for w, result in zip(group, results, strict=True):
                if not w.future.done():
                    if isinstance(result, _Failed):
                        w.future.set_exception(result.error)
                    else:
                        w.future.set_result(result)
                self._queue.task_done()

    def _commit(self, group: list[_Write]) -> list[Any]:
        """On the writer thread: one transaction for the whole group."""
        conn = self._writer
        full = any(w.durable for w in group)
        if full != self._full:
            conn.execute(f"PRAGMA synchronous = {'FULL' if full else 'NORMAL'}")
            self._full = full
        results: list[Any] = []
        savepoints = len(group) > 1
        conn.execute("BEGIN IMMEDIATE")
        try:
            for w in group:
                results.append(_one(conn, w, savepoint=savepoints))
            if not savepoints and isinstance(results[0], _Failed):
                conn.execute("ROLLBACK")
                return results
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.commits += 1
        return results

    async def _checkpoints(self) -> None:
        """Copy the WAL into the database every ``CHECKPOINT_INTERVAL`` s (PASSIVE: it never
        blocks the writer or readers), on a connection and thread of its own."""
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyti-ckpt") as executor:
            conn = await loop.run_in_executor(executor, _open_checkpointer, self.path)
            try:
                while True:
                    await asyncio.sleep(CHECKPOINT_INTERVAL)
                    with contextlib.suppress(sqlite3.Error):
                        await loop.run_in_executor(executor, _checkpoint, conn)
            finally:
                await asyncio.shield(loop.run_in_executor(executor, _checkpoint_and_close, conn))

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
        """Let queued writes finish, then close both connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30.0):
                await self._queue.join()
        errors = await cancel_and_wait(self._task, self._checkpointer)
        while not self._queue.empty():
            w = self._queue.get_nowait()
            if not w.future.done():
                w.future.set_exception(StoreError("the store closed"))
        await self._reader.close()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._writer.close)
        self._executor.shutdown(wait=True)
        if errors:
            raise errors[0]  # a task failed on its own: a bug, surfaced once all is closed


def _one(conn: sqlite3.Connection, w: _Write, *, savepoint: bool) -> Any:
    if savepoint:
        conn.execute("SAVEPOINT w")
    try:
        result = w.fn(conn)
    except Exception as exc:
        error: BaseException = exc
        if isinstance(exc, sqlite3.Error):
            error = StoreError(f"database error: {exc}")
            error.__cause__ = exc
        if savepoint:
            conn.execute("ROLLBACK TO w")
            conn.execute("RELEASE w")
        return _Failed(error)  # without a savepoint, the caller rolls back
    if savepoint:
        conn.execute("RELEASE w")
    return result
