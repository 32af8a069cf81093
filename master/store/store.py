"""The job store: the master's system of record.

Every state change is one ``BEGIN IMMEDIATE`` transaction on the single writer
connection (``Database.write``), checked against ``master.jobs.TRANSITIONS``, so
two callers racing for the same job see one win and one ``InvalidTransition`` or
``StaleLease``. Fencing: the lease is bumped on every claim and on every return
to the queue, so only the holder of the current claim can change a job.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from master.jobs import (
    Attempt,
    EventsStored,
    Job,
    JobRequest,
    JobState,
    SubmitResult,
    check_transition,
)
from master.store.comparisons import comparison_of
from master.store.db import Database, query
from master.store.endings import EndingOps
from master.store.events import EventWriter
from master.store.ops import check_lease, end_attempt, load_job, update_job
from master.store.records import RecordTables
from master.store.rows import attempt_from_row, dumps, job_from_row
from master.store.schema import project_key
from protocol.events import Event


class Store(EndingOps, RecordTables):
    """Open with ``await Store.open(path)``; ``await store.close()`` always."""

    def __init__(self, db: Database, *, retry_limit: int, quarantine_after: int) -> None:
        self._db = db
        self._events = EventWriter(db)
        self.retry_limit = retry_limit
        self.quarantine_after = quarantine_after

    @classmethod
    async def open(cls, path: Path, *, retry_limit: int = 2, quarantine_after: int = 3) -> Store:
        """Open or create the database and migrate it. Raises ``StoreError``.

        ``retry_limit``: infra_error results re-queued before one is final.
        ``quarantine_after``: consecutive lost slaves after which a job is quarantined.
        """
        store = cls(
            await Database.open(path), retry_limit=retry_limit, quarantine_after=quarantine_after
        )
        store._events.start()
        return store

    @property
    def path(self) -> Path:
        return self._db.path

    async def close(self) -> None:
        """Store queued event batches, finish in-flight writes, close (idempotent)."""
        await self._events.close()
        await self._db.close()

    # ------------------------------------------------------------- reads ----

    async def get_job(self, job_id: int) -> Job | None:
        row = await self._db.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else job_from_row(row)

    async def get_job_detail(self, job_id: int) -> tuple[Job, dict[str, Any]] | None:
        """A job and its comparison with the previous release, read together (one row).

        The comparison is ``{"behaviour_diff": ..., "quality_trend": ...}``, both None
        until the job's result is stored (``master.store.comparisons``).
        """
        row = await self._db.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else (job_from_row(row), comparison_of(row))

    async def list_jobs(
        self,
        *,
        project: str | None = None,
        state: str | None = None,
        outcome: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[Job]:
        """Newest first; ``before_id`` pages back; ``project`` matches any spelling (PEP 503)."""
        where: list[str] = []
        params: list[Any] = []
        key = None if project is None else project_key(project)
        for col, val in (("project_key", key), ("state", state), ("outcome", outcome)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._db.fetchall(
            f"SELECT * FROM jobs {clause} ORDER BY id DESC LIMIT ?",  # noqa: S608  # our columns
            (*params, max(0, limit)),
        )
        return [job_from_row(r) for r in rows]

    async def live_jobs(self, slave: str | None = None) -> list[Job]:
        """Jobs assigned to or running on a slave (any slave if ``slave`` is None)."""
        sql = "SELECT * FROM jobs WHERE state IN ('assigned', 'running')"
        params: tuple[Any, ...] = ()
        if slave is not None:
            sql += " AND slave = ?"
            params = (slave,)
        return [job_from_row(r) for r in await self._db.fetchall(sql + " ORDER BY id", params)]

    async def attempts(self, job_id: int) -> list[Attempt]:
        rows = await self._db.fetchall(
            "SELECT * FROM attempts WHERE job_id = ? ORDER BY lease", (job_id,)
        )
        return [attempt_from_row(r) for r in rows]

    async def counts(self) -> dict[str, dict[str, int]]:
        """``{"state": {state: n}, "outcome": {outcome: n}}``; every state is present."""
        by_state = {s.value: 0 for s in JobState}
        for r in await self._db.fetchall("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            by_state[r[0]] = r[1]
        by_outcome = {
            r[0]: r[1]
            for r in await self._db.fetchall(
                "SELECT outcome, COUNT(*) FROM jobs WHERE outcome IS NOT NULL GROUP BY outcome"
            )
        }
        return {"state": by_state, "outcome": by_outcome}

    # ------------------------------------------------------------ writes ----

    async def submit_job(self, req: JobRequest) -> SubmitResult:
        """Queue a job, or return the existing one for (project, version, image).

        The project matches any spelling of its name (PEP 503). A cancelled job does
        not count as existing; ``rerun=True`` always queues.
        """
        key = project_key(req.project)

        def tx(conn: sqlite3.Connection) -> SubmitResult:
            if not req.rerun:
                with query(
                    conn,
                    "SELECT * FROM jobs WHERE project_key = ? AND version = ? AND image = ?"
                    " AND state != 'cancelled' ORDER BY id DESC LIMIT 1",
                    (key, req.version, req.image),
                ) as cur:
                    row = cur.fetchone()
                if row is not None:
                    return SubmitResult(job_from_row(row), created=False)
            with query(
                conn,
                "INSERT INTO jobs (project, version, image, files, priority, source, callback_url,"
                " created_at, timeouts, options, project_key)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (
                    req.project,
                    req.version,
                    req.image,
                    dumps(req.files),
                    req.priority,
                    req.source,
                    req.callback_url,
                    time.time(),
                    dumps(req.timeouts),
                    dumps(req.options),
                    key,
                ),
            ) as cur:
                row = cur.fetchone()
            assert row is not None
            return SubmitResult(job_from_row(row), created=True)

        return await self._db.write(tx)

    async def claim_next(self, slave: str, images: Collection[str]) -> Job | None:
        """Atomically take the best queued job for these images: ``assigned``, lease + 1.

        Best: highest priority, then oldest. Returns None when nothing fits.
        ``job.event_seq + 1`` is the offer's ``first_seq``.
        """
        jobs = await self.claim_jobs(slave, images, 1)
        return jobs[0] if jobs else None

    async def claim_jobs(self, slave: str, images: Collection[str], limit: int) -> list[Job]:
        """``claim_next`` up to ``limit`` times in one transaction (best first)."""
        wanted = sorted(set(images))
        if not wanted or limit <= 0:
            return []

        def tx(conn: sqlite3.Connection) -> list[Job]:
            marks = ", ".join("?" * len(wanted))
            with query(
                conn,
                f"SELECT id FROM jobs WHERE state = 'queued' AND image IN ({marks})"  # noqa: S608
                " ORDER BY priority DESC, id LIMIT ?",
                (*wanted, limit),
            ) as cur:
                ids = [int(r[0]) for r in cur.fetchall()]
            now = time.time()
            claimed = []
            for job_id in ids:
                # Events of an abandoned attempt may have gaps: the new attempt's
                # acknowledgements start after the highest stored seq.
                with query(
                    conn,
                    "UPDATE jobs SET state = 'assigned', slave = ?, assigned_at = ?,"
                    " started_at = NULL, lease = lease + 1, event_seq = (SELECT COALESCE("
                    "MAX(seq), 0) FROM events WHERE job_id = ?) WHERE id = ? RETURNING *",
                    (slave, now, job_id, job_id),
                ) as cur:
                    row = cur.fetchone()
                assert row is not None
                job = job_from_row(row)
                conn.execute(
                    "INSERT INTO attempts (job_id, lease, attempt, slave, status, assigned_at)"
                    " VALUES (?, ?, ?, ?, 'assigned', ?)",
                    (job_id, job.lease, job.attempt, slave, now),
                )
                claimed.append(job)
            return claimed

        return await self._db.write(tx)

    async def mark_running(self, job_id: int, lease: int) -> Job:
        """The slave accepted: ``assigned → running`` (idempotent for the same lease).

        Raises ``StaleLease``, ``InvalidTransition`` (e.g. cancelled meanwhile), ``JobNotFound``.
        """

        def tx(conn: sqlite3.Connection) -> Job:
            job = load_job(conn, job_id)
            check_lease(job, lease)
            if job.state is JobState.RUNNING:
                return job
            check_transition(job_id, job.state, JobState.RUNNING)
            now = time.time()
            conn.execute(
                "UPDATE attempts SET status = 'running', started_at = ?"
                " WHERE job_id = ? AND lease = ?",
                (now, job_id, lease),
            )
            return update_job(conn, job_id, state=JobState.RUNNING.value, started_at=now)

        # Nothing is acknowledged to the slave for an accept: a normal commit will do.
        return await self._db.write(tx)

    async def release(self, job_id: int, lease: int, reason: str, *, lost: bool = False) -> Job:
        """An offer that was not taken (refused, or its slave vanished before accepting).

        ``assigned → queued`` with the attempt number unchanged; ``lost=True``
        counts towards quarantine like a slave lost mid-job. Raises ``StaleLease``,
        ``InvalidTransition`` (not assigned any more).
        """

        def tx(conn: sqlite3.Connection) -> Job:
            job = load_job(conn, job_id)
            check_lease(job, lease)
            if job.state is not JobState.ASSIGNED:
                check_transition(job_id, job.state, JobState.ASSIGNED)  # raises
            end_attempt(conn, job_id, lease, "lost" if lost else "refused", reason)
            if lost:
                return self._lost(conn, job, reason, count_attempt=False)
            return update_job(
                conn,
                job_id,
                state=JobState.QUEUED.value,
                slave=None,
                assigned_at=None,
                lease=job.lease + 1,
            )

        return await self._db.write(tx)

    async def store_events(self, job_id: int, lease: int, events: Sequence[Event]) -> EventsStored:
        """Store a batch of events once each (group-committed, durable).

        Returns the ack watermark (every seq ≤ it is stored) and the rows that
        were new. Raises ``StaleLease`` (nothing stored) unless ``lease`` is the
        job's current claim; cancelled callers: see ``EventWriter.submit``.
        """
        return await self._events.submit(job_id, lease, events)

    async def add_events(self, job_id: int, lease: int, events: Sequence[Event]) -> int:
        """``store_events`` returning only the ack watermark."""
        return (await self.store_events(job_id, lease, events)).acked

    async def integrity_ok(self) -> bool:
        """SQLite's own quick check (for tests and ``/healthz``)."""
        try:
            row = await self._db.fetchone("PRAGMA quick_check")
        except sqlite3.Error:
            return False
        return row is not None and row[0] == "ok"
