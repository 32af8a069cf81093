"""`Intake`: feed entries in, jobs out — seen-set, filters, JSON API, submit, retries.

Per release::

    seen? ─▶ name filters ─▶ JSON API ─┬─ 404 / error ─▶ pending (retry with backoff,
                                       │                 bounded; then dropped, loudly)
                                       └─ release ─▶ yanked / no files / too large?
                                                    ─▶ submit ─▶ mark seen ─▶ kick

The seen-set also keeps the files the job was given and when to look for files
uploaded later (`master.feed.late` does that). Exactly once: the seen-set is
written right after the job is submitted, and ``store.jobs.submit`` itself
dedupes (project, version, image), so an interruption between the two
re-submits into the same job on the next poll. A pending entry leaves the
cursor only at a final outcome (queued, filtered, dropped), so a failure
halfway keeps it for the next retry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TypeVar

import structlog

from master.errors import MasterError
from master.feed.backoff import Backoff
from master.feed.context import WatcherContext
from master.feed.errors import FeedError
from master.feed.fileset import job_digests
from master.feed.instruments import FeedMetrics
from master.feed.items import FeedEntry
from master.feed.late import LateFiles
from master.feed.resolve import Resolver
from master.feed.settings import FeedSettings
from master.feed.state import FeedRun, Pending, PollReport
from master.jobs import JobRequest
from master.pypi import Release

log = structlog.get_logger(__name__)
T = TypeVar("T")

#: seconds of slack between feed pubDates and JSON API upload times in a backfill
_BACKFILL_SLACK = 300.0


class Intake:
    """Turns the entries of one poll (or due retries) into queued jobs."""

    def __init__(
        self,
        ctx: WatcherContext,
        settings: FeedSettings,
        metrics: FeedMetrics,
        resolver: Resolver,
        late: LateFiles,
        limit: asyncio.Semaphore,
    ) -> None:
        self._ctx = ctx
        self._settings = settings
        self._metrics = metrics
        self._resolver = resolver
        self._late = late
        self._retry_backoff = Backoff(settings.resolve_retry_initial, settings.resolve_retry_max)
        self._limit = limit  # shared with the late-files re-checks
        self._inflight: set[str] = set()

    # ------------------------------------------------------------- public ----

    async def process(self, feed: FeedRun, entries: list[FeedEntry], report: PollReport) -> None:
        """Queue what is new in one poll's ``entries``; update the feed's cursor.

        Store failures are logged per item and leave the item for the next poll.
        Cancel-safe: whatever was done is consistent (module docstring); the
        cursor is only saved by the caller once this returns.
        """
        previous = set(feed.cursor.keys)
        if previous and entries and previous.isdisjoint(e.key for e in entries):
            # PyPI's feeds hold the last N items only: no overlap means more than N
            # releases happened since the last poll and some were never shown to us.
            report.gap = True
            self._metrics.gaps.inc()
            oldest = min((e.published for e in entries if e.published is not None), default=None)
            log.warning(
                "feed_gap", url=feed.url, previous_newest=feed.cursor.newest, oldest_now=oldest
            )
            await self._backfill(feed, entries, previous, report)
        # Oldest first, so an interrupted poll leaves the newest part for next time.
        ordered = sorted(entries, key=lambda e: e.published or 0.0)
        handled = await self._each(ordered, lambda e: self._consider(feed, e, previous, report))
        feed.cursor.keys = [e.key for e, ok in zip(ordered, handled, strict=True) if ok]
        newest = max((e.published for e in entries if e.published is not None), default=None)
        if newest is not None:
            # A pubDate in the future would stall the lag metric and every backfill.
            newest = min(newest, time.time())
        if newest is not None and (feed.cursor.newest is None or newest > feed.cursor.newest):
            feed.cursor.newest = newest
        feed.dirty = True
        self._metrics.processed(feed.url, feed.cursor.newest)

    async def retry_due(self, feed: FeedRun) -> None:
        """Retry the pending entries of ``feed`` whose time has come."""
        now = time.time()
        due = [p for p in feed.cursor.pending.values() if p.next_at <= now]
        if not due:
            return
        for p in due:
            # Pushed back before trying: if the attempt fails unexpectedly (the store),
            # the entry waits its backoff instead of being retried on every tick.
            p.next_at = now + self._retry_backoff.delay_for(p.attempts + 1)
        feed.dirty = True
        report = PollReport(feed.url)

        async def retry(p: Pending) -> None:
            entry = p.entry
            if entry.version is None:
                await self._new_project(feed, entry, p.attempts, report)
            elif await self._ctx.store.feed.release_seen(entry.project, entry.version):
                self._settle(feed, entry)  # queued meanwhile through another feed
            else:
                await self._release(feed, entry, p.attempts, report)

        await self._each(due, retry)

    # ------------------------------------------------------------ releases ----

    async def _each(self, items: Sequence[T], fn: Callable[[T], Awaitable[None]]) -> list[bool]:
        """Run ``fn`` on every item, ``resolve_concurrency`` at a time.

        Returns, per item, whether it completed; a failure of the master itself
        (the store) is logged and counted, and leaves that item for later.
        """

        async def one(item: T) -> bool:
            async with self._limit:
                try:
                    await fn(item)
                except MasterError as exc:
                    self._metrics.errors.inc(1, "store")
                    log.error("feed_item_failed", item=str(item), error=str(exc))
                    return False
                return True

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(item)) for item in items]
        return [t.result() for t in tasks]

    async def _consider(
        self, feed: FeedRun, entry: FeedEntry, previous: set[str], report: PollReport
    ) -> None:
        if entry.key in feed.cursor.pending or entry.key in self._inflight:
            return  # the retry path owns it
        if entry.version is None:
            if entry.key not in previous:  # looked up already when it was first listed
                await self._new_project(feed, entry, 0, report)
            return
        if await self._ctx.store.feed.release_seen(entry.project, entry.version):
            return
        self._metrics.seen.inc()
        await self._release(feed, entry, 0, report)

    async def _new_project(
        self, feed: FeedRun, entry: FeedEntry, attempts: int, report: PollReport
    ) -> None:
        """An "added to PyPI" item: find the project's newest version, then as a release."""
        reason = self._settings.name_excluded(entry.project)
        if reason is not None:
            await self._filtered(feed, entry, reason, report)
            return
        try:
            found = await self._resolver.project(entry.project)
        except FeedError as exc:
            await self._defer(feed, entry, attempts, str(exc), report, kind=exc.kind)
            return
        if found is None:
            await self._defer(feed, entry, attempts, "project not in the JSON API yet", report)
            return
        self._settle(feed, entry)
        release = replace(entry, version=found.newest)
        assert release.version is not None
        if release.key in feed.cursor.pending or release.key in self._inflight:
            return
        if await self._ctx.store.feed.release_seen(release.project, release.version):
            return
        self._metrics.seen.inc()
        await self._release(feed, release, 0, report)

    async def _release(
        self, feed: FeedRun, entry: FeedEntry, attempts: int, report: PollReport
    ) -> None:
        """Resolve, filter and queue one release; defer it while the JSON API lags."""
        assert entry.version is not None
        self._inflight.add(entry.key)
        try:
            reason = self._settings.name_excluded(entry.project)
            if reason is not None:
                await self._filtered(feed, entry, reason, report)
                return
            try:
                release = await self._resolver.release(entry.project, entry.version)
            except FeedError as exc:
                await self._defer(feed, entry, attempts, str(exc), report, kind=exc.kind)
                return
            if release is None:
                await self._defer(feed, entry, attempts, "release not in the JSON API yet", report)
                return
            reason = self._release_excluded(release)
            if reason is not None:
                await self._filtered(feed, entry, reason, report)
                return
            await self._queue(feed, entry, release, report)
        finally:
            self._inflight.discard(entry.key)

    def _release_excluded(self, release: Release) -> str | None:
        if release.yanked:
            return "yanked"
        if not release.files:
            return "no_files"
        limit = self._settings.max_file_size
        if limit is not None and release.largest_file > limit:
            return "too_large"
        return None

    # ------------------------------------------------------------ outcomes ----

    def _settle(self, feed: FeedRun, entry: FeedEntry) -> None:
        """``entry`` reached a final outcome: it is no longer pending."""
        if feed.cursor.pending.pop(entry.key, None) is not None:
            feed.dirty = True

    async def _queue(
        self, feed: FeedRun, entry: FeedEntry, release: Release, report: PollReport
    ) -> None:
        assert entry.version is not None
        choice = self._ctx.images.choose(release.requires_python, None, release.python_minors)
        request = JobRequest(
            # PyPI's spelling, as the HTTP API submits it, so both dedupe together.
            project=release.name,
            version=release.version,
            files=[f.to_dict() for f in release.files],
            image=choice.image,
            priority=self._settings.priority,
            source="feed",
            untestable=choice.untestable,
        )
        result = await self._ctx.store.jobs.submit(request)
        # Marked after the job exists: if we are interrupted in between, the next
        # poll submits again and submit returns the same job (created=False). The
        # files are the job's (what will be tested), looked at again later for files
        # uploaded since (``master.feed.late``).
        await self._ctx.store.feed.mark_release_seen(
            entry.project,
            entry.version,
            "feed",
            files=job_digests(result.job.files),
            # No image can run it: files uploaded later would change nothing.
            recheck_at=None if choice.untestable else self._late.first_recheck(time.time()),
        )
        self._settle(feed, entry)
        fields = {"project": release.name, "version": release.version, "job_id": result.job.id}
        if not result.created:
            log.info("release_already_queued", **fields)
            return
        self._metrics.queued.inc()
        report.queued.append(entry.key)
        if choice.untestable is not None:
            log.info("release_untestable", reason=choice.untestable, **fields)
            return
        log.info("release_queued", files=len(release.files), **fields)
        self._ctx.scheduler.kick()

    async def _filtered(
        self, feed: FeedRun, entry: FeedEntry, reason: str, report: PollReport
    ) -> None:
        if entry.version is not None:
            await self._ctx.store.feed.mark_release_seen(entry.project, entry.version, "feed")
        self._settle(feed, entry)
        self._metrics.filtered.inc(1, reason)
        report.filtered += 1
        log.info("release_filtered", project=entry.project, version=entry.version, reason=reason)

    async def _defer(
        self,
        feed: FeedRun,
        entry: FeedEntry,
        attempts: int,
        why: str,
        report: PollReport,
        *,
        kind: str | None = None,
    ) -> None:
        """Retry ``entry`` later with backoff, or give up after ``resolve_retries``."""
        attempts += 1
        if kind is not None:
            self._metrics.errors.inc(1, f"resolve_{kind}")
        if attempts > self._settings.resolve_retries:
            await self._give_up(feed, entry, attempts, why)
            return
        delay = self._retry_backoff.delay_for(attempts)
        evicted = feed.cursor.add_pending(Pending(entry, attempts, time.time() + delay))
        feed.dirty = True
        report.pending += 1
        log.info(
            "release_pending",
            project=entry.project,
            version=entry.version,
            attempt=attempts,
            retry_in=round(delay, 2),
            reason=why,
        )
        if evicted is not None:
            await self._give_up(feed, evicted.entry, evicted.attempts, "too many pending releases")

    async def _give_up(self, feed: FeedRun, entry: FeedEntry, attempts: int, why: str) -> None:
        self._metrics.errors.inc(1, "resolve_gave_up")
        log.error(
            "release_dropped",
            project=entry.project,
            version=entry.version,
            attempts=attempts,
            reason=why,
        )
        if entry.version is not None:
            # Seen, so that it is not retried from scratch while it stays in the feed.
            await self._ctx.store.feed.mark_release_seen(entry.project, entry.version, "feed")
        self._settle(feed, entry)

    # ------------------------------------------------------------ backfill ----

    async def _backfill(
        self, feed: FeedRun, entries: list[FeedEntry], previous: set[str], report: PollReport
    ) -> None:
        """After a gap: releases of the projects we know of, uploaded since the cursor.

        PyPI's RSS cannot be paged, so releases of projects that appear in neither
        the previous nor this poll are lost to the feed (documented in docs/feed.md).
        """
        since = feed.cursor.newest
        if since is None:
            log.warning("feed_backfill_skipped", url=feed.url, reason="no previous pubDate")
            return
        names = [k.split("==", 1)[0] for k in sorted(previous)] + [e.project for e in entries]
        projects = [p for p in dict.fromkeys(names) if self._settings.name_excluded(p) is None]
        projects = projects[: self._settings.gap_backfill_max_projects]
        current = {e.key for e in entries}
        found: list[FeedEntry] = []

        async def look(project: str) -> None:
            try:
                releases = await self._resolver.project(project)
            except FeedError as exc:
                self._metrics.errors.inc(1, f"resolve_{exc.kind}")
                log.warning("feed_backfill_failed", project=project, error=str(exc))
                return
            for version, uploaded in (releases.uploaded if releases else {}).items():
                candidate = FeedEntry(project, version, uploaded)
                # The seen-set removes whatever the slack lets in twice.
                recent = uploaded is not None and uploaded >= since - _BACKFILL_SLACK
                if recent and candidate.key not in current:
                    found.append(candidate)

        await self._each(projects, look)
        log.info("feed_backfill", url=feed.url, projects=len(projects), candidates=len(found))
        await self._each(found, lambda e: self._consider(feed, e, set(), report))
