"""The retention policy: old jobs' events pruned (results kept), uploads trimmed least recently
used first (never one a waiting job needs), all counted in /metrics; run by the daemon."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from master.config import ConfigError
from master.jobs import JobState
from master.retention import DAY_S, Retention, RetentionSettings
from protocol.messages import JobOffer
from tests.integration.conftest import Harness, make_config


async def _finish(h: Harness, project: str, events: int) -> int:
    job = await h.submit(project)
    slave = h.slaves[0]
    offer = await slave.take(JobOffer)
    await slave.accept(offer)
    await slave.send_events(job.id, offer.lease, events)
    await slave.send_result(job.id, offer.lease, "passed", last_seq=events)
    await h.until_job(job.id, lambda j: j.state is JobState.FINISHED)
    return job.id


def _upload(root: Path, name: str, size: int, age_s: float) -> Path:
    path = root / "uploads" / name.replace(".", "")[:8].ljust(64, "0") / name
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x" * size)
    used = time.time() - age_s
    os.utime(path, (used, used))
    return path


async def _metric(h: Harness, line_start: str) -> float:
    text = await h.ctx.metrics.render()
    [line] = [line for line in text.splitlines() if line.startswith(line_start)]
    return float(line.rsplit(" ", 1)[1])


async def test_events_of_old_jobs_pruned_results_kept(harness: Harness) -> None:
    """Events of jobs ended more than events_days ago go; the job row and newer jobs stay."""
    await harness.slave("s1")
    old = await _finish(harness, "old", 40)
    recent = await _finish(harness, "recent", 5)
    retention = Retention(harness.ctx, RetentionSettings(events_days=30, uploads_max_bytes=0))
    assert (await retention.run_once()).events == 0  # nothing is 30 days old yet
    ended_old = (await harness.job(old)).finished_at
    ended_recent = (await harness.job(recent)).finished_at
    assert ended_old is not None and ended_recent is not None and ended_old < ended_recent
    # "Now": the old job ended just over 30 days ago, the recent one not quite.
    now = (ended_old + ended_recent) / 2 + 30 * DAY_S
    done = await retention.run_once(now=now)
    assert done.events == 40
    assert await harness.ctx.store.events.read(old) == []
    assert len(await harness.ctx.store.events.read(recent)) == 5
    kept = await harness.job(old)
    assert kept.state is JobState.FINISHED and kept.outcome == "passed"
    assert await _metric(harness, "pyti_retention_events_pruned_total") == 40


async def test_uploads_trimmed_least_recently_used_first(harness: Harness) -> None:
    """Over the bound, the oldest uploads go first; one a queued job needs is kept."""
    root = harness.config.data_dir
    needed = _upload(root, "needed-1.0.tar.gz", 1000, age_s=5000)
    oldest = _upload(root, "oldest-1.0.tar.gz", 1000, age_s=4000)
    middle = _upload(root, "middle-1.0.tar.gz", 1000, age_s=3000)
    newest = _upload(root, "newest-1.0.tar.gz", 1000, age_s=2000)
    fresh = _upload(root, "fresh-1.0.tar.gz", 1000, age_s=1)  # just arrived: never evicted
    files: list[dict[str, Any]] = [
        {"filename": needed.name, "sha256": "0" * 64, "size": 1000, "packagetype": "sdist",
         "path": str(needed)}
    ]  # fmt: skip
    await harness.submit("needed", files=files)  # queued: no slave
    retention = Retention(harness.ctx, RetentionSettings(events_days=0, uploads_max_bytes=3000))
    done = await retention.run_once()
    assert (done.upload_files, done.upload_bytes) == (2, 2000)
    assert needed.exists() and newest.exists() and fresh.exists()
    assert not oldest.exists() and not middle.exists() and not oldest.parent.exists()
    assert await _metric(harness, 'pyti_retention_evicted_bytes_total{what="uploads"}') == 2000
    assert await _metric(harness, "pyti_uploads_bytes") == 3000


async def test_the_daemon_runs_the_policy_periodically(tmp_path: Path) -> None:
    """A master with [retention] prunes on its own, every interval."""
    config = make_config(tmp_path, retention={"events_days": 1e-9, "interval": 0.1})
    h = Harness(config)
    await h.start()
    try:
        await h.slave("s1")
        job_id = await _finish(h, "demo", 12)

        async def pruned() -> bool:
            return await h.ctx.store.events.read(job_id) == []

        await h.until(pruned)
        assert await _metric(h, "pyti_retention_events_pruned_total") == 12
    finally:
        await h.stop()


def test_bad_retention_table_is_a_config_error() -> None:
    """An unknown key or a negative bound in [retention] is refused, naming it."""
    with pytest.raises(ConfigError, match="events_dayz"):
        RetentionSettings.from_table({"events_dayz": 3})
    with pytest.raises(ConfigError, match="uploads_max_bytes"):
        RetentionSettings.from_table({"uploads_max_bytes": -1})
