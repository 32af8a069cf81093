"""How jobs leave the running state: results, lost slaves, cancels, re-runs.

Mixed into ``Store``. Every method is one transaction on the writer thread,
checked against ``master.jobs.TRANSITIONS``.
"""

from __future__ import annotations

import sqlite3
import time

from master.jobs import (
    FINAL_STATES,
    FinishDisposition,
    Job,
    JobState,
    check_transition,
)
from master.store.comparisons import record_comparison
from master.store.db import Database
from master.store.ops import check_lease, end_attempt, load_job, requeued, update_job
from master.store.records import insert_callback
from master.store.rows import dumps
from master.store.schema import project_key
from protocol.messages import JobResult


class EndingOps:
    """Job endings; needs ``_db``, ``retry_limit`` and ``quarantine_after``."""

    _db: Database
    retry_limit: int
    quarantine_after: int

    async def requeue(self, job_id: int, lease: int, reason: str, *, infra: bool) -> Job:
        """Put a claimed job back in the queue with ``attempt + 1``.

        ``infra=True``: the slave was lost (disconnect, missed heartbeats); after
        ``quarantine_after`` consecutive losses the job is quarantined instead
        (finished, outcome ``infra_error``, ``quarantined``). ``infra=False``: not
        the job's fault (shutdown, reconciliation). Raises ``StaleLease``,
        ``InvalidTransition``.
        """

        def tx(conn: sqlite3.Connection) -> Job:
            job = load_job(conn, job_id)
            check_lease(job, lease)
            check_transition(job_id, job.state, JobState.QUEUED)
            if infra:
                end_attempt(conn, job_id, lease, "lost", reason)
                return self._lost(conn, job, reason, count_attempt=True)
            end_attempt(conn, job_id, lease, "dropped", reason)
            return requeued(conn, job)

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
            ended = update_job(
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
            return requeued(conn, job, slave_losses=losses)
        return update_job(
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
        A ``STORED`` result is compared with the previous release of the project in
        the same transaction (``master.store.comparisons``; a failing comparison is
        logged and left out, never the result). Raises ``JobNotFound``.
        """

        def tx(conn: sqlite3.Connection) -> FinishDisposition:
            job = load_job(conn, job_id)
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
                end_attempt(conn, job_id, lease, "dropped", "aborted by the slave", result)
                requeued(conn, job)
                return FinishDisposition.REQUEUED
            if result.outcome == "infra_error" and job.infra_retries < self.retry_limit:
                end_attempt(conn, job_id, lease, "retried", "infra_error", result)
                requeued(conn, job, infra_retries=job.infra_retries + 1, slave_losses=0)
                return FinishDisposition.REQUEUED
            if job.state is JobState.ASSIGNED:
                check_transition(job_id, job.state, JobState.RUNNING)
            check_transition(job_id, JobState.RUNNING, JobState.FINISHED)
            end_attempt(conn, job_id, lease, "finished", None, result)
            now = time.time()
            findings = result.summary.get("findings", [])
            ended = update_job(
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
            record_comparison(conn, ended, project_key(ended.project))
            insert_callback(conn, ended, now)
            return FinishDisposition.STORED

        return await self._db.write(tx, durable=True)

    async def cancel(self, job_id: int, reason: str) -> Job:
        """Cancel a live job. The returned job keeps its ``slave`` and ``lease``, so the
        caller can tell that slave. Raises ``JobNotFound``, ``InvalidTransition`` (final)."""

        def tx(conn: sqlite3.Connection) -> Job:
            job = load_job(conn, job_id)
            check_transition(job_id, job.state, JobState.CANCELLED)
            if job.state is not JobState.QUEUED:
                end_attempt(conn, job_id, job.lease, "cancelled", reason)
            now = time.time()
            ended = update_job(
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
            job = load_job(conn, job_id)
            check_transition(job_id, job.state, JobState.QUEUED)
            return requeued(
                conn,
                job,
                outcome=None,
                phases="{}",
                summary="{}",
                findings="[]",
                profile=None,
                comparison=None,
                isolation=None,
                error=None,
                finished_at=None,
                quarantined=0,
                slave_losses=0,
                infra_retries=0,
            )

        return await self._db.write(tx)
