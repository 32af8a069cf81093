"""The feed watcher against loopback feeds and JSON API, with a real SQLite store."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from master.config import MasterConfig
from master.feed import FeedWatcher
from master.jobs import PRIORITY_FEED, Job
from tests.fakes.feeds import (
    FeedContext,
    feed_config,
    feed_context,
    project_item,
    release_item,
    rss,
)
from tests.fakes.pypi import FakePyPI, default_files

T = time.time() - 3600  # pubDates an hour ago


@pytest.fixture
async def srv() -> AsyncIterator[FakePyPI]:
    async with FakePyPI() as feeds:
        yield feeds


async def jobs(ctx: FeedContext) -> list[Job]:
    return await ctx.store.jobs.find(limit=1000)


def keys(found: list[Job]) -> Counter[tuple[str, str]]:
    return Counter((j.project, j.version) for j in found)


def publish(
    srv: FakePyPI, releases: list[tuple[str, str]], *, etag: str, feed: str = "updates"
) -> None:
    """Serve ``releases`` (oldest first) as an updates feed and in the JSON API."""
    items = []
    for i, (name, version) in enumerate(releases):
        srv.add_release(name, version, uploaded=T + i)
        items.append(release_item(name, version, at=T + i))
    srv.set_feed(feed, rss(items[::-1]), etag=etag)


async def test_new_releases_are_queued_with_their_files(tmp_path: Path, srv: FakePyPI) -> None:
    """Each release in the feed becomes one queued feed job carrying the JSON API's files."""
    publish(srv, [("Foo.Bar", "1.0"), ("baz", "2.0")], etag='"v1"')
    async with feed_context(feed_config(tmp_path, srv)) as ctx:
        (report,) = await FeedWatcher(ctx).poll_once()
        found = await jobs(ctx)
    assert report.ok and report.items == 2
    assert sorted(report.queued) == ["baz==2.0", "foo-bar==1.0"]
    assert keys(found) == Counter({("Foo.Bar", "1.0"): 1, ("baz", "2.0"): 1})
    foo = next(j for j in found if j.project == "Foo.Bar")
    assert foo.source == "feed"
    assert foo.priority == PRIORITY_FEED
    assert foo.image == "bookworm"
    assert [f["sha256"] for f in foo.files] == [
        f["digests"]["sha256"] for f in default_files(srv.base_url, "Foo.Bar", "1.0")
    ]
    assert ctx.scheduler.kicks == 2


@pytest.mark.parametrize("redirect", [False, True])
async def test_mirror_with_relative_file_urls_gives_absolute_ones(
    tmp_path: Path, srv: FakePyPI, redirect: bool
) -> None:
    """A mirror's relative file URLs (from the versioned or the project document, after
    redirects) are queued absolute, as the slave will fetch them."""
    srv.relative_urls = True
    srv.redirect_json = redirect
    publish(srv, [("Foo.Bar", "1.0")], etag='"v1"')
    async with feed_context(feed_config(tmp_path, srv)) as ctx:
        await FeedWatcher(ctx).poll_once()
        srv.versioned_urls = False
        publish(srv, [("Foo.Bar", "1.0"), ("baz", "2.0")], etag='"v2"')
        await FeedWatcher(ctx).poll_once()
        found = await jobs(ctx)
    assert keys(found) == Counter({("Foo.Bar", "1.0"): 1, ("baz", "2.0"): 1})
    for job in found:
        assert job.files
        assert all(f["url"] == f"{srv.base_url}/files/{f['filename']}" for f in job.files)


async def test_unchanged_feed_is_a_304_and_queues_nothing(tmp_path: Path, srv: FakePyPI) -> None:
    """The second poll sends If-None-Match and If-Modified-Since, gets 304, queues nothing."""
    publish(srv, [("demo", "1.0")], etag='"v1"')
    srv.set_feed(
        "updates",
        rss([release_item("demo", "1.0", at=T)]),
        etag='"v1"',
        last_modified="Fri, 21 Nov 2025 16:00:00 GMT",
    )
    async with feed_context(feed_config(tmp_path, srv)) as ctx:
        watcher = FeedWatcher(ctx)
        await watcher.poll_once()
        (second,) = await watcher.poll_once()
        found = await jobs(ctx)
    assert second.not_modified
    first_req, second_req = srv.requests_for("/rss/updates.xml")
    assert "If-None-Match" not in first_req.headers
    assert second_req.headers["If-None-Match"] == '"v1"'
    assert second_req.headers["If-Modified-Since"] == "Fri, 21 Nov 2025 16:00:00 GMT"
    assert second_req.status == 304
    assert len(found) == 1
    assert srv.json_count("demo", "1.0") == 1


async def test_updated_feed_queues_only_the_new_releases(tmp_path: Path, srv: FakePyPI) -> None:
    """When the feed changes, releases already queued are not resolved or queued again."""
    publish(srv, [("a", "1"), ("b", "1")], etag='"v1"')
    async with feed_context(feed_config(tmp_path, srv)) as ctx:
        watcher = FeedWatcher(ctx)
        await watcher.poll_once()
        publish(srv, [("a", "1"), ("b", "1"), ("c", "1"), ("a", "2")], etag='"v2"')
        (report,) = await watcher.poll_once()
        found = await jobs(ctx)
    assert sorted(report.queued) == ["a==2", "c==1"]
    assert keys(found) == Counter({("a", "1"): 1, ("b", "1"): 1, ("c", "1"): 1, ("a", "2"): 1})
    assert srv.json_count("a", "1") == 1


async def test_restart_neither_requeues_nor_misses(tmp_path: Path, srv: FakePyPI) -> None:
    """After a restart on the same database, old releases stay queued once, new ones are queued."""
    config = feed_config(tmp_path, srv)
    publish(srv, [("a", "1"), ("b", "1")], etag='"v1"')
    async with feed_context(config) as ctx:
        await FeedWatcher(ctx).poll_once()
    publish(srv, [("a", "1"), ("b", "1"), ("c", "1")], etag='"v2"')
    async with feed_context(config) as ctx:
        (report,) = await FeedWatcher(ctx).poll_once()
        found = await jobs(ctx)
    assert report.queued == ["c==1"]
    assert keys(found) == Counter({("a", "1"): 1, ("b", "1"): 1, ("c", "1"): 1})
    # The validators were persisted: the first request after the restart was conditional.
    assert srv.requests_for("/rss/updates.xml")[1].headers["If-None-Match"] == '"v1"'


async def test_restart_with_unchanged_feed_is_a_304(tmp_path: Path, srv: FakePyPI) -> None:
    """A restarted watcher asks conditionally and queues nothing when the feed is unchanged."""
    config = feed_config(tmp_path, srv)
    publish(srv, [("a", "1")], etag='"v1"')
    async with feed_context(config) as ctx:
        await FeedWatcher(ctx).poll_once()
    async with feed_context(config) as ctx:
        (report,) = await FeedWatcher(ctx).poll_once()
        assert len(await jobs(ctx)) == 1
    assert report.not_modified


async def test_new_project_item_queues_its_newest_version_once(
    tmp_path: Path, srv: FakePyPI
) -> None:
    """A packages.xml item resolves to the newest version; updates.xml listing it adds nothing."""
    srv.add_release("Fresh", "0.1", uploaded=T)
    srv.add_release("Fresh", "0.2", uploaded=T + 5)
    srv.set_feed("packages", rss([project_item("Fresh", at=T)]), etag='"p1"')
    srv.set_feed("updates", rss([release_item("Fresh", "0.2", at=T + 5)]), etag='"u1"')
    config = feed_config(tmp_path, srv, feeds=("packages", "updates"))
    async with feed_context(config) as ctx:
        watcher = FeedWatcher(ctx)
        await watcher.poll_once()
        srv.set_feed("packages", rss([project_item("Fresh", at=T)]), etag='"p2"')
        await watcher.poll_once()
        found = await jobs(ctx)
    assert keys(found) == Counter({("Fresh", "0.2"): 1})
    # Listed twice in packages.xml, looked up once.
    assert srv.json_count("fresh") == 1


async def test_new_project_unknown_to_json_api_is_retried(tmp_path: Path, srv: FakePyPI) -> None:
    """A new project whose JSON is not there yet stays pending and is queued once it is."""
    srv.add_release("brand-new", "0.1", uploaded=T)
    srv.faults.hide("brand-new", None, times=1)
    srv.set_feed("packages", rss([project_item("brand-new", at=T)]), etag='"p1"')
    async with feed_context(feed_config(tmp_path, srv, feeds=("packages",))) as ctx:
        watcher = FeedWatcher(ctx)
        (first,) = await watcher.poll_once()
        assert first.pending == 1
        async with asyncio.timeout(5):
            while ctx.scheduler.kicks == 0:
                await asyncio.sleep(0.02)  # retries run inside poll_once
                await watcher.poll_once()
        found = await jobs(ctx)
    assert keys(found) == Counter({("brand-new", "0.1"): 1})
    assert srv.json_count("brand-new") == 2


async def test_pending_release_queued_through_another_feed_is_not_fetched_again(
    tmp_path: Path, srv: FakePyPI
) -> None:
    """A release pending in one feed but queued via the other is settled without a lookup."""
    srv.add_release("x", "1.0", uploaded=T)
    srv.faults.hide("x", "1.0", times=1)
    srv.set_feed("updates", rss([release_item("x", "1.0", at=T)]), etag='"u1"')
    srv.set_feed("packages", rss([project_item("x", at=T)]), etag='"p1"')
    config = feed_config(tmp_path, srv, feeds=("updates", "packages"))
    async with feed_context(config) as ctx:
        watcher = FeedWatcher(ctx)
        updates, packages = await watcher.poll_once()
        assert updates.pending == 1 and packages.queued == ["x==1.0"]
        await asyncio.sleep(0.05)
        await watcher.poll_once()
        pending = ctx.metrics.gauge("feed_pending_releases", "").value()
        found = await jobs(ctx)
    assert keys(found) == Counter({("x", "1.0"): 1})
    assert srv.json_count("x", "1.0") == 2  # the 404 and the lookup via packages.xml
    assert pending == 0


async def test_store_failure_is_logged_counted_and_survived(tmp_path: Path, srv: FakePyPI) -> None:
    """If saving the feed state fails, the poll is counted as a store error; nothing is lost."""
    config = feed_config(tmp_path, srv)
    publish(srv, [("a", "1")], etag='"v1"')
    async with feed_context(config) as ctx:
        watcher = FeedWatcher(ctx)
        await watcher.poll_once()
        publish(srv, [("a", "1"), ("b", "1")], etag='"v2"')
        with sqlite3.connect(config.db_path) as db:  # pull the table from under the store
            db.execute("ALTER TABLE feed_state RENAME TO feed_state_away")
        with capture_logs() as logs:
            (report,) = await watcher.poll_once()
        assert ctx.metrics.counter("feed_errors_total", "", ("kind",)).value("store") == 1
        assert [e["log_level"] for e in logs if e["event"] == "feed_store_failed"] == ["error"]
        with sqlite3.connect(config.db_path) as db:
            db.execute("ALTER TABLE feed_state_away RENAME TO feed_state")
        await watcher.poll_once()
        state = await ctx.store.feed.get_state(srv.feed_url("updates"))
        found = await jobs(ctx)
    assert report.queued == ["b==1"]
    assert keys(found) == Counter({("a", "1"): 1, ("b", "1"): 1})
    assert state is not None and state.etag == '"v2"'


async def test_release_missing_from_json_api_is_retried_then_queued(
    tmp_path: Path, srv: FakePyPI
) -> None:
    """A 404 right after upload keeps the release pending and retries it until it resolves."""
    publish(srv, [("late", "1.0")], etag='"v1"')
    srv.faults.hide("late", "1.0", times=2)
    async with feed_context(feed_config(tmp_path, srv)) as ctx:
        watcher = FeedWatcher(ctx)
        (first,) = await watcher.poll_once()
        assert first.pending == 1 and first.queued == []
        for _ in range(20):
            await asyncio.sleep(0.03)
            await watcher.poll_once()
            if await jobs(ctx):
                break
        found = await jobs(ctx)
    assert keys(found) == Counter({("late", "1.0"): 1})
    assert srv.json_count("late", "1.0") == 3


async def test_run_retries_pending_releases_between_polls(tmp_path: Path, srv: FakePyPI) -> None:
    """run() wakes up for a due retry even when the next poll is far away."""
    publish(srv, [("late", "1.0")], etag='"v1"')
    srv.faults.hide("late", "1.0", times=2)
    config = feed_config(tmp_path, srv, interval=60.0)
    async with feed_context(config) as ctx:
        task = asyncio.create_task(FeedWatcher(ctx).run())
        try:
            async with asyncio.timeout(5):
                await ctx.scheduler.wait_kicks(1)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        found = await jobs(ctx)
    assert keys(found) == Counter({("late", "1.0"): 1})
    assert len(srv.requests_for("/rss/updates.xml")) == 1
    assert srv.json_count("late", "1.0") == 3


async def test_pending_release_survives_a_restart(tmp_path: Path, srv: FakePyPI) -> None:
    """A release still pending at shutdown is retried after a restart, even once off the feed."""
    # The retry must not fall due within the first poll (a slow poll on a loaded machine
    # did that with 0.01 s), only before the second.
    config = feed_config(tmp_path, srv, resolve_retry_initial=0.5, resolve_retry_max=0.5)
    publish(srv, [("anchor", "1.0"), ("late", "1.0")], etag='"v1"')
    srv.faults.hide("late", "1.0", times=1)
    async with feed_context(config) as ctx:
        await FeedWatcher(ctx).poll_once()
        assert keys(await jobs(ctx)) == Counter({("anchor", "1.0"): 1})
    # "late" has scrolled off the feed; "anchor" still overlaps, so this is no gap.
    publish(srv, [("anchor", "1.0"), ("other", "1.0")], etag='"v2"')
    await asyncio.sleep(0.55)
    async with feed_context(config) as ctx:
        (report,) = await FeedWatcher(ctx).poll_once()
        found = await jobs(ctx)
    assert not report.gap
    assert keys(found) == Counter({("anchor", "1.0"): 1, ("late", "1.0"): 1, ("other", "1.0"): 1})


async def test_retries_are_bounded_then_the_release_is_dropped_loudly(
    tmp_path: Path, srv: FakePyPI
) -> None:
    """After resolve_retries failures the release is logged as dropped and counted; no job."""
    publish(srv, [("ghost", "1.0")], etag='"v1"')
    srv.faults.hide("ghost", "1.0", times=1000)
    config = feed_config(tmp_path, srv, resolve_retries=2)
    async with feed_context(config) as ctx:
        watcher = FeedWatcher(ctx)
        with capture_logs() as logs:
            for _ in range(10):
                await watcher.poll_once()
                await asyncio.sleep(0.03)
        found = await jobs(ctx)
        seen = await ctx.store.feed.release_seen("ghost", "1.0")
        errors = ctx.metrics.counter("feed_errors_total", "", ("kind",)).value("resolve_gave_up")
    assert found == []
    assert seen
    assert errors == 1
    assert srv.json_count("ghost", "1.0") == 3
    dropped = [e for e in logs if e["event"] == "release_dropped"]
    assert len(dropped) == 1 and dropped[0]["log_level"] == "error"


async def test_filters_keep_releases_out_and_count_them(tmp_path: Path, srv: FakePyPI) -> None:
    """Excluded, unwatched, too-large and yanked releases are filtered once, by reason."""
    publish(srv, [("good", "1"), ("evil-pkg", "1"), ("big", "1"), ("gone", "1")], etag='"v1"')
    srv.add_release("big", "1", file_size=10_000, uploaded=T)
    srv.add_release("gone", "1", yanked=True, uploaded=T)
    config = feed_config(tmp_path, srv, exclude=["evil_*"], max_file_size=5_000)
    async with feed_context(config) as ctx:
        watcher = FeedWatcher(ctx)
        (report,) = await watcher.poll_once()
        srv.set_feed("updates", rss([release_item("big", "1", at=T + 9)]), etag='"v2"')
        await watcher.poll_once()  # a filtered release listed again is not looked up again
        found = await jobs(ctx)
        filtered = ctx.metrics.counter("feed_releases_filtered_total", "", ("reason",))
        counts = {r: filtered.value(r) for r in ("excluded", "too_large", "yanked")}
    assert keys(found) == Counter({("good", "1"): 1})
    assert report.filtered == 3
    assert counts == {"excluded": 1, "too_large": 1, "yanked": 1}
    assert srv.json_count("evil-pkg", "1") == 0  # name filters act before any lookup
    assert srv.json_count("big", "1") == 1


async def test_watch_only_queues_only_the_watch_list(tmp_path: Path, srv: FakePyPI) -> None:
    """With watch_only, only releases of watched projects are resolved and queued."""
    publish(srv, [("watched.pkg", "1"), ("other", "1")], etag='"v1"')
    config = feed_config(tmp_path, srv, watch_only=True, watch_list=["Watched_Pkg"])
    async with feed_context(config) as ctx:
        await FeedWatcher(ctx).poll_once()
        found = await jobs(ctx)
    assert keys(found) == Counter({("watched.pkg", "1"): 1})
    assert srv.json_count("other", "1") == 0


async def test_gap_is_logged_counted_and_backfilled_from_known_projects(
    tmp_path: Path, srv: FakePyPI
) -> None:
    """No overlap with the last poll is a gap; known projects' releases since then are queued."""
    publish(srv, [("a", "1.0"), ("b", "1.0")], etag='"v1"')
    async with feed_context(feed_config(tmp_path, srv)) as ctx:
        watcher = FeedWatcher(ctx)
        await watcher.poll_once()
        # While we were away: a 1.1 and many others scrolled by; now only c and d are listed.
        srv.add_release("a", "1.1", uploaded=T + 100)
        srv.add_release("c", "1.0", uploaded=T + 200)
        srv.add_release("d", "1.0", uploaded=T + 201)
        srv.set_feed(
            "updates",
            rss([release_item("d", "1.0", at=T + 201), release_item("c", "1.0", at=T + 200)]),
            etag='"v2"',
        )
        with capture_logs() as logs:
            (report,) = await watcher.poll_once()
        found = await jobs(ctx)
        gaps = ctx.metrics.counter("feed_gaps_total", "").value()
    assert report.gap
    assert gaps == 1
    assert next(e for e in logs if e["event"] == "feed_gap")["log_level"] == "warning"
    assert keys(found) == Counter(
        {("a", "1.0"): 1, ("b", "1.0"): 1, ("a", "1.1"): 1, ("c", "1.0"): 1, ("d", "1.0"): 1}
    )


async def test_overlapping_polls_are_not_gaps(tmp_path: Path, srv: FakePyPI) -> None:
    """A poll that shares at least one item with the previous one is not a gap."""
    publish(srv, [("a", "1"), ("b", "1")], etag='"v1"')
    async with feed_context(feed_config(tmp_path, srv)) as ctx:
        watcher = FeedWatcher(ctx)
        await watcher.poll_once()
        publish(srv, [("b", "1"), ("c", "1")], etag='"v2"')
        (report,) = await watcher.poll_once()
        assert ctx.metrics.counter("feed_gaps_total", "").value() == 0
    assert not report.gap


async def test_cancelled_poll_leaves_every_release_queued_exactly_once(
    tmp_path: Path, srv: FakePyPI
) -> None:
    """Cancelling a poll midway, then restarting, queues each release exactly once."""
    releases = [(f"p{i}", "1.0") for i in range(6)]
    publish(srv, releases, etag='"v1"')
    srv.faults.slow["/pypi/"] = 0.05
    config = feed_config(tmp_path, srv, resolve_concurrency=1)
    async with feed_context(config) as ctx:
        poll = asyncio.create_task(FeedWatcher(ctx).poll_once())
        async with asyncio.timeout(5):
            await ctx.scheduler.wait_kicks(2)
        poll.cancel()
        with pytest.raises(asyncio.CancelledError):
            await poll
        partial = len(await jobs(ctx))
    assert 2 <= partial < len(releases)
    srv.faults.slow["/pypi/"] = 0.0
    async with feed_context(config) as ctx:
        await FeedWatcher(ctx).poll_once()
        found = await jobs(ctx)
        seen = [await ctx.store.feed.release_seen(p, v) for p, v in releases]
    assert keys(found) == Counter({r: 1 for r in releases})
    assert all(seen)


async def test_metrics_show_seen_queued_lag_and_poll_time(tmp_path: Path, srv: FakePyPI) -> None:
    """Prometheus text has the feed counters, the lag behind the newest pubDate, poll timing."""
    publish(srv, [("a", "1"), ("b", "1")], etag='"v1"')
    async with feed_context(feed_config(tmp_path, srv)) as ctx:
        await FeedWatcher(ctx).poll_once()
        text = await ctx.metrics.render()
        lag = ctx.metrics.gauge("feed_lag_seconds", "", ("feed",)).value(srv.feed_url("updates"))
    assert "pyti_feed_releases_seen_total 2" in text
    assert "pyti_feed_releases_queued_total 2" in text
    assert "pyti_feed_poll_duration_seconds_count 1" in text
    newest = T + 1
    assert time.time() - newest - 5 <= lag <= time.time() - newest + 5


async def test_master_context_and_fake_pypi_feeds_work_end_to_end(tmp_path: Path) -> None:
    """With the real MasterContext and the shared FakePyPI's RSS, uploads become feed jobs."""
    from master.context import MasterContext

    async with FakePyPI() as pypi:
        pypi.add_project(tmp_path / "d1", "Demo.Pkg", "1.0", published=T)
        pypi.add_project(tmp_path / "d2", "other", "0.1", published=T + 1)
        config = MasterConfig(
            data_dir=tmp_path,
            db_path=tmp_path / "pyti.sqlite3",
            secret=b"s",
            tokens=frozenset(),
            feed_urls=(f"{pypi.base_url}/rss/updates.xml", f"{pypi.base_url}/rss/packages.xml"),
            pypi_url=pypi.base_url,
        )
        ctx = await MasterContext.open(config)
        try:
            reports = await FeedWatcher(ctx).poll_once()
            found = await ctx.store.jobs.find()
        finally:
            await ctx.close()
    assert [r.ok for r in reports] == [True, True]
    assert keys(found) == Counter({("Demo.Pkg", "1.0"): 1, ("other", "0.1"): 1})
    assert all(len(j.files) == 2 for j in found)
