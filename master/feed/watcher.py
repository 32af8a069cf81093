"""`FeedWatcher`: PyPI's RSS feeds in, one queued job per new release out.

One loop polls every configured feed when it is due (``interval`` after a
success, exponential backoff with jitter after a failure) and retries releases
the JSON API did not know yet. Per feed item::

    fetch (conditional GET, capped) ─▶ parse (worker thread, no DTDs) ─▶ interpret
      ─▶ seen-set? ─▶ name filters ─▶ JSON API ─▶ release filters ─▶ submit_job
      ─▶ mark seen ─▶ scheduler.kick()

Exactly once: the store's seen-set is written right after the job is submitted,
and ``submit_job`` itself dedupes (project, version, image), so an interruption
between the two steps re-submits into the existing job on the next poll. The
feed's validators and cursor are saved only after every item of a poll was dealt
with, so a cancelled poll is simply done again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import structlog

from master.errors import MasterError
from master.feed.backoff import Backoff
from master.feed.context import WatcherContext
from master.feed.errors import FeedError, FeedParseError, FetchError, ItemRejected
from master.feed.fetch import HttpClient, Validators, make_session
from master.feed.instruments import FeedMetrics
from master.feed.items import FeedEntry, interpret
from master.feed.parse import RawItem, parse_feed
from master.feed.resolve import Release, Resolver
from master.feed.settings import FeedSettings
from master.feed.state import FeedCursor, Pending
from master.jobs import FeedState, JobRequest

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class _Feed:
    """Runtime state of one feed: what is persisted plus its backoff and schedule."""

    url: str
    cursor: FeedCursor
    validators: Validators
    backoff: Backoff
    next_poll: float = 0.0  # monotonic
    dirty: bool = False


@dataclass(slots=True)
class PollReport:
    """What one poll of one feed did (returned by `poll_once`, logged as ``feed_polled``)."""

    url: str
    ok: bool = True
    not_modified: bool = False
    items: int = 0
    queued: list[str] = field(default_factory=list)
    filtered: int = 0
    pending: int = 0
    gap: bool = False


class FeedWatcher:
    """Polls PyPI's feeds and queues a low-priority job for each new release."""

    def __init__(self, ctx: WatcherContext, *, settings: FeedSettings | None = None) -> None:
        """Watch the feeds ``ctx.config`` names (or ``settings``, which then win).

        Raises `FeedConfigError` for a bad ``[feed]`` table. ``ctx`` is normally the
        `MasterContext`; only the members in `WatcherContext` are used.
        """
        self._ctx = ctx
        self.settings = settings = settings or FeedSettings.from_config(ctx.config)
        self._metrics = FeedMetrics(ctx.metrics)
        self._retry_backoff = Backoff(settings.resolve_retry_initial, settings.resolve_retry_max)
        self._feeds: dict[str, _Feed] = {}
        self._inflight: set[str] = set()
        self._http: HttpClient | None = None
        self._resolver: Resolver | None = None
        self._limit = asyncio.Semaphore(settings.resolve_concurrency)

    def __repr__(self) -> str:
        state = "running" if self._http is not None else "idle"
        return f"<FeedWatcher {state} feeds={len(self.settings.urls)} image={self.settings.image}>"

    # ------------------------------------------------------------- public ----

    async def run(self) -> None:
        """Poll until cancelled. Never returns otherwise.

        Feed, network, parse and JSON API failures are logged, counted and backed
        off; they never end the loop. A store failure while loading state at start
        propagates (the master cannot work without its store). Cancel-safe: a
        cancelled poll left the store consistent (see the module docstring) and
        the HTTP session is closed before the cancellation propagates.
        """
        async with self._session():
            while True:
                await self._tick(force=False)
                await asyncio.sleep(self._seconds_to_next())

    async def poll_once(self) -> list[PollReport]:
        """Poll every feed now (ignoring schedules and backoff) and retry due releases.

        Same guarantees as `run` for one round; opens its own HTTP session when
        `run` is not running.
        """
        if self._http is not None:
            return await self._tick(force=True)
        async with self._session():
            return await self._tick(force=True)

    # ------------------------------------------------------------ the loop ----

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[None]:
        async with make_session(self.settings.timeout) as session:
            self._http = HttpClient(session, timeout=self.settings.timeout)
            self._resolver = Resolver(
                self._http, self.settings.pypi_url, max_bytes=self.settings.max_json_bytes
            )
            try:
                await self._load()
                yield
            finally:
                self._http = self._resolver = None

    async def _load(self) -> None:
        for url in self.settings.urls:
            if url in self._feeds:
                continue
            state = await self._ctx.store.get_feed_state(url)
            cursor = FeedCursor.loads(state.cursor if state else None, url=url)
            validators = Validators(state.etag, state.last_modified) if state else Validators()
            backoff = Backoff(self.settings.backoff_initial, self.settings.backoff_max)
            self._feeds[url] = _Feed(url, cursor, validators, backoff)
            self._metrics.processed(url, cursor.newest)
        self._update_pending_gauge()

    def _seconds_to_next(self) -> float:
        now_mono, now = time.monotonic(), time.time()
        waits = [f.next_poll - now_mono for f in self._feeds.values()]
        waits += [p.next_at - now for f in self._feeds.values() for p in f.cursor.pending.values()]
        return max(0.05, min(waits, default=self.settings.interval))

    async def _tick(self, *, force: bool) -> list[PollReport]:
        reports = []
        for feed in self._feeds.values():
            if force or time.monotonic() >= feed.next_poll:
                reports.append(await self._poll(feed))
            await self._retry_due(feed)
            if feed.dirty:
                await self._save(feed)
        return reports

    async def _save(self, feed: _Feed) -> None:
        state = FeedState(
            cursor=feed.cursor.dumps(),
            etag=feed.validators.etag,
            last_modified=feed.validators.last_modified,
            updated_at=time.time(),
        )
        await self._ctx.store.set_feed_state(feed.url, state)
        feed.dirty = False
        self._update_pending_gauge()

    def _update_pending_gauge(self) -> None:
        self._metrics.pending.set(sum(len(f.cursor.pending) for f in self._feeds.values()))

    # ------------------------------------------------------------- polling ----

    async def _poll(self, feed: _Feed) -> PollReport:
        assert self._http is not None
        report = PollReport(feed.url)
        started = time.monotonic()
        try:
            doc = await self._http.get_feed(
                feed.url, feed.validators, max_bytes=self.settings.max_feed_bytes
            )
            raw = None if doc.body is None else await asyncio.to_thread(parse_feed, doc.body)
        except FeedError as exc:
            report.ok = False
            retry_after = exc.retry_after if isinstance(exc, FetchError) else None
            delay = feed.backoff.failure(retry_after)
            feed.next_poll = time.monotonic() + delay
            self._metrics.errors.inc(1, exc.kind)
            # A rejected document is an error (someone serves garbage or a bomb); a
            # failed fetch is a warning (networks fail).
            rejected = isinstance(exc, FeedParseError) or exc.kind == "too_large"
            level = log.error if rejected else log.warning
            event = "feed_rejected" if rejected else "feed_fetch_failed"
            level(event, url=feed.url, kind=exc.kind, error=str(exc), retry_in=round(delay, 2))
            return report
        finally:
            self._metrics.poll_duration.observe(time.monotonic() - started)
        feed.backoff.success()
        feed.next_poll = time.monotonic() + self.settings.interval
        if raw is None:
            report.not_modified = True
            log.debug("feed_not_modified", url=feed.url)
            return report
        entries = self._interpret(feed.url, raw)
        report.items = len(entries)
        await self._process(feed, entries, report)
        feed.validators = doc.validators
        feed.dirty = True
        log.info(
            "feed_polled",
            url=feed.url,
            items=report.items,
            queued=len(report.queued),
            filtered=report.filtered,
            pending=report.pending,
            gap=report.gap,
            duration_s=round(time.monotonic() - started, 3),
        )
        return report

    def _interpret(self, url: str, raw: Iterable[RawItem]) -> list[FeedEntry]:
        entries: dict[str, FeedEntry] = {}
        for item in raw:
            try:
                entry = interpret(item)
            except ItemRejected as exc:
                self._metrics.errors.inc(1, exc.kind)
                title = exc.title[:200] if exc.title else exc.title
                log.warning("feed_item_rejected", url=url, reason=exc.reason, title=title)
                continue
            entries.setdefault(entry.key, entry)
        return list(entries.values())

    async def _process(self, feed: _Feed, entries: list[FeedEntry], report: PollReport) -> None:
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
        # Oldest first: if the poll is interrupted, what is left is the newest part.
        ordered = sorted(entries, key=lambda e: e.published or 0.0)
        handled = await self._each(ordered, lambda e: self._consider(feed, e, previous, report))
        feed.cursor.keys = [e.key for e, ok in zip(ordered, handled, strict=True) if ok]
        newest = max((e.published for e in entries if e.published is not None), default=None)
        if newest is not None and (feed.cursor.newest is None or newest > feed.cursor.newest):
            feed.cursor.newest = newest
        self._metrics.processed(feed.url, feed.cursor.newest)

    async def _each(self, items: Sequence[T], fn: Callable[[T], Awaitable[None]]) -> list[bool]:
        """Run ``fn`` on every item, ``resolve_concurrency`` at a time.

        Returns, per item, whether it completed; a failure of the master itself
        (the store) is logged and leaves that item for the next poll.
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

    # ------------------------------------------------------------ releases ----

    async def _consider(
        self, feed: _Feed, entry: FeedEntry, previous: set[str], report: PollReport
    ) -> None:
        if entry.key in feed.cursor.pending or entry.key in self._inflight:
            return  # the retry path owns it
        if entry.version is None:
            if entry.key not in previous:  # looked up already when it was first listed
                await self._new_project(feed, entry, 0, report)
            return
        if await self._ctx.store.release_seen(entry.project, entry.version):
            return
        self._metrics.seen.inc()
        await self._release(feed, entry, 0, report)

    async def _new_project(
        self, feed: _Feed, entry: FeedEntry, attempts: int, report: PollReport
    ) -> None:
        """A "added to PyPI" item: look up the project's newest version, then as a release."""
        assert self._resolver is not None
        feed.dirty |= feed.cursor.pending.pop(entry.key, None) is not None
        reason = self.settings.name_excluded(entry.project)
        if reason is not None:
            await self._filtered(entry, reason, report)
            return
        try:
            found = await self._resolver.project(entry.project)
        except FeedError as exc:
            await self._defer(feed, entry, attempts, str(exc), report, kind=exc.kind)
            return
        if found is None:
            await self._defer(feed, entry, attempts, "project not in the JSON API yet", report)
            return
        release = replace(entry, version=found.newest)
        if release.key in feed.cursor.pending or release.key in self._inflight:
            return
        assert release.version is not None
        if await self._ctx.store.release_seen(release.project, release.version):
            return
        self._metrics.seen.inc()
        await self._release(feed, release, 0, report)

    async def _release(
        self, feed: _Feed, entry: FeedEntry, attempts: int, report: PollReport
    ) -> None:
        """Resolve, filter and queue one release; defer it when the JSON API lags."""
        assert self._resolver is not None and entry.version is not None
        feed.dirty |= feed.cursor.pending.pop(entry.key, None) is not None
        self._inflight.add(entry.key)
        try:
            reason = self.settings.name_excluded(entry.project)
            if reason is not None:
                await self._filtered(entry, reason, report)
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
                await self._filtered(entry, reason, report)
                return
            await self._queue(entry, release, report)
        finally:
            self._inflight.discard(entry.key)

    def _release_excluded(self, release: Release) -> str | None:
        if release.yanked:
            return "yanked"
        if not release.files:
            return "no_files"
        limit = self.settings.max_file_size
        if limit is not None and release.largest_file > limit:
            return "too_large"
        return None

    async def _queue(self, entry: FeedEntry, release: Release, report: PollReport) -> None:
        assert entry.version is not None
        request = JobRequest(
            # PyPI's spelling, as the HTTP API submits it, so both dedupe together.
            project=release.name,
            version=release.version,
            files=[f.to_dict() for f in release.files],
            image=self.settings.image,
            priority=self.settings.priority,
            source="feed",
        )
        result = await self._ctx.store.submit_job(request)
        # Marked after the job exists: if we are interrupted in between, the next
        # poll submits again and submit_job returns the same job (created=False).
        await self._ctx.store.mark_release_seen(entry.project, entry.version, "feed")
        if not result.created:
            log.info(
                "release_already_queued",
                project=release.name,
                version=release.version,
                job_id=result.job.id,
            )
            return
        self._metrics.queued.inc()
        report.queued.append(entry.key)
        log.info(
            "release_queued",
            project=release.name,
            version=release.version,
            job_id=result.job.id,
            files=len(release.files),
        )
        self._ctx.scheduler.kick()

    async def _filtered(self, entry: FeedEntry, reason: str, report: PollReport) -> None:
        if entry.version is not None:
            await self._ctx.store.mark_release_seen(entry.project, entry.version, "feed")
        self._metrics.filtered.inc(1, reason)
        report.filtered += 1
        log.info("release_filtered", project=entry.project, version=entry.version, reason=reason)

    async def _defer(
        self,
        feed: _Feed,
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
        feed.dirty = True
        if attempts > self.settings.resolve_retries:
            await self._give_up(entry, attempts, why)
            return
        delay = self._retry_backoff.delay_for(attempts)
        evicted = feed.cursor.add_pending(Pending(entry, attempts, time.time() + delay))
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
            await self._give_up(evicted.entry, evicted.attempts, "too many pending releases")

    async def _give_up(self, entry: FeedEntry, attempts: int, why: str) -> None:
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
            await self._ctx.store.mark_release_seen(entry.project, entry.version, "feed")

    async def _retry_due(self, feed: _Feed) -> None:
        now = time.time()
        due = [p for p in feed.cursor.pending.values() if p.next_at <= now]
        if not due:
            return
        report = PollReport(feed.url)

        async def retry(p: Pending) -> None:
            if p.entry.version is None:
                await self._new_project(feed, p.entry, p.attempts, report)
            else:
                await self._release(feed, p.entry, p.attempts, report)

        await self._each(due, retry)
        feed.dirty = True

    # ------------------------------------------------------------ backfill ----

    async def _backfill(
        self, feed: _Feed, entries: list[FeedEntry], previous: set[str], report: PollReport
    ) -> None:
        """After a gap: releases of the projects we know of, uploaded since the cursor.

        PyPI's RSS cannot be paged, so releases of projects that appear in neither
        the previous nor this poll are lost to the feed (documented in docs/feed.md).
        """
        assert self._resolver is not None
        resolver = self._resolver
        since = feed.cursor.newest
        if since is None:
            log.warning("feed_backfill_skipped", url=feed.url, reason="no previous pubDate")
            return
        names = [k.split("==", 1)[0] for k in sorted(previous)] + [e.project for e in entries]
        projects = [p for p in dict.fromkeys(names) if self.settings.name_excluded(p) is None]
        projects = projects[: self.settings.gap_backfill_max_projects]
        current = {e.key for e in entries}
        found: list[FeedEntry] = []

        async def look(project: str) -> None:
            try:
                releases = await resolver.project(project)
            except FeedError as exc:
                self._metrics.errors.inc(1, f"resolve_{exc.kind}")
                log.warning("feed_backfill_failed", project=project, error=str(exc))
                return
            for version, uploaded in (releases.uploaded if releases else {}).items():
                candidate = FeedEntry(project, version, uploaded)
                # Slack for clock skew between the feed's pubDate and upload times;
                # the seen-set removes whatever this lets in twice.
                if (
                    uploaded is not None
                    and uploaded >= since - 300
                    and candidate.key not in current
                ):
                    found.append(candidate)

        await self._each(projects, look)
        log.info("feed_backfill", url=feed.url, projects=len(projects), candidates=len(found))
        await self._each(found, lambda e: self._consider(feed, e, set(), report))
