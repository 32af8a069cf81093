"""``pyti master backup`` while the master runs, and the restore procedure of
docs/operations.md ("Backup and restore") done step by step."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from master.daemon import Master
from master.jobs import JobState
from protocol.messages import JobOffer
from pyti.cli import main
from tests.integration.conftest import Harness, make_config


async def _run_jobs(h: Harness, n: int, events: int) -> list[int]:
    await h.slave("s1", mode="run", events_per_job=events, batch=25, slots=2)
    ids = [(await h.submit(f"proj{i}")).id for i in range(n)]
    for job_id in ids:
        await h.until_job(job_id, lambda j: j.state is JobState.FINISHED)
    return ids


async def test_backup_while_running_then_restore_as_documented(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backup taken while a slave works restores into a master with every job and event."""
    config = make_config(tmp_path)
    h = Harness(config)
    await h.start()
    try:
        finished = await _run_jobs(h, 3, events=60)
        busy = await h.slave("busy", mode="manual", images=("trixie",))
        running = await h.submit("inflight", image="trixie")
        offer = await busy.next(JobOffer)
        await busy.accept(offer)
        await busy.send_events(running.id, offer.lease, 7)
        await h.until(lambda: _events(h, running.id, 7))
        # 1. pyti master backup PATH, the master running.
        backup = tmp_path / "backups" / "pyti-backup.sqlite3"
        backup.parent.mkdir()
        argv = ["master", "backup", str(backup), "--data-dir", str(config.data_dir)]
        assert await asyncio.to_thread(main, argv) == 0
        out = capsys.readouterr().out.splitlines()  # the master's log lines go there too
        report = json.loads(next(line for line in out if '"integrity"' in line))
        assert report["ok"] and report["integrity"] == "ok"
        assert report["rows"]["jobs"] == 4 and report["rows"]["events"] == 3 * 60 + 7
        await h.submit("after-backup")  # not in the backup
    finally:
        await h.stop()  # 2. stop the master
    db = config.db_path
    # 3. move the database and its -wal/-shm away; 4. copy the backup in its place.
    await asyncio.to_thread(_restore, backup, db, tmp_path / "old")
    # 5. start the master on it.
    master = Master(config, slave_port=0, http=False)
    await master.start()
    try:
        store = master.ctx.store
        for job_id in finished:
            job = await store.jobs.get(job_id)
            assert job is not None and job.state is JobState.FINISHED
            assert [e.seq for e in await store.events.read(job_id)] == list(range(1, 61))
        inflight = await store.jobs.get(running.id)
        assert inflight is not None and inflight.state in (JobState.RUNNING, JobState.QUEUED)
        assert len(await store.events.read(running.id)) == 7
        assert await store.jobs.find(project="after-backup") == []
        assert await store.integrity_ok()
    finally:
        await master.stop()


def _restore(backup: Path, db: Path, old: Path) -> None:
    old.mkdir()
    for suffix in ("", "-wal", "-shm"):
        live = Path(f"{db}{suffix}")
        if live.exists():
            live.rename(old / live.name)
    shutil.copyfile(backup, db)


async def _events(h: Harness, job_id: int, n: int) -> bool:
    return len(await h.ctx.store.events.read(job_id)) == n


def test_backup_refuses_a_missing_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No database where the settings point: exit 2 and a message; nothing written."""
    argv = ["master", "backup", str(tmp_path / "b.sqlite3"), "--data-dir", str(tmp_path / "x")]
    assert main(argv) == 2
    assert "no database" in capsys.readouterr().err
    assert not (tmp_path / "b.sqlite3").exists()


def test_a_copy_whose_rows_differ_fails_its_check(tmp_path: Path) -> None:
    """A copy whose rows differ from the snapshot's counts is bad: ok=False, the table named."""
    from master.backup import Report, check_copy

    db = tmp_path / "x.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE jobs (id INTEGER)")
    conn.execute("INSERT INTO jobs VALUES (1)")
    conn.commit()
    conn.close()
    report = Report(source="src", path=str(db), rows={"jobs": 2})
    check_copy(db, report)
    assert not report.ok and report.problems == ["table jobs: 1 rows, expected 2"]
