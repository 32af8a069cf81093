"""Fault table row 16: the master's data dir fills up (a small tmpfs), then space returns."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from master.http.app import create_app
from master.jobs import JobState
from protocol.messages import EventsAck, JobOffer, ResultAck, RunningJob
from tests.fakes.pypi import FakePyPI
from tests.integration.conftest import Harness, make_config
from tests.integration.test_api_harness import TOKEN, auth

ClientFactory = Any  # pytest-aiohttp's aiohttp_client fixture


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs mounted for this test (root only; skipped elsewhere)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
async def pypi(tmp_path: Path) -> AsyncIterator[FakePyPI]:
    async with FakePyPI() as index:
        for i in range(40):
            index.add_project(tmp_path / f"p{i}", f"proj{i}", "1.0")
        yield index


def _fill(directory: Path) -> Path:
    """Write a file until the filesystem says ENOSPC; returns it.

    Unbuffered: a buffered file keeps what a full disk refused and raises ENOSPC again
    when it is closed, outside any handler (that made this test flaky)."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with contextlib.suppress(OSError), filler.open("ab", buffering=0) as fh:  # the last scraps
        while True:
            fh.write(b"\0" * 512)
    return filler


async def test_disk_full_refuses_new_work_clearly_and_loses_nothing_acknowledged(
    tmp_path: Path, small_fs: Path, pypi: FakePyPI, aiohttp_client: ClientFactory
) -> None:
    """With the data dir full, submissions get 503 store_unavailable naming the cause and
    unstored events are not acked; once space returns, work resumes and every job and
    event that was acknowledged is there, the database intact."""
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    config = make_config(
        tmp_path, data_dir=str(small_fs / "data"), pypi_url=pypi.base_url, token_file=str(tokens)
    )
    harness = Harness(config)
    await harness.start()
    try:
        client: TestClient[Any, Any] = await aiohttp_client(create_app(harness.ctx))
        worker = await harness.slave("s1")
        first = await client.post("/api/v1/jobs", json={"project": "proj0"}, headers=auth())
        assert first.status == 201, await first.text()
        job_id = (await first.json())["job"]["id"]
        offer = await worker.next(JobOffer)
        await worker.accept(offer)
        await worker.send_events(job_id, offer.lease, 3)
        await worker.next(EventsAck)
        acked = {job_id}

        filler = _fill(small_fs)
        refused: dict[str, Any] | None = None
        for i in range(1, 40):  # SQLite may still fit a few writes in space it holds
            resp = await client.post("/api/v1/jobs", json={"project": f"proj{i}"}, headers=auth())
            if resp.status == 201:
                acked.add((await resp.json())["job"]["id"])
                continue
            assert resp.status == 503, await resp.text()
            refused = await resp.json()
            break
        assert refused is not None, "the full disk never refused a write"
        assert refused["error"] == "store_unavailable"
        assert "full" in refused["detail"], refused
        late = await worker.send_events(job_id, offer.lease, 200, blob="x" * 2000)
        await worker.wait_for(lambda: worker.closed, timeout=10)
        stored = await harness.ctx.store.events.read(job_id)
        assert [e.seq for e in stored][:3] == [1, 2, 3]

        filler.unlink()
        again = await client.post("/api/v1/jobs", json={"project": "proj39"}, headers=auth())
        assert again.status == 201, await again.text()
        acked.add((await again.json())["job"]["id"])
        back = await harness.slave(
            "s1", running=[RunningJob(job_id=job_id, lease=offer.lease, last_seq=203)]
        )
        back.adopt(offer, next_seq=4)
        await back.send_events(job_id, offer.lease, late)
        await back.wait_for(
            lambda: any(a.seq == 203 for a in back.inbox["events_ack"]),  # type: ignore[attr-defined]
        )
        await back.send_result(job_id, offer.lease, "passed", last_seq=203)
        await back.next(ResultAck)
        done = await harness.until_job(job_id, lambda j: j.state is JobState.FINISHED)
        assert done.outcome == "passed"
        events = await harness.ctx.store.events.read(job_id)
        assert [e.seq for e in events] == list(range(1, 204))
        for jid in acked:
            assert (await harness.ctx.store.jobs.get(jid)) is not None
        health = await client.get("/healthz")
        assert health.status == 200
    finally:
        await harness.stop()
    with sqlite3.connect(small_fs / "data" / "pyti.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    print(f"disk full: {len(acked)} jobs acknowledged, refusal: {refused['detail']!r}")
