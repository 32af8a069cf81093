"""Schema versions: forward migrations at open, refusal of a newer database; feed tables."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import aiosqlite
import pytest

from master.jobs import FeedState, JobState
from master.store import SCHEMA_VERSION, SchemaTooNew, Store
from master.store.db import migrate
from protocol.results import JobTimeouts


async def _version(path: Path) -> int:
    async with aiosqlite.connect(path) as conn, conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_version_1_database_is_migrated_with_its_data(tmp_path: Path) -> None:
    """A database at schema 1 with a job in it opens at the newest schema, the job intact."""
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate(conn, target=1) == 1
        conn.execute(
            "INSERT INTO jobs (project, version, image, created_at) VALUES ('old', '0.1', 'b', ?)",
            (time.time(),),
        )
    finally:
        conn.close()
    assert await _version(path) == 1
    store = await Store.open(path)
    try:
        assert await _version(path) == SCHEMA_VERSION
        jobs = await store.jobs.find()
        assert [(j.project, j.state, j.timeouts) for j in jobs] == [
            ("old", JobState.QUEUED, JobTimeouts())
        ]
        assert await store.callbacks.due(time.time()) == []  # table added by migration 2
    finally:
        await store.close()


async def test_migration_4_fills_the_verdict_of_finished_jobs(tmp_path: Path) -> None:
    """Jobs finished at schema 3 get their verdict column from the stored summary (v4)."""
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    insert = (
        "INSERT INTO jobs (project, version, image, created_at, state, outcome, summary)"
        " VALUES ('old', ?, 'b', 0, ?, ?, ?)"
    )
    try:
        assert migrate(conn, target=3) == 3
        conn.execute(insert, ("1", "finished", "failed", '{"verdict": "suspicious"}'))
        conn.execute(insert, ("2", "finished", "passed", '{"verdict": "odd"}'))
        conn.execute(insert, ("3", "finished", "passed", "[]"))
        conn.execute(insert, ("4", "queued", None, "{}"))
    finally:
        conn.close()
    store = await Store.open(path)
    try:
        jobs = {j.version: j.verdict for j in await store.jobs.find()}
        assert jobs == {"1": "suspicious", "2": None, "3": None, "4": None}
        assert [j.version for j in await store.jobs.find(verdict="suspicious")] == ["1"]
    finally:
        await store.close()


async def test_a_database_from_a_newer_pyti_is_refused(tmp_path: Path) -> None:
    """Opening a database whose schema is newer than the code raises SchemaTooNew."""
    path = tmp_path / "new.sqlite3"
    async with aiosqlite.connect(path) as conn:
        await conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        await conn.commit()
    with pytest.raises(SchemaTooNew) as info:
        await Store.open(path)
    assert info.value.found == SCHEMA_VERSION + 1


async def test_database_runs_in_wal_mode(tmp_path: Path) -> None:
    """The store switches the database to WAL (readers never block the writer)."""
    store = await Store.open(tmp_path / "w.sqlite3")
    await store.close()
    async with (
        aiosqlite.connect(tmp_path / "w.sqlite3") as conn,
        conn.execute("PRAGMA journal_mode") as cur,
    ):
        row = await cur.fetchone()
    assert row is not None and row[0] == "wal"


async def test_feed_state_and_seen_releases_round_trip(tmp_path: Path) -> None:
    """Feed cursors/etags and seen releases are stored and updated in place."""
    store = await Store.open(tmp_path / "f.sqlite3")
    try:
        url = "http://127.0.0.1/rss"
        assert await store.feed.get_state(url) is None
        await store.feed.set_state(url, FeedState(cursor="a", etag='"1"', updated_at=5.0))
        await store.feed.set_state(url, FeedState(cursor="b", last_modified="x", updated_at=6.0))
        assert await store.feed.get_state(url) == FeedState("b", None, "x", 6.0)
        assert not await store.feed.release_seen("demo", "1.0")
        assert await store.feed.mark_release_seen("demo", "1.0", "feed")
        assert not await store.feed.mark_release_seen("demo", "1.0", "api")
        assert await store.feed.release_seen("demo", "1.0")
    finally:
        await store.close()
