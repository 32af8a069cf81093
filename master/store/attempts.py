"""The attempt history: one row of ``attempts`` per claim (lease) of a job.

Written by the state machine (``master.store.transitions``) in the same
transaction as the job's own change, so the history never disagrees with the job.
Statuses: ``assigned``, ``running``, ``finished``, ``refused``, ``lost``,
``retried``, ``quarantined``, ``cancelled``, ``dropped``, ``stale_result``
(``master.jobs.Attempt``).
"""

from __future__ import annotations

import sqlite3
import time

from master.store.rows import dumps
from protocol.messages import JobResult
from protocol.results import phases_to_json


def open_attempt(
    conn: sqlite3.Connection, job_id: int, lease: int, attempt: int, slave: str, now: float
) -> None:
    """A claim: the attempt starts ``assigned``."""
    conn.execute(
        "INSERT INTO attempts (job_id, lease, attempt, slave, status, assigned_at)"
        " VALUES (?, ?, ?, ?, 'assigned', ?)",
        (job_id, lease, attempt, slave, now),
    )


def set_status(conn: sqlite3.Connection, job_id: int, lease: int, status: str) -> None:
    conn.execute(
        "UPDATE attempts SET status = ? WHERE job_id = ? AND lease = ?", (status, job_id, lease)
    )


def start_attempt(conn: sqlite3.Connection, job_id: int, lease: int, now: float) -> None:
    conn.execute(
        "UPDATE attempts SET status = 'running', started_at = ? WHERE job_id = ? AND lease = ?",
        (now, job_id, lease),
    )


def end_attempt(
    conn: sqlite3.Connection,
    job_id: int,
    lease: int,
    status: str,
    reason: str | None,
    result: JobResult | None = None,
) -> None:
    """The attempt ended with ``status`` (and the slave's result, if it sent one)."""
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
            dumps(phases_to_json(result.phases)),
            dumps(result.summary.to_json()),
            job_id,
            lease,
        ),
    )


def holder(conn: sqlite3.Connection, job_id: int, lease: int) -> str | None:
    """The slave that was given this lease of the job, or None if no claim had it."""
    row = conn.execute(
        "SELECT slave FROM attempts WHERE job_id = ? AND lease = ?", (job_id, lease)
    ).fetchone()
    return None if row is None else str(row[0])


def stale_result(conn: sqlite3.Connection, job_id: int, lease: int, result: JobResult) -> None:
    """A result for an attempt the job has moved past: kept in that attempt's history only."""
    conn.execute(
        "UPDATE attempts SET status = 'stale_result', outcome = ?, isolation = ?,"
        " phases = ?, summary = ?, ended_at = COALESCE(ended_at, ?)"
        " WHERE job_id = ? AND lease = ? AND outcome IS NULL",
        (
            result.outcome,
            result.isolation,
            dumps(phases_to_json(result.phases)),
            dumps(result.summary.to_json()),
            time.time(),
            job_id,
            lease,
        ),
    )


def late_details(conn: sqlite3.Connection, job_id: int, lease: int, result: JobResult) -> None:
    """The attempt that ended the job may still owe its details (a cancelled run)."""
    conn.execute(
        "UPDATE attempts SET outcome = ?, isolation = ?, phases = ?, summary = ?"
        " WHERE job_id = ? AND lease = ? AND outcome IS NULL",
        (
            result.outcome,
            result.isolation,
            dumps(phases_to_json(result.phases)),
            dumps(result.summary.to_json()),
            job_id,
            lease,
        ),
    )
