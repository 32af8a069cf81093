"""The one job state machine: which moves are allowed, and one helper per move.

::

    queued ──claim──▶ assigned ──start──▶ running ──finish──▶ finished
      │ └──────────── untestable (no image can run it) ─────────▶ │
      ▲                  │  │                 │  (or quarantine)  │
      │◀─requeue (refused/lost)──┐            │                   │
      │◀─requeue (slave lost / infra retry / aborted)─────┘       │
      │                            ▼                              │
      │             cancelled ◀──cancel── (any live state)        │
      └──────────────── requeue (a re-run) ◀──────────────────────┘

Every helper is a function of the writer connection, run inside the caller's
transaction (``master.store.jobs.JobStore``): it checks ``TRANSITIONS`` (else
``InvalidTransition``), changes the job, keeps the attempt history in step
(``master.store.attempts``) and queues the webhook of a job that ended
(``master.store.callbacks``). The lease is bumped on every claim and on every
return to the queue, so only the holder of the current claim can change a job
(``check_lease``). ``JobState`` itself is in ``master.jobs``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from master.jobs import FINAL_STATES, Job, JobState
from master.store.attempts import end_attempt, open_attempt, set_status, start_attempt
from master.store.callbacks import queue_callback
from master.store.db import query
from master.store.errors import InvalidTransition, JobNotFound, StaleLease
from master.store.rows import dumps, job_from_row
from protocol.messages import JobResult
from protocol.results import phases_to_json
from protocol.schema import encode_record
from protocol.vocabulary import Outcome, Verdict, values

VERDICTS = frozenset(values(Verdict))

#: The only transitions the store ever makes. ``assigned → queued`` is a refused
#: offer or a slave lost before accepting; ``running → queued`` a lost slave or an
#: infrastructure error being retried; ``finished|cancelled → queued`` a re-run;
#: ``queued → finished`` a job no image can run (``untestable``), never dispatched.
TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.ASSIGNED, JobState.CANCELLED, JobState.FINISHED}),
    JobState.ASSIGNED: frozenset({JobState.RUNNING, JobState.QUEUED, JobState.CANCELLED}),
    JobState.RUNNING: frozenset({JobState.FINISHED, JobState.QUEUED, JobState.CANCELLED}),
    JobState.FINISHED: frozenset({JobState.QUEUED}),
    JobState.CANCELLED: frozenset({JobState.QUEUED}),
}

#: The outcome of a job no image can run: "could not test", not "failed".
UNTESTABLE_OUTCOME = "incomplete"

#: A re-run starts clean: what the previous run left on the job.
_NO_RESULT: Mapping[str, Any] = {
    "outcome": None,
    "verdict": None,
    "phases": "{}",
    "summary": "{}",
    "findings": "[]",
    "profile": None,
    "comparison": None,
    "isolation": None,
    "error": None,
    "finished_at": None,
    "quarantined": 0,
    "slave_losses": 0,
    "infra_retries": 0,
}


def check_transition(job_id: int, current: JobState, wanted: JobState) -> None:
    """Raise ``InvalidTransition`` unless ``current → wanted`` is in the table."""
    if wanted not in TRANSITIONS[current]:
        raise InvalidTransition(job_id, current, wanted)


def load_job(conn: sqlite3.Connection, job_id: int) -> Job:
    """The job as of this transaction; ``JobNotFound``."""
    with query(conn, "SELECT * FROM jobs WHERE id = ?", (job_id,)) as cur:
        row = cur.fetchone()
    if row is None:
        raise JobNotFound(job_id)
    return job_from_row(row)


def check_lease(job: Job, lease: int) -> None:
    """Raise ``StaleLease`` unless ``lease`` is the job's current claim."""
    # A queued job has no holder: whatever lease a peer presents is stale.
    if job.lease != lease or job.state is JobState.QUEUED:
        raise StaleLease(job.id, lease, job.lease)


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


def _check_can_finish(job: Job) -> None:
    # An assigned job whose result comes first went through running on the slave.
    if job.state is JobState.ASSIGNED:
        check_transition(job.id, job.state, JobState.RUNNING)
    check_transition(job.id, JobState.RUNNING, JobState.FINISHED)


# ---------------------------------------------------------------- moves ----


def claim(conn: sqlite3.Connection, job_id: int, slave: str, now: float) -> Job:
    """``queued → assigned`` to ``slave``: lease + 1, a new attempt row.

    ``job_id`` was read as queued in this transaction (the guard is in the SQL).
    """
    # Events of an abandoned attempt may have gaps: the new attempt's
    # acknowledgements start after the highest stored seq.
    with query(
        conn,
        "UPDATE jobs SET state = 'assigned', slave = ?, assigned_at = ?,"
        " started_at = NULL, lease = lease + 1, event_seq = (SELECT COALESCE("
        "MAX(seq), 0) FROM events WHERE job_id = ?) WHERE id = ? AND state = 'queued'"
        " RETURNING *",
        (slave, now, job_id, job_id),
    ) as cur:
        row = cur.fetchone()
    assert row is not None
    job = job_from_row(row)
    open_attempt(conn, job_id, job.lease, job.attempt, slave, now)
    return job


def start(conn: sqlite3.Connection, job: Job) -> Job:
    """``assigned → running``: the slave accepted the offer."""
    check_transition(job.id, job.state, JobState.RUNNING)
    now = time.time()
    start_attempt(conn, job.id, job.lease, now)
    return _update(conn, job.id, state=JobState.RUNNING.value, started_at=now)


def requeue(
    conn: sqlite3.Connection,
    job: Job,
    *,
    new_attempt: bool,
    slave_losses: int | None = None,
    infra_retries: int | None = None,
) -> Job:
    """``* → queued``: the one way back to the queue, for every path that goes there.

    Frees the claim (no slave, not assigned nor started, lease + 1, so the old
    holder's lease is stale). ``new_attempt``: the claim counts as an attempt
    (``attempt + 1``); a refused offer or one lost before it was accepted does
    not. A finished or cancelled job (a re-run) also loses its result and its
    counters. ``slave_losses`` / ``infra_retries``: new values of the counters.
    The caller ends the attempt in the history (``end_attempt``).
    """
    check_transition(job.id, job.state, JobState.QUEUED)
    values: dict[str, Any] = {
        "state": JobState.QUEUED.value,
        "slave": None,
        "assigned_at": None,
        "started_at": None,
        "attempt": job.attempt + 1 if new_attempt else job.attempt,
        "lease": job.lease + 1,
    }
    if job.state in FINAL_STATES:
        values.update(_NO_RESULT)
    if slave_losses is not None:
        values["slave_losses"] = slave_losses
    if infra_retries is not None:
        values["infra_retries"] = infra_retries
    return _update(conn, job.id, **values)


def finish(
    conn: sqlite3.Connection, job: Job, result: JobResult, *, quarantine: str | None = None
) -> Job:
    """``assigned|running → finished`` with the slave's result; queues the webhook.

    ``quarantine``: why the job is quarantined with this (``infra_error``) result;
    it leads the job's ``error``. The caller compares the release with the previous
    one in the same transaction (``master.store.comparisons``).
    """
    _check_can_finish(job)
    status = "finished" if quarantine is None else "quarantined"
    end_attempt(conn, job.id, job.lease, status, quarantine, result)
    now = time.time()
    summary = result.summary
    ended = _update(
        conn,
        job.id,
        state=JobState.FINISHED.value,
        outcome=result.outcome,
        verdict=summary.verdict,
        phases=dumps(phases_to_json(result.phases)),
        summary=dumps(summary.to_json()),
        findings=dumps([encode_record(f) for f in summary.findings or ()]),
        isolation=result.isolation,
        finished_at=now,
        slave_losses=0,
        started_at=job.started_at or now,
        error=summary.error if quarantine is None else f"{quarantine}; {summary.error}"[:2000],
        quarantined=int(quarantine is not None),
    )
    queue_callback(conn, ended, now)
    return ended


def untestable(conn: sqlite3.Connection, job: Job, reason: str) -> Job:
    """``queued → finished`` as ``incomplete``: no image here can run it (``master.images``).

    No slave ever held it: no attempt, no comparison. Queues the webhook.
    """
    check_transition(job.id, job.state, JobState.FINISHED)
    now = time.time()
    ended = _update(
        conn,
        job.id,
        state=JobState.FINISHED.value,
        outcome=UNTESTABLE_OUTCOME,
        summary=dumps({"reason": reason}),
        error=reason[:2000],
        finished_at=now,
    )
    queue_callback(conn, ended, now)
    return ended


def quarantine(conn: sqlite3.Connection, job: Job, losses: int, reason: str) -> Job:
    """``assigned|running → finished`` as ``infra_error``: the job lost its slave too often."""
    _check_can_finish(job)
    set_status(conn, job.id, job.lease, "quarantined")
    now = time.time()
    error = f"quarantined: lost its slave {losses} times in a row (last: {reason})"
    ended = _update(
        conn,
        job.id,
        state=JobState.FINISHED.value,
        outcome=Outcome.INFRA_ERROR.value,
        summary=dumps({"reason": error[:300]}),
        quarantined=1,
        slave_losses=losses,
        finished_at=now,
        error=error,
    )
    queue_callback(conn, ended, now)
    return ended


def cancel(conn: sqlite3.Connection, job: Job, reason: str) -> Job:
    """``live → cancelled``; keeps ``slave`` and ``lease`` (the caller tells that slave)."""
    check_transition(job.id, job.state, JobState.CANCELLED)
    if job.state is not JobState.QUEUED:
        end_attempt(conn, job.id, job.lease, "cancelled", reason)
    now = time.time()
    ended = _update(
        conn,
        job.id,
        state=JobState.CANCELLED.value,
        outcome=Outcome.CANCELLED.value,
        summary=dumps({"reason": reason[:300]}),
        error=reason[:2000],
        finished_at=now,
    )
    queue_callback(conn, ended, now)
    return ended
