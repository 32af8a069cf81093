"""Statements shared by the store's write transactions (run on the writer thread)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from master.jobs import Job, JobNotFound, JobState, StaleLease
from master.store.db import query
from master.store.rows import dumps, job_from_row
from protocol.messages import JobResult


def load_job(conn: sqlite3.Connection, job_id: int) -> Job:
    with query(conn, "SELECT * FROM jobs WHERE id = ?", (job_id,)) as cur:
        row = cur.fetchone()
    if row is None:
        raise JobNotFound(job_id)
    return job_from_row(row)


def update_job(conn: sqlite3.Connection, job_id: int, **values: Any) -> Job:
    cols = ", ".join(f"{k} = ?" for k in values)
    with query(
        conn,
        f"UPDATE jobs SET {cols} WHERE id = ? RETURNING *",  # noqa: S608  # keys are ours
        (*values.values(), job_id),
    ) as cur:
        row = cur.fetchone()
    assert row is not None
    return job_from_row(row)


def end_attempt(
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


def check_lease(job: Job, lease: int) -> None:
    # A queued job has no holder: whatever lease a peer presents is stale.
    if job.lease != lease or job.state is JobState.QUEUED:
        raise StaleLease(job.id, lease, job.lease)


def requeued(conn: sqlite3.Connection, job: Job, **extra: Any) -> Job:
    return update_job(
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
