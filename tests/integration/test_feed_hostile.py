"""Broken, hostile, slow and failing feeds are logged, counted and backed off; nothing crashes."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from master.feed import FeedWatcher
from tests.fakes.feeds import (
    BILLION_LAUGHS,
    FeedContext,
    external_entity,
    feed_config,
    feed_context,
    release_item,
    rss,
)
from tests.fakes.pypi import FakePyPI

T = time.time() - 3600


@pytest.fixture
async def srv() -> AsyncIterator[FakePyPI]:
    async with FakePyPI() as feeds:
        feeds.add_release("good", "1.0", uploaded=T)
        yield feeds


GOOD = rss([release_item("good", "1.0", at=T)])


def errors(ctx: FeedContext, kind: str) -> float:
    return ctx.metrics.counter("feed_errors_total", "", ("kind",)).value(kind)


async def job_count(ctx: FeedContext) -> int:
    return len(await ctx.store.jobs.find())


def _malformed(_: Path, srv: FakePyPI) -> None:
    srv.set_feed("updates", GOOD[: len(GOOD) // 2], etag='"bad"')


def _bomb(_: Path, srv: FakePyPI) -> None:
    srv.set_feed("updates", BILLION_LAUGHS, etag='"bad"')


def _xxe(tmp_path: Path, srv: FakePyPI) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t")
    srv.set_feed("updates", external_entity(secret), etag='"bad"')


def _html(_: Path, srv: FakePyPI) -> None:
    srv.set_feed("updates", b"<html><body>maintenance</body></html>", etag='"bad"')


def _huge(_: Path, srv: FakePyPI) -> None:
    srv.faults.huge("/rss/updates.xml", 50 << 20, content_length=False)


@pytest.mark.parametrize(
    ("serve", "kind"),
    [
        (_malformed, "malformed"),
        (_bomb, "forbidden_dtd"),
        (_xxe, "forbidden_dtd"),
        (_html, "not_rss"),
        (_huge, "too_large"),
    ],
    ids=["malformed", "billion-laughs", "external-entity", "not-rss", "huge-50MB"],
)
async def test_hostile_feed_is_rejected_then_recovery_works(
    tmp_path: Path,
    srv: FakePyPI,
    serve: Callable[[Path, FakePyPI], None],
    kind: str,
) -> None:
    """A hostile document is an error logged and counted by kind; once fixed, polling resumes."""
    serve(tmp_path, srv)
    async with feed_context(feed_config(tmp_path, srv, max_feed_bytes=1 << 20)) as ctx:
        watcher = FeedWatcher(ctx)
        with capture_logs() as logs:
            (report,) = await watcher.poll_once()
        assert not report.ok
        assert errors(ctx, kind) == 1
        assert await job_count(ctx) == 0
        (event,) = [e for e in logs if e["event"] == "feed_rejected"]
        assert event["log_level"] == "error" and event["kind"] == kind
        srv.set_feed("updates", GOOD, etag='"good"')
        (report,) = await watcher.poll_once()
        assert report.ok and report.queued == ["good==1.0"]
    if kind == "too_large":
        assert srv.sent_bytes("/rss/updates.xml") < 20 << 20


async def test_rejected_feed_keeps_old_validators(tmp_path: Path, srv: FakePyPI) -> None:
    """A rejected document does not replace the validators: the next GET is not a false 304."""
    srv.set_feed("updates", GOOD, etag='"v1"')
    async with feed_context(feed_config(tmp_path, srv)) as ctx:
        watcher = FeedWatcher(ctx)
        await watcher.poll_once()
        srv.set_feed("updates", b"<rss><channel><item>", etag='"v2"')
        await watcher.poll_once()
        srv.set_feed("updates", GOOD, etag='"v2"')
        (report,) = await watcher.poll_once()
    assert srv.requests_for("/rss/updates.xml")[2].headers["If-None-Match"] == '"v1"'
    assert not report.not_modified


async def test_bad_items_are_skipped_and_the_rest_queued(tmp_path: Path, srv: FakePyPI) -> None:
    """Items with a lying link, no version or no title are counted; good items still queue."""
    body = rss(
        [
            release_item("good", "1.0", at=T),
            release_item("liar", "1.0", at=T, link="https://pypi.org/project/liar/6.6.6/"),
            "<item><title>noversion</title><link>https://pypi.org/project/noversion/1/</link></item>",
            "<item><link>https://pypi.org/project/notitle/1/</link></item>",
        ]
    )
    srv.set_feed("updates", body)
    async with feed_context(feed_config(tmp_path, srv)) as ctx:
        with capture_logs() as logs:
            (report,) = await FeedWatcher(ctx).poll_once()
        assert errors(ctx, "bad_item") == 3
    assert report.ok and report.queued == ["good==1.0"]
    assert len([e for e in logs if e["event"] == "feed_item_rejected"]) == 3


async def test_slow_feed_times_out_without_blocking(tmp_path: Path, srv: FakePyPI) -> None:
    """A feed slower than the timeout fails fast as a timeout; the next poll works."""
    srv.set_feed("updates", GOOD)
    srv.faults.slow["/rss/updates.xml"] = 30.0
    async with feed_context(feed_config(tmp_path, srv, timeout=0.3)) as ctx:
        watcher = FeedWatcher(ctx)
        started = time.monotonic()
        (report,) = await watcher.poll_once()
        assert time.monotonic() - started < 2.0
        assert not report.ok and errors(ctx, "timeout") == 1
        srv.faults.slow["/rss/updates.xml"] = 0.0
        (report,) = await watcher.poll_once()
    assert report.queued == ["good==1.0"]


async def test_server_errors_back_off_exponentially_then_recover(
    tmp_path: Path, srv: FakePyPI
) -> None:
    """run() retries a failing feed with growing jittered delays, then queues once it recovers."""
    srv.set_feed("updates", GOOD)
    srv.faults.fail("/rss/updates.xml", 500, times=3)
    config = feed_config(tmp_path, srv, interval=30.0, backoff_initial=0.1, backoff_max=1.0)
    async with feed_context(config) as ctx:
        with capture_logs() as logs:
            task = asyncio.create_task(FeedWatcher(ctx).run())
            async with asyncio.timeout(10):
                await ctx.scheduler.wait_kicks(1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert errors(ctx, "http_status") == 3
        assert ctx.scheduler.kicks == 1
    reqs = srv.requests_for("/rss/updates.xml")
    assert [r.status for r in reqs] == [500, 500, 500, 200]
    waits = [b.at - a.at for a, b in itertools.pairwise(reqs)]
    # Equal jitter: the n-th delay is within [b/2, b], b = 0.1 * 2**(n-1).
    assert 0.05 <= waits[0] <= 0.1 + 0.1
    assert 0.1 <= waits[1] <= 0.2 + 0.1
    assert 0.2 <= waits[2] <= 0.4 + 0.1
    failures = [e for e in logs if e["event"] == "feed_fetch_failed"]
    assert [e["log_level"] for e in failures] == ["warning"] * 3


async def test_run_polls_at_the_interval_and_stops_cleanly_on_cancel(
    tmp_path: Path, srv: FakePyPI
) -> None:
    """run() polls again every interval (304s) and a cancel mid-request ends it promptly."""
    srv.set_feed("updates", GOOD, etag='"v1"')
    async with feed_context(feed_config(tmp_path, srv, interval=0.05)) as ctx:
        task = asyncio.create_task(FeedWatcher(ctx).run())
        async with asyncio.timeout(5):
            await srv.wait_for_request("/rss/updates.xml", 4)
        srv.faults.slow["/rss/updates.xml"] = 30.0  # the next request hangs: cancel it in flight
        async with asyncio.timeout(5):
            await srv.wait_for_request(
                "/rss/updates.xml", len(srv.requests_for("/rss/updates.xml")) + 1
            )
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 1.0
        assert await job_count(ctx) == 1
    assert {r.status for r in srv.requests_for("/rss/updates.xml")[1:-1]} == {304}
