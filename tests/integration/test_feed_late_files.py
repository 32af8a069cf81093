"""Files uploaded to a release after the feed queued it: real store, fake PyPI on loopback.

PyPI's feed lists a release once, when it is created; the fake's generated feed does
the same (`FakePyPI.add` of a second file of a release adds no item), so only the
watcher's re-checks (``master.feed.late``) can find the late files.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from master.config import MasterConfig
from master.feed import FeedWatcher
from master.images import ImageCatalogue
from master.jobs import Job, JobState, TrackedRelease
from protocol.messages import JobResult
from protocol.vocabulary import Outcome
from tests.fakes.dists import Project, make_project
from tests.fakes.feeds import FeedContext, feed_config, feed_context
from tests.fakes.pypi import DistFile, FakePyPI

T = time.time() - 600  # uploads ten minutes ago


@pytest.fixture
async def srv() -> AsyncIterator[FakePyPI]:
    async with FakePyPI() as pypi:
        yield pypi


def late_config(tmp_path: Path, srv: FakePyPI, **feed: Any) -> MasterConfig:
    """Re-checks 3 ms after queueing, then 12 ms, 48 ms, ... within a minute."""
    table: dict[str, Any] = {"late_files_first": 0.003, "late_files_window": 60.0}
    (tmp_path / "master").mkdir(exist_ok=True)
    return feed_config(tmp_path / "master", srv, **(table | feed))


def project(tmp_path: Path, name: str = "demo", version: str = "1.0") -> Project:
    return make_project(tmp_path / f"{name}-{version}", name, version)


async def jobs(ctx: FeedContext) -> list[Job]:
    return sorted(await ctx.store.jobs.find(limit=1000), key=lambda j: j.id)


def shas(job: Job) -> set[str]:
    return {f["sha256"] for f in job.files}


async def tracked(ctx: FeedContext, name: str = "demo", version: str = "1.0") -> TrackedRelease:
    found = await ctx.store.feed.tracked(name, version)
    assert found is not None
    return found


async def poll_until(watcher: FeedWatcher, ctx: FeedContext, done: Any) -> None:
    """Poll (each poll also runs due re-checks) until ``await done()`` is true (5 s at most)."""
    async with asyncio.timeout(5):
        while not await done():
            await asyncio.sleep(0.01)
            await watcher.poll_once()


async def recheck_more(watcher: FeedWatcher, ctx: FeedContext, times: int) -> None:
    """Poll until the release was re-checked ``times`` more times."""
    start = (await tracked(ctx)).rechecks

    async def rechecked() -> bool:
        return (await tracked(ctx)).rechecks >= start + times

    await poll_until(watcher, ctx, rechecked)


async def run_job(ctx: FeedContext, job: Job) -> None:
    """A slave takes ``job`` and finishes it (through the store, as the dispatcher would)."""
    claimed = await ctx.store.jobs.claim_next("slave-1", [job.image])
    assert claimed is not None and claimed.id == job.id
    await ctx.store.jobs.start(job.id, claimed.lease)
    result = JobResult(
        job_id=job.id, lease=claimed.lease, outcome=Outcome.PASSED, isolation="tcg", last_seq=0
    )
    await ctx.store.jobs.finish(job.id, claimed.lease, result)


def late_counts(ctx: FeedContext) -> dict[str, float]:
    counter = ctx.metrics.counter("feed_late_files_total", "", ("how",))
    return {how: counter.value(how) for how in ("covered", "updated", "queued")}


def macos_copy(wheel: Path, dest_dir: Path) -> Path:
    """A wheel for macOS only (other bytes, so another sha256) of the same release."""
    name = wheel.name.replace("-none-any.whl", "-none-macosx_11_0_arm64.whl")
    dest_dir.mkdir(parents=True, exist_ok=True)
    copy = dest_dir / name
    shutil.copy(wheel, copy)
    with zipfile.ZipFile(copy, "a") as zf:
        zf.writestr("macos.txt", "built on a Mac")
    return copy


@pytest.mark.parametrize("first", ["sdist", "wheel"])
async def test_late_files_after_the_job_ran_get_exactly_one_more_job(
    tmp_path: Path, srv: FakePyPI, first: str
) -> None:
    """sdist first (or wheel first), tested; the other file later: one more feed job with both,
    and neither more polls nor a restart queue another."""
    proj = project(tmp_path)
    assert proj.sdist is not None and proj.wheel is not None
    early, late = (proj.sdist, proj.wheel) if first == "sdist" else (proj.wheel, proj.sdist)
    early_dist = srv.add(early, published=T)
    config = late_config(tmp_path, srv)
    async with feed_context(config) as ctx:
        watcher = FeedWatcher(ctx)
        (report,) = await watcher.poll_once()
        assert report.queued == ["demo==1.0"]
        (job,) = await jobs(ctx)
        assert shas(job) == {early_dist.sha256}
        await run_job(ctx, job)
        await recheck_more(watcher, ctx, 1)  # nothing new yet: no job
        assert len(await jobs(ctx)) == 1
        late_dist = srv.add(late, published=T + 60)
        with capture_logs() as logs:

            async def two_jobs() -> bool:
                return len(await jobs(ctx)) == 2

            await poll_until(watcher, ctx, two_jobs)
        await recheck_more(watcher, ctx, 2)  # further re-checks find nothing new
        found = await jobs(ctx)
        counts = late_counts(ctx)
        kicks = ctx.scheduler.kicks
    assert len(srv.requests_for("/rss/updates.xml")) >= 4
    assert [j.state for j in found] == [JobState.FINISHED, JobState.QUEUED]
    again = found[1]
    assert (again.project, again.version, again.source) == ("demo", "1.0", "feed")
    assert shas(again) == {early_dist.sha256, late_dist.sha256}
    assert counts == {"covered": 0, "updated": 0, "queued": 1}
    assert kicks == 2
    (event,) = [e for e in logs if e["event"] == "release_late_files"]
    assert event["how"] == "queued" and event["new_files"] == [late.name]
    async with feed_context(config) as ctx:  # the master restarts
        watcher = FeedWatcher(ctx)
        await recheck_more(watcher, ctx, 1)
        assert [j.id for j in await jobs(ctx)] == [j.id for j in found]
        assert ctx.scheduler.kicks == 0


async def test_wheels_uploaded_while_the_job_is_queued_join_that_job(
    tmp_path: Path, srv: FakePyPI
) -> None:
    """A job not yet taken by a slave gets the late wheel added to its files; no second job."""
    proj = project(tmp_path)
    assert proj.sdist is not None and proj.wheel is not None
    sdist = srv.add(proj.sdist, published=T)
    async with feed_context(late_config(tmp_path, srv)) as ctx:
        watcher = FeedWatcher(ctx)
        await watcher.poll_once()
        wheel = srv.add(proj.wheel, published=T + 60)

        async def updated() -> bool:
            (job,) = await jobs(ctx)
            return len(job.files) == 2

        await poll_until(watcher, ctx, updated)
        await recheck_more(watcher, ctx, 2)
        (job,) = await jobs(ctx)
        counts = late_counts(ctx)
    assert job.state is JobState.QUEUED
    assert shas(job) == {sdist.sha256, wheel.sha256}
    assert {f["url"] for f in job.files} == {
        f"{srv.base_url}/files/{proj.sdist.name}",
        f"{srv.base_url}/files/{proj.wheel.name}",
    }
    assert counts == {"covered": 0, "updated": 1, "queued": 0}


async def test_a_wheel_no_linux_guest_installs_queues_nothing(
    tmp_path: Path, srv: FakePyPI
) -> None:
    """A late macOS wheel is remembered but queues no job; a late Linux wheel then does."""
    proj = project(tmp_path)
    assert proj.sdist is not None and proj.wheel is not None
    srv.add(proj.sdist, published=T)
    async with feed_context(late_config(tmp_path, srv)) as ctx:
        watcher = FeedWatcher(ctx)
        await watcher.poll_once()
        (job,) = await jobs(ctx)
        await run_job(ctx, job)
        mac: DistFile = srv.add(macos_copy(proj.wheel, tmp_path / "mac"), published=T + 30)

        async def mac_known() -> bool:
            return mac.sha256 in (await tracked(ctx)).files

        await poll_until(watcher, ctx, mac_known)
        await recheck_more(watcher, ctx, 1)
        after_mac = len(await jobs(ctx))
        linux = srv.add(proj.wheel, published=T + 60)

        async def two_jobs() -> bool:
            return len(await jobs(ctx)) == 2

        await poll_until(watcher, ctx, two_jobs)
        found = await jobs(ctx)
    assert after_mac == 1
    assert linux.sha256 in shas(found[1]) and mac.sha256 in shas(found[1])


async def test_recheck_interrupted_before_it_was_recorded_queues_no_second_job(
    tmp_path: Path, srv: FakePyPI
) -> None:
    """A kill between queueing the late files and recording them: the re-check, done again
    after the restart, finds the feed job covering them and queues nothing."""
    proj = project(tmp_path)
    assert proj.sdist is not None and proj.wheel is not None
    sdist = srv.add(proj.sdist, published=T)
    config = late_config(tmp_path, srv)
    async with feed_context(config) as ctx:
        watcher = FeedWatcher(ctx)
        await watcher.poll_once()
        (job,) = await jobs(ctx)
        await run_job(ctx, job)
        srv.add(proj.wheel, published=T + 60)

        async def two_jobs() -> bool:
            return len(await jobs(ctx)) == 2

        await poll_until(watcher, ctx, two_jobs)
    # What an interruption right after store.jobs.submit_files leaves: the release's
    # recorded files are still the old ones and its re-check is due.
    with sqlite3.connect(config.db_path) as db:
        db.execute(
            "UPDATE releases SET files = ?, recheck_at = 0 WHERE project = 'demo'",
            (json.dumps([sdist.sha256]),),
        )
    async with feed_context(config) as ctx:
        watcher = FeedWatcher(ctx)
        assert (await tracked(ctx)).files == {sdist.sha256}
        await recheck_more(watcher, ctx, 1)
        found = await jobs(ctx)
        counts = late_counts(ctx)
        kicks = ctx.scheduler.kicks
    assert len(found) == 2
    assert counts == {"covered": 1, "updated": 0, "queued": 0}
    assert kicks == 0


async def test_rechecks_are_batched_longest_overdue_first(tmp_path: Path, srv: FakePyPI) -> None:
    """At most late_files_batch JSON look-ups per round; what is due waits its turn."""
    names = [f"p{i}" for i in range(5)]
    for i, name in enumerate(names):
        dists = project(tmp_path, name)
        assert dists.sdist is not None
        srv.add(dists.sdist, published=T + i)
    config = late_config(tmp_path, srv, late_files_batch=2, late_files_first=0.05)
    async with feed_context(config) as ctx:
        watcher = FeedWatcher(ctx)
        await watcher.poll_once()
        assert len(await jobs(ctx)) == 5
        await asyncio.sleep(0.1)  # all five are due now; once re-checked, not for 0.2 s
        lookups = []
        for _ in range(3):
            before = srv.count("/pypi/")
            await watcher.poll_once()
            lookups.append(srv.count("/pypi/") - before)
        rechecks = [(await tracked(ctx, n)).rechecks for n in names]
    assert lookups == [2, 2, 1]
    assert rechecks == [1] * 5  # each got its turn, none was looked at twice


async def test_rechecks_stop_at_the_end_of_the_window(tmp_path: Path, srv: FakePyPI) -> None:
    """After late_files_window a release is not looked up any more (window 0: never)."""
    proj = project(tmp_path)
    assert proj.sdist is not None
    srv.add(proj.sdist, published=T)
    async with feed_context(late_config(tmp_path, srv, late_files_window=0.3)) as ctx:
        watcher = FeedWatcher(ctx)
        await watcher.poll_once()
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            await watcher.poll_once()
            await asyncio.sleep(0.02)
        settled = srv.json_count("demo", "1.0")
        for _ in range(3):
            await asyncio.sleep(0.05)
            await watcher.poll_once()
        final = await tracked(ctx)
    assert 2 <= settled <= 8  # queued, then a few re-checks, the last one at the window's end
    assert srv.json_count("demo", "1.0") == settled
    assert final.rechecks == settled - 1


async def test_window_zero_turns_rechecks_off(tmp_path: Path, srv: FakePyPI) -> None:
    """With late_files_window = 0 a queued release is looked up once, never again."""
    proj = project(tmp_path)
    assert proj.sdist is not None and proj.wheel is not None
    srv.add(proj.sdist, published=T)
    async with feed_context(late_config(tmp_path, srv, late_files_window=0)) as ctx:
        watcher = FeedWatcher(ctx)
        await watcher.poll_once()
        srv.add(proj.wheel, published=T + 60)
        for _ in range(5):
            await asyncio.sleep(0.02)
            await watcher.poll_once()
        (job,) = await jobs(ctx)
    assert srv.json_count("demo", "1.0") == 1
    assert len(job.files) == 1


async def test_a_release_no_image_can_test_is_not_rechecked(tmp_path: Path, srv: FakePyPI) -> None:
    """A release stored incomplete at once (no image's Python fits) is never looked up again."""
    dists = make_project(tmp_path / "new", "new-py", "1.0", requires_python=">=3.99")
    assert dists.sdist is not None and dists.wheel is not None
    srv.add(dists.sdist, published=T)
    async with feed_context(late_config(tmp_path, srv)) as ctx:
        ctx.images = ImageCatalogue({"bookworm": "3.11"}, "bookworm")
        watcher = FeedWatcher(ctx)
        await watcher.poll_once()
        srv.add(dists.wheel, published=T + 60)
        for _ in range(5):
            await asyncio.sleep(0.02)
            await watcher.poll_once()
        (job,) = await jobs(ctx)
    assert job.outcome == "incomplete"
    assert srv.json_count("new-py", "1.0") == 1
