"""Group commit: many writes share a transaction, yet each one is atomic on its own."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from master.jobs import JobRequest, JobState
from master.store import InvalidTransition, Store, StoreError
from master.store.db import Database


async def test_failing_write_in_a_group_rolls_back_only_itself(tmp_path: Path) -> None:
    """Concurrent writes are grouped; one that fails half-way leaves no trace, the rest commit."""
    db = await Database.open(tmp_path / "g.sqlite3")
    try:

        def insert(project: str, fail: bool) -> Callable[[sqlite3.Connection], int]:
            def tx(conn: sqlite3.Connection) -> int:
                cur = conn.execute(
                    "INSERT INTO jobs (project, version, image, created_at)"
                    " VALUES (?, '1', 'i', 0)",
                    (project,),
                )
                if fail:
                    raise RuntimeError("half-way")
                return int(cur.lastrowid or 0)

            return tx

        before = db.commits
        calls = [db.write(insert(f"p{i}", fail=i % 3 == 0)) for i in range(30)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        failed = [r for r in results if isinstance(r, RuntimeError)]
        assert len(failed) == 10
        assert db.commits - before < 30  # grouped
        rows = await db.fetchall("SELECT project FROM jobs ORDER BY id")
        assert sorted(r[0] for r in rows) == sorted(f"p{i}" for i in range(30) if i % 3)
    finally:
        await db.close()


async def test_sqlite_errors_become_store_errors(tmp_path: Path) -> None:
    """A constraint or SQL error inside a write surfaces as StoreError, the database intact."""
    db = await Database.open(tmp_path / "e.sqlite3")
    try:
        with pytest.raises(StoreError):
            await db.write(lambda conn: conn.execute("INSERT INTO nowhere VALUES (1)"))
        assert await db.fetchone("SELECT COUNT(*) FROM jobs") is not None
    finally:
        await db.close()


async def test_a_cancelled_caller_still_gets_its_write_committed(tmp_path: Path) -> None:
    """Cancelling the awaiting task does not cancel the transaction: it is all or nothing."""
    store = await Store.open(tmp_path / "c.sqlite3")
    try:
        task = asyncio.create_task(store.jobs.submit(JobRequest("p", "1", [], "i")))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await store.close()
        store = await Store.open(tmp_path / "c.sqlite3")
        jobs = await store.jobs.find()
        assert [(j.project, j.state) for j in jobs] == [("p", JobState.QUEUED)]
    finally:
        await store.close()


async def test_racing_cancels_and_claims_serialise(tmp_path: Path) -> None:
    """Claims and cancels racing over the same jobs behave as if run one after another:
    every cancel succeeds once, and a job has a claim attempt only if it was claimed."""
    store = await Store.open(tmp_path / "r.sqlite3")
    try:
        ids = [
            (await store.jobs.submit(JobRequest(f"p{i}", "1", [], "i"))).job.id for i in range(20)
        ]
        claims = [store.jobs.claim_next(f"s{i}", ["i"]) for i in range(20)]
        cancels = [store.jobs.cancel(j, "race") for j in ids]
        results = await asyncio.gather(*claims, *cancels, return_exceptions=True)
        claimed = {r.id for r in results[:20] if r is not None and not isinstance(r, BaseException)}
        assert not [r for r in results if isinstance(r, BaseException)]
        for job_id in ids:
            job = await store.jobs.get(job_id)
            assert job is not None and job.state is JobState.CANCELLED
            attempts = await store.jobs.attempts(job_id)
            if job_id in claimed:
                assert [a.status for a in attempts] == ["cancelled"] and job.slave is not None
            else:
                assert attempts == [] and job.slave is None
        with pytest.raises(InvalidTransition):
            await store.jobs.cancel(ids[0], "again")
    finally:
        await store.close()
