"""``store.jobs``: queue, claim, run and end jobs; read them back.

Each write is one transaction on the writer thread that moves the job through
the state machine (``master.store.transitions``, one helper per move), so two
callers racing for the same job see one win and one ``InvalidTransition`` or
``StaleLease``. A stored result is compared with the previous release in the
same transaction (``finish`` → ``master.store.comparisons``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection
from typing import Any

from master.jobs import (
    FINAL_STATES,
    Attempt,
    FilesSubmitResult,
    FinishDisposition,
    Job,
    JobRequest,
    JobState,
    SubmitResult,
)
from master.store import transitions as move
from master.store.attempts import end_attempt, holder, late_details, stale_result
from master.store.comparisons import comparison_of, record_comparison
from master.store.db import Database, query
from master.store.errors import InvalidTransition
from master.store.filters import JobFilter
from master.store.rows import attempt_from_row, dumps, job_from_row
from master.store.schema import project_key
from master.store.transitions import check_lease, check_transition, load_job
from protocol.messages import JobResult


class JobStore:
    """The jobs and their attempts.

    ``retry_limit``: infra_error results re-queued before one is final.
    ``quarantine_after``: consecutive lost slaves after which a job is quarantined.
    """

    def __init__(self, db: Database, *, retry_limit: int, quarantine_after: int) -> None:
        self._db = db
        self.retry_limit = retry_limit
        self.quarantine_after = quarantine_after

    # ------------------------------------------------------------- reads ----

    async def get(self, job_id: int) -> Job | None:
        row = await self._db.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else job_from_row(row)

    async def detail(self, job_id: int) -> tuple[Job, dict[str, Any]] | None:
        """A job and its comparison with the previous release, read together (one row).

        The comparison is ``{"behaviour_diff": ..., "quality_trend": ...}``, both None
        until the job's result is stored (``master.store.comparisons``).
        """
        row = await self._db.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else (job_from_row(row), comparison_of(row))

    async def find(
        self,
        where: JobFilter | None = None,
        *,
        project: str | None = None,
        state: str | None = None,
        outcome: str | None = None,
        verdict: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[Job]:
        """Newest first; ``before_id`` pages back (keyset: ids only grow).

        ``where`` is the whole filter (``master.store.filters``); the keywords are a
        short form of it for callers that need one or two fields.
        """
        if where is None:
            where = JobFilter(project=project, state=state, outcome=outcome, verdict=verdict)
        clauses, params = where.where()
        if before_id is not None:
            clauses.append("id < ?")
            params.append(before_id)
        clause = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._db.fetchall(
            f"SELECT * FROM jobs {clause} ORDER BY id DESC LIMIT ?",  # noqa: S608  # our columns
            (*params, max(0, limit)),
        )
        return [job_from_row(r) for r in rows]

    async def live(self, slave: str | None = None) -> list[Job]:
        """Jobs assigned to or running on a slave (any slave if ``slave`` is None)."""
        sql = "SELECT * FROM jobs WHERE state IN ('assigned', 'running')"
        params: tuple[Any, ...] = ()
        if slave is not None:
            sql += " AND slave = ?"
            params = (slave,)
        return [job_from_row(r) for r in await self._db.fetchall(sql + " ORDER BY id", params)]

    async def upload_paths_in_use(self) -> set[str]:
        """Master-local paths of uploaded files that a job not yet ended still needs."""
        rows = await self._db.fetchall(
            "SELECT files FROM jobs WHERE state IN ('queued', 'assigned', 'running')"
            " AND files LIKE '%\"path\"%'"
        )
        paths: set[str] = set()
        for row in rows:
            for entry in json.loads(row[0]):
                if isinstance(entry, dict) and entry.get("path"):
                    paths.add(str(entry["path"]))
        return paths

    async def attempts(self, job_id: int) -> list[Attempt]:
        rows = await self._db.fetchall(
            "SELECT * FROM attempts WHERE job_id = ? ORDER BY lease", (job_id,)
        )
        return [attempt_from_row(r) for r in rows]

    async def counts(self) -> dict[str, dict[str, int]]:
        """``{"state": {state: n}, "outcome": {outcome: n}, "result": {"outcome/verdict": n}}``.

        Every state is present; ``result`` keys are ``outcome/verdict`` (``failed/suspicious``;
        ``cancelled/`` when the job has no verdict).
        """
        by_state = {s.value: 0 for s in JobState}
        for r in await self._db.fetchall("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            by_state[r[0]] = r[1]
        by_outcome: dict[str, int] = {}
        by_result: dict[str, int] = {}
        for outcome, verdict, n in await self._db.fetchall(
            "SELECT outcome, verdict, COUNT(*) FROM jobs WHERE outcome IS NOT NULL"
            " GROUP BY outcome, verdict"
        ):
            by_outcome[outcome] = by_outcome.get(outcome, 0) + n
            by_result[f"{outcome}/{verdict or ''}"] = n
        return {"state": by_state, "outcome": by_outcome, "result": by_result}

    async def oldest_queued_at(self) -> float | None:
        """``created_at`` of the oldest job still queued (None when the queue is empty)."""
        row = await self._db.fetchone("SELECT MIN(created_at) FROM jobs WHERE state = 'queued'")
        return None if row is None or row[0] is None else float(row[0])

    # ------------------------------------------------------------ writes ----

    async def submit(self, req: JobRequest) -> SubmitResult:
        """Queue a job, or return the existing one for (project, version, image).

        The project matches any spelling of its name (PEP 503). A cancelled job does
        not count as existing; ``rerun=True`` always queues. A request with
        ``untestable`` set is stored finished as ``incomplete`` (``move.untestable``).
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
            return SubmitResult(_insert(conn, req, key), created=True)

        return await self._db.write(tx)

    async def submit_files(self, req: JobRequest) -> FilesSubmitResult:
        """Have ``req.files`` tested: by the release's feed job if it can still take them.

        Looks at the newest feed job (``source`` ``feed``, not cancelled) of (project,
        version, image): if its files include every sha256 of ``req.files``, that job
        is the answer (``covered``: this file set was handed out already); if it is
        still ``queued``, its files become ``req.files`` (``updated``: nobody tested the
        old set yet); otherwise a new job is queued (``queued``). One transaction, so
        asking twice for the same file set never yields two jobs.
        """
        key = project_key(req.project)
        wanted = {f.get("sha256") for f in req.files}

        def tx(conn: sqlite3.Connection) -> FilesSubmitResult:
            with query(
                conn,
                "SELECT * FROM jobs WHERE project_key = ? AND version = ? AND image = ?"
                " AND source = 'feed' AND state != 'cancelled' ORDER BY id DESC LIMIT 1",
                (key, req.version, req.image),
            ) as cur:
                row = cur.fetchone()
            if row is not None:
                job = job_from_row(row)
                if wanted <= {f.get("sha256") for f in job.files}:
                    return FilesSubmitResult(job, "covered")
                if job.state is JobState.QUEUED and req.untestable is None:
                    with query(
                        conn,
                        "UPDATE jobs SET files = ? WHERE id = ? AND state = 'queued' RETURNING *",
                        (dumps(req.files), job.id),
                    ) as cur:
                        updated = cur.fetchone()
                    assert updated is not None  # one writer: the state read above holds
                    return FilesSubmitResult(job_from_row(updated), "updated")
            return FilesSubmitResult(_insert(conn, req, key), "queued")

        return await self._db.write(tx)

    async def claim_next(self, slave: str, images: Collection[str]) -> Job | None:
        """Atomically take the best queued job for these images: ``assigned``, lease + 1.

        Best: highest priority, then oldest. Returns None when nothing fits.
        ``job.event_seq + 1`` is the offer's ``first_seq``.
        """
        jobs = await self.claim(slave, images, 1)
        return jobs[0] if jobs else None

    async def claim(self, slave: str, images: Collection[str], limit: int) -> list[Job]:
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
            return [move.claim(conn, job_id, slave, now) for job_id in ids]

        return await self._db.write(tx)

    async def start(self, job_id: int, lease: int) -> Job:
        """The slave accepted: ``assigned → running`` (idempotent for the same lease).

        Raises ``StaleLease``, ``InvalidTransition`` (e.g. cancelled meanwhile), ``JobNotFound``.
        """

        def tx(conn: sqlite3.Connection) -> Job:
            job = load_job(conn, job_id)
            check_lease(job, lease)
            if job.state is JobState.RUNNING:
                return job
            return move.start(conn, job)

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
                return self._lost(conn, job, reason, new_attempt=False)
            return move.requeue(conn, job, new_attempt=False)

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
            job = load_job(conn, job_id)
            check_lease(job, lease)
            check_transition(job_id, job.state, JobState.QUEUED)
            if infra:
                end_attempt(conn, job_id, lease, "lost", reason)
                return self._lost(conn, job, reason, new_attempt=True)
            end_attempt(conn, job_id, lease, "dropped", reason)
            return move.requeue(conn, job, new_attempt=True)

        return await self._db.write(tx)

    def _lost(self, conn: sqlite3.Connection, job: Job, reason: str, *, new_attempt: bool) -> Job:
        """The job's slave went away: queued again, or quarantined after too many losses."""
        losses = job.slave_losses + 1
        if losses >= self.quarantine_after:
            return move.quarantine(conn, job, losses, reason)
        return move.requeue(conn, job, new_attempt=new_attempt, slave_losses=losses)

    async def finish(
        self, job_id: int, lease: int, result: JobResult, *, slave: str | None = None
    ) -> FinishDisposition:
        """Record a slave's result; idempotent.

        ``slave``: who sent it. ``FOREIGN`` when that slave was never given this
        lease of the job (another slave's job, a guessed lease): nothing is
        written, not even the attempt history. ``None`` (the master itself) skips
        the check.

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
            if slave is not None and holder(conn, job_id, lease) != slave:
                return FinishDisposition.FOREIGN
            if job.lease != lease or job.state is JobState.QUEUED:
                stale_result(conn, job_id, lease, result)
                return FinishDisposition.STALE
            if job.state in FINAL_STATES:
                late_details(conn, job_id, lease, result)
                return FinishDisposition.DUPLICATE
            if result.outcome == "cancelled":
                end_attempt(conn, job_id, lease, "dropped", "aborted by the slave", result)
                move.requeue(conn, job, new_attempt=True)
                return FinishDisposition.REQUEUED
            if result.outcome == "infra_error" and job.infra_retries < self.retry_limit:
                end_attempt(conn, job_id, lease, "retried", "infra_error", result)
                move.requeue(
                    conn, job, new_attempt=True, infra_retries=job.infra_retries + 1, slave_losses=0
                )
                return FinishDisposition.REQUEUED
            ended = move.finish(conn, job, result, quarantine=_kills_its_vm(job, result))
            record_comparison(conn, ended, project_key(ended.project))
            return FinishDisposition.STORED

        return await self._db.write(tx, durable=True)

    async def cancel(self, job_id: int, reason: str) -> Job:
        """Cancel a live job. The returned job keeps its ``slave`` and ``lease``, so the
        caller can tell that slave. Raises ``JobNotFound``, ``InvalidTransition`` (final)."""

        def tx(conn: sqlite3.Connection) -> Job:
            return move.cancel(conn, load_job(conn, job_id), reason)

        return await self._db.write(tx, durable=True)

    async def retry(self, job_id: int) -> Job:
        """Queue a finished or cancelled job again (attempt + 1, result cleared).

        Raises ``JobNotFound``, ``InvalidTransition`` (still live)."""

        def tx(conn: sqlite3.Connection) -> Job:
            job = load_job(conn, job_id)
            if job.state not in FINAL_STATES:
                # A claimed job goes back to the queue only through its holder's lease.
                raise InvalidTransition(job_id, job.state, JobState.QUEUED)
            return move.requeue(conn, job, new_attempt=True)

        return await self._db.write(tx)


def _kills_its_vm(job: Job, result: JobResult) -> str | None:
    """The quarantine reason of a final ``infra_error`` whose VM died under the job.

    Its retries are spent (``retry_limit``): a release that takes its VM down with it
    every time is set aside like one that takes its slave down (``quarantine_after``).
    """
    if result.outcome != "infra_error" or not result.summary.vm_exit:
        return None
    tries = job.infra_retries + 1
    last = result.summary.vm_exit
    return f"quarantined: kills its VM ({tries} attempt{'s' * (tries > 1)}, last: {last})"


def _insert(conn: sqlite3.Connection, req: JobRequest, key: str) -> Job:
    """A new job for ``req`` (finished as ``incomplete`` at once if it is untestable)."""
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
            dumps(req.timeouts.to_json()),
            dumps(req.options.to_json()),
            key,
        ),
    ) as cur:
        row = cur.fetchone()
    assert row is not None
    job = job_from_row(row)
    if req.untestable is not None:
        job = move.untestable(conn, job, req.untestable)
    return job
