"""``store.events``: a job's event stream, stored with group commit.

Many slaves' batches, one transaction, one sync. Each ``EventWriter.submit``
puts a batch on a bounded queue (``QUEUE_LIMIT`` batches; the caller waits for
room, so a flood pushes back on the slaves' connections) and awaits its own
future. The writer task takes everything queued (up to ``GROUP_EVENTS`` events)
and stores it in one durable transaction, then answers each batch: the job's
ack watermark and the rows new to the store, or ``StaleLease``. Batches of one
job are applied in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from master.jobs import EventRow, EventsStored
from master.store.db import Database, query
from master.store.errors import StaleLease, StoreError
from master.store.rows import MAX_NAME_CHARS, capped_fields, event_from_row
from protocol.events import Event
from pyti.tasks import cancel_and_wait

QUEUE_LIMIT = 1024
#: Jobs whose events one ``prune`` transaction deletes.
PRUNE_JOBS = 50
GROUP_EVENTS = 20_000
_WALK = 512


class EventStore:
    """Events of jobs (table ``events``): stored once each, fenced by the job's lease.

    ``start()`` once (the group-commit task), ``close()`` always.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._writer = EventWriter(db)

    def start(self) -> None:
        self._writer.start()

    async def close(self) -> None:
        """Store what is queued, then stop the group-commit task."""
        await self._writer.close()

    async def save(self, job_id: int, lease: int, events: Sequence[Event]) -> EventsStored:
        """Store a batch of events once each (group-committed, durable).

        Returns the ack watermark (every seq ≤ it is stored) and the rows that
        were new. Raises ``StaleLease`` (nothing stored) unless ``lease`` is the
        job's current claim; cancelled callers: see ``EventWriter.submit``.
        """
        return await self._writer.submit(job_id, lease, events)

    async def add(self, job_id: int, lease: int, events: Sequence[Event]) -> int:
        """``save`` returning only the ack watermark."""
        return (await self.save(job_id, lease, events)).acked

    async def read(self, job_id: int, *, after: int = 0, limit: int = 1000) -> list[EventRow]:
        """Stored events of a job with ``seq > after``, in order, at most ``limit``."""
        rows = await self._db.fetchall(
            "SELECT * FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (job_id, after, max(0, limit)),
        )
        return [event_from_row(r) for r in rows]

    async def prune(self, finished_before: float, *, jobs: int = PRUNE_JOBS) -> int:
        """Delete the events of up to ``jobs`` jobs that ended (finished or cancelled)
        before ``finished_before``; the number of events deleted.

        The jobs' rows (outcome, phases, summary, findings) stay. One bounded
        transaction per call, so the writer is never held for long: call again
        while it returns more than 0. A job still queued or running is never touched.
        """

        def delete(conn: sqlite3.Connection) -> int:
            with query(
                conn,
                "SELECT id FROM jobs WHERE state IN ('finished', 'cancelled')"
                " AND finished_at IS NOT NULL AND finished_at < ?"
                " AND EXISTS (SELECT 1 FROM events WHERE events.job_id = jobs.id) LIMIT ?",
                (finished_before, jobs),
            ) as cur:
                ids = [int(row[0]) for row in cur.fetchall()]
            deleted = 0
            for job_id in ids:
                with query(conn, "DELETE FROM events WHERE job_id = ?", (job_id,)) as cur:
                    deleted += cur.rowcount
            return deleted

        return await self._db.write(delete)

    async def max_seq(self, job_id: int) -> int:
        """The highest stored event seq of a job (0 if none)."""
        row = await self._db.fetchone(
            "SELECT COALESCE(MAX(seq), 0) FROM events WHERE job_id = ?", (job_id,)
        )
        return int(row[0]) if row else 0


@dataclass
class _Batch:
    job_id: int
    lease: int
    events: Sequence[Event]
    future: asyncio.Future[EventsStored]


class EventWriter:
    """Owns the group-commit task. ``start()`` once, ``close()`` always."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: asyncio.Queue[_Batch] = asyncio.Queue(QUEUE_LIMIT)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="store-event-writer")

    async def submit(self, job_id: int, lease: int, events: Sequence[Event]) -> EventsStored:
        """Store a batch durably; returns once it is committed.

        Raises ``StaleLease`` (nothing stored) when ``lease`` is not the job's
        current lease, ``StoreError`` on a database failure. If the caller is
        cancelled the batch may still be stored (never partly): storing is
        idempotent, and the peer re-sends what was not acknowledged.
        """
        if self._task is None or self._task.done():
            raise StoreError("the event writer is not running")
        fut: asyncio.Future[EventsStored] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Batch(job_id, lease, events, fut))
        return await fut

    async def close(self) -> None:
        """Store what is queued, then stop the task.

        Batches still queued fail with ``StoreError``. If the task had failed on
        its own, that error is raised once everything is closed.
        """
        if self._task is None:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(10.0):
                await self._queue.join()
        errors = await cancel_and_wait(self._task)
        while not self._queue.empty():
            batch = self._queue.get_nowait()
            if not batch.future.done():
                batch.future.set_exception(StoreError("the store closed"))
        if errors:
            raise errors[0]

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            total = len(group[0].events)
            while total < GROUP_EVENTS and not self._queue.empty():
                batch = self._queue.get_nowait()
                group.append(batch)
                total += len(batch.events)
            results = await self._write(group)
            for batch, result in zip(group, results, strict=True):
                if not batch.future.done():
                    if isinstance(result, BaseException):
                        batch.future.set_exception(result)
                    else:
                        batch.future.set_result(result)
                self._queue.task_done()

    async def _write(self, group: list[_Batch]) -> list[EventsStored | BaseException]:
        def tx(conn: sqlite3.Connection) -> list[EventsStored | BaseException]:
            return _store_group(conn, group)

        try:
            return await self._db.write(tx, durable=True)
        except StoreError as exc:
            return [exc] * len(group)


def _store_group(
    conn: sqlite3.Connection, group: list[_Batch]
) -> list[EventsStored | BaseException]:
    out: list[EventsStored | BaseException] = []
    for batch in group:
        try:
            out.append(_store_batch(conn, batch.job_id, batch.lease, batch.events))
        except StaleLease as exc:
            out.append(exc)
    return out


def _store_batch(
    conn: sqlite3.Connection, job_id: int, lease: int, events: Sequence[Event]
) -> EventsStored:
    with query(conn, "SELECT lease, event_seq FROM jobs WHERE id = ?", (job_id,)) as cur:
        row = cur.fetchone()
    if row is None or row[0] != lease:
        raise StaleLease(job_id, lease, None if row is None else row[0])
    acked = int(row[1])
    new: dict[int, EventRow] = {}
    valid = [e for e in events if e.seq >= 1]
    if valid:
        lo = min(e.seq for e in valid)
        hi = max(e.seq for e in valid)
        with query(
            conn,
            "SELECT seq FROM events WHERE job_id = ? AND seq BETWEEN ? AND ?",
            (job_id, lo, hi),
        ) as cur:
            existing = {r[0] for r in cur.fetchall()}
        for e in valid:
            if e.seq not in existing and e.seq not in new:
                new[e.seq] = EventRow(
                    job_id,
                    e.seq,
                    float(e.ts),
                    e.level,
                    e.event[:MAX_NAME_CHARS],
                    None if e.phase is None else e.phase[:MAX_NAME_CHARS],
                    e.fields,
                )
        if new:
            conn.executemany(
                "INSERT OR IGNORE INTO events (job_id, seq, ts, level, event, phase, fields)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (r.job_id, r.seq, r.ts, r.level, r.event, r.phase, capped_fields(r.fields))
                    for r in new.values()
                ],
            )
    # The watermark: the highest seq with every seq up to it stored.
    seqs = sorted(new.keys() | {e.seq for e in valid})
    start = acked
    for s in seqs:
        if s == acked + 1:
            acked = s
        elif s > acked + 1:
            break
    if acked > start or not seqs:
        acked = _walk(conn, job_id, acked)
    if acked > start:
        conn.execute("UPDATE jobs SET event_seq = ? WHERE id = ?", (acked, job_id))
    return EventsStored(acked=acked, new=sorted(new.values(), key=lambda r: r.seq))


def _walk(conn: sqlite3.Connection, job_id: int, acked: int) -> int:
    """Extend the watermark over events stored earlier out of order."""
    while True:
        with query(
            conn,
            "SELECT seq FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (job_id, acked, _WALK),
        ) as cur:
            rows = list(cur.fetchall())
        for r in rows:
            if r[0] != acked + 1:
                return acked
            acked = r[0]
        if len(rows) < _WALK:
            return acked
