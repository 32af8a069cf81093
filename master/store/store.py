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
    FINAL_STATES,
    Attempt,
    EventsStored,
    FinishDisposition,
    Job,
    JobNotFound,
    JobRequest,
    JobState,
    StaleLease,
    SubmitResult,
    check_transition,
)
from master.store.db import Database, query
from master.store.events import EventWriter
from master.store.records import RecordTables, insert_callback
from master.store.rows import attempt_from_row, dumps, job_from_row
from protocol.events import Event
from protocol.messages import JobResult


def _job(conn: sqlite3.Connection, job_id: int) -> Job:
    with query(conn, "SELECT * FROM jobs WHERE id = ?", (job_id,)) as cur:
        row = cur.fetchone()
    if row is None:
        raise JobNotFound(job_id)
    return job_from_row(row)


def _update(conn: sqlite3.Connection, job_id: int, **values: Any) -> Job:
    cols = ", ".join(f"{k} = ?" for k in values)
    with query(
        conn,
        f"UPDATE jobs SET {cols} WHERE id = ? RETURNING *",  # noqa: S608  # keys are ours
        (*values.values(), job_id),
    ) as cur:
        row = cur.fetchone()
    assert row is not None
    return job_from_row(row)


def _end_attempt(
    conn: sqlite3.Connection,
    job_id: int,
    lease: int,
    status: str,
    reason: str | None,
    result: JobResult | None = None,
) -> None:
    now = time.time()
    if result is None:
        conn.execute(
            "UPDATE attempts SET status = ?, reason = ?, ended_at = ?"
            " WHERE job_id = ? AND lease = ?",
            (status, reason, now, job_id, lease),
        )
        return
    conn.execute(
        "UPDATE attempts SET status = ?, reason = ?, ended_at = ?, outcome = ?, isolation = ?,"
        " phases = ?, summary = ? WHERE job_id = ? AND lease = ?",
        (
            status,
            reason,
            now,
            result.outcome,
            result.isolation,
            dumps(result.phases),
            dumps(result.summary),
            job_id,
            lease,
        ),
    )


def _check_lease(job: Job, lease: int) -> None:
    # A queued job has no holder: whatever lease a peer presents is stale.
    if job.lease != lease or job.state is JobState.QUEUED:
        raise StaleLease(job.id, lease, job.lease)


class Store(RecordTables):
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

    async def list_jobs(
        self,
        *,
        project: str | None = None,
        state: str | None = None,
        outcome: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[Job]:
        """Newest first; ``before_id`` pages back."""
        where: list[str] = []
        params: list[Any] = []
        for col, val in (("project", project), ("state", state), ("outcome", outcome)):
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

        A cancelled job does not count as existing; ``rerun=True`` always queues.
        """

        def tx(conn: sqlite3.Connection) -> SubmitResult:
            if not req.rerun:
                with query(
                    conn,
                    "SELECT * FROM jobs WHERE project = ? AND version = ? AND image = ?"
                    " AND state != 'cancelled' ORDER BY id DESC LIMIT 1",
                    (req.project, req.version, req.image),
                ) as cur:
                    row = cur.fetchone()
                if row is not None:
                    return SubmitResult(job_from_row(row), created=False)
            with query(
                conn,
                "INSERT INTO jobs (project, version, image, files, priority, source, callback_url,"
                " created_at, timeouts, options) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
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
            job = _job(conn, job_id)
            _check_lease(job, lease)
            if job.state is JobState.RUNNING:
                return job
            check_transition(job_id, job.state, JobState.RUNNING)
            now = time.time()
            conn.execute(
                "UPDATE attempts SET status = 'running', started_at = ?"
                " WHERE job_id = ? AND lease = ?",
                (now, job_id, lease),
            )
            return _update(conn, job_id, state=JobState.RUNNING.value, started_at=now)

        # Nothing is acknowledged to the slave for an accept: a normal commit will do.
        return await self._db.write(tx)

    async def release(self, job_id: int, lease: int, reason: str, *, lost: bool = False) -> Job:
        """An offer that was not taken (refused, or its slave vanished before accepting).

        ``assigned → queued`` with the attempt number unchanged; ``lost=True``
        counts towards quarantine like a slave lost mid-job. Raises ``StaleLease``,
        ``InvalidTransition`` (not assigned any more).
        """

        def tx(conn: sqlite3.Connection) -> Job:
            job = _job(conn, job_id)
            _check_lease(job, lease)
            if job.state is not JobState.ASSIGNED:
                check_transition(job_id, job.state, JobState.ASSIGNED)  # raises
            _end_attempt(conn, job_id, lease, "lost" if lost else "refused", reason)
            if lost:
                return self._lost(conn, job, reason, count_attempt=False)
            return _update(
                conn,
                job_id,
                state=JobState.QUEUED.value,
                slave=None,
                assigned_at=None,
                lease=job.lease + 1,
            )

        return await self._db.write(tx)

    async def requeue(self, job_id: int, lease: int, reason: str, *, infra: bool) -> Job:
        """Put a claimed job back in the queue with ``attempt + 1``.

        ``infra=True``: the slave was lost (disconnect, missed heartbeats); after
        ``quarantine_after`` consecutive losses the job is quarantined instead
        (finished, outcome ``infra_error``, ``quarantined``). ``infra=False``: not
        the job's fault (shutdown, reconciliation). Raises ``StaleLease``,
        ``InvalidTransition``.
        """

        def tx(conn: sqlite3.Connection) -> Job:
            job = _job(conn, job_id)
            _check_lease(job, lease)
            check_transition(job_id, job.state, JobState.QUEUED)
            if infra:
                _end_attempt(conn, job_id, lease, "lost", reason)
                return self._lost(conn, job, reason, count_attempt=True)
            _end_attempt(conn, job_id, lease, "dropped", reason)
            return _requeued(conn, job)

        return await self._db.write(tx)

    def _lost(self, conn: sqlite3.Connection, job: Job, reason: str, *, count_attempt: bool) -> Job:
        losses = job.slave_losses + 1
        if losses >= self.quarantine_after:
            if job.state is JobState.ASSIGNED:
                check_transition(job.id, job.state, JobState.RUNNING)
            check_transition(job.id, JobState.RUNNING, JobState.FINISHED)
            conn.execute(
                "UPDATE attempts SET status = 'quarantined' WHERE job_id = ? AND lease = ?",
                (job.id, job.lease),
            )
            now = time.time()
            ended = _update(
                conn,
                job.id,
                state=JobState.FINISHED.value,
                outcome="infra_error",
                quarantined=1,
                slave_losses=losses,
                finished_at=now,
                error=f"quarantined: lost its slave {losses} times in a row (last: {reason})",
            )
            insert_callback(conn, ended, now)
            return ended
        if count_attempt:
            return _requeued(conn, job, slave_losses=losses)
        return _update(
            conn,
            job.id,
            state=JobState.QUEUED.value,
            slave=None,
            assigned_at=None,
            lease=job.lease + 1,
            slave_losses=losses,
        )

    async def finish(self, job_id: int, lease: int, result: JobResult) -> FinishDisposition:
        """Record a slave's result; idempotent.

        ``STORED``: the job is finished. ``DUPLICATE``: it already was final
        (a re-sent result changes nothing). ``STALE``: the lease is an older
        attempt's; the result goes to that attempt's history only. ``REQUEUED``:
        an ``infra_error`` with retries left, or an aborted (``cancelled``)
        result for a job nobody cancelled: queued again with ``attempt + 1``.
        Raises ``JobNotFound``.
        """

        def tx(conn: sqlite3.Connection) -> FinishDisposition:
            job = _job(conn, job_id)
            if job.lease != lease or job.state is JobState.QUEUED:
                conn.execute(
                    "UPDATE attempts SET status = 'stale_result', outcome = ?, isolation = ?,"
                    " phases = ?, summary = ?, ended_at = COALESCE(ended_at, ?)"
                    " WHERE job_id = ? AND lease = ? AND outcome IS NULL",
                    (
                        result.outcome,
                        result.isolation,
                        dumps(result.phases),
                        dumps(result.summary),
                        time.time(),
                        job_id,
                        lease,
                    ),
                )
                return FinishDisposition.STALE
            if job.state in FINAL_STATES:
                # The attempt that ended the job may still owe its details (a cancelled run).
                conn.execute(
                    "UPDATE attempts SET outcome = ?, isolation = ?, phases = ?, summary = ?"
                    " WHERE job_id = ? AND lease = ? AND outcome IS NULL",
                    (
                        result.outcome,
                        result.isolation,
                        dumps(result.phases),
                        dumps(result.summary),
                        job_id,
                        lease,
                    ),
                )
                return FinishDisposition.DUPLICATE
            if result.outcome == "cancelled":
                _end_attempt(conn, job_id, lease, "dropped", "aborted by the slave", result)
                _requeued(conn, job)
                return FinishDisposition.REQUEUED
            if result.outcome == "infra_error" and job.infra_retries < self.retry_limit:
                _end_attempt(conn, job_id, lease, "retried", "infra_error", result)
                _requeued(conn, job, infra_retries=job.infra_retries + 1, slave_losses=0)
                return FinishDisposition.REQUEUED
            if job.state is JobState.ASSIGNED:
                check_transition(job_id, job.state, JobState.RUNNING)
            check_transition(job_id, JobState.RUNNING, JobState.FINISHED)
            _end_attempt(conn, job_id, lease, "finished", None, result)
            now = time.time()
            findings = result.summary.get("findings", [])
            ended = _update(
                conn,
                job_id,
                state=JobState.FINISHED.value,
                outcome=result.outcome,
                phases=dumps(result.phases),
                summary=dumps(result.summary),
                findings=dumps(findings if isinstance(findings, list | tuple) else [findings]),
                isolation=result.isolation,
                finished_at=now,
                slave_losses=0,
                started_at=job.started_at or now,
                error=str(result.summary["error"])[:2000] if "error" in result.summary else None,
            )
            insert_callback(conn, ended, now)
            return FinishDisposition.STORED

        return await self._db.write(tx, durable=True)

    async def cancel(self, job_id: int, reason: str) -> Job:
        """Cancel a live job. The returned job keeps its ``slave`` and ``lease``, so the
        caller can tell that slave. Raises ``JobNotFound``, ``InvalidTransition`` (final)."""

        def tx(conn: sqlite3.Connection) -> Job:
            job = _job(conn, job_id)
            check_transition(job_id, job.state, JobState.CANCELLED)
            if job.state is not JobState.QUEUED:
                _end_attempt(conn, job_id, job.lease, "cancelled", reason)
            now = time.time()
            ended = _update(
                conn,
                job_id,
                state=JobState.CANCELLED.value,
                outcome="cancelled",
                error=reason[:2000],
                finished_at=now,
            )
            insert_callback(conn, ended, now)
            return ended

        return await self._db.write(tx, durable=True)

    async def retry(self, job_id: int) -> Job:
        """Queue a finished or cancelled job again (attempt + 1, result cleared).

        Raises ``JobNotFound``, ``InvalidTransition`` (still live)."""

        def tx(conn: sqlite3.Connection) -> Job:
            job = _job(conn, job_id)
            check_transition(job_id, job.state, JobState.QUEUED)
            return _requeued(
                conn,
                job,
                outcome=None,
                phases="{}",
                summary="{}",
                findings="[]",
                isolation=None,
                error=None,
                finished_at=None,
                quarantined=0,
                slave_losses=0,
                infra_retries=0,
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


def _requeued(conn: sqlite3.Connection, job: Job, **extra: Any) -> Job:
    return _update(
        conn,
        job.id,
        state=JobState.QUEUED.value,
        slave=None,
        assigned_at=None,
        started_at=None,
        attempt=job.attempt + 1,
        lease=job.lease + 1,
        **extra,
    )
