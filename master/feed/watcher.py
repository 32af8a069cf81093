"""`FeedWatcher`: PyPI's RSS feeds in, one queued job per new release out.

One loop polls every configured feed when it is due (``interval`` after a
success, exponential backoff with jitter after a failure) and retries releases
the JSON API did not know yet::

    fetch (conditional GET, capped) ─▶ parse (worker thread, no DTDs) ─▶ interpret
      ─▶ Intake (seen-set, filters, JSON API, submit_job, kick) ─▶ save cursor
    then, at most once per interval: LateFiles (queued releases' files uploaded since)

The feed's validators and cursor are saved only after every item of a poll was
dealt with, so a cancelled or failed poll is simply done again: the seen-set and
``submit_job``'s dedupe make that harmless (see `master.feed.intake`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable

import structlog

from master.feed.backoff import Backoff
from master.feed.context import WatcherContext
from master.feed.errors import FeedError, FeedParseError, FetchError, ItemRejected
from master.feed.fetch import HttpClient, Validators, make_session
from master.feed.instruments import FeedMetrics
from master.feed.intake import Intake
from master.feed.items import FeedEntry, interpret
from master.feed.late import LateFiles
from master.feed.parse import RawItem, parse_feed
from master.feed.resolve import Resolver
from master.feed.settings import FeedSettings
from master.feed.state import FeedCursor, FeedRun, PollReport
from master.jobs import FeedState
from master.store.errors import StoreError

log = structlog.get_logger(__name__)


class FeedWatcher:
    """Polls PyPI's feeds and queues a low-priority job for each new release."""

    def __init__(self, ctx: WatcherContext, *, settings: FeedSettings | None = None) -> None:
        """Watch the feeds ``ctx.config`` names (or ``settings``, which then win).

        Raises `FeedConfigError` for a bad ``[feed]`` table. ``ctx`` is normally the
        `MasterContext`; only the members in `WatcherContext` are used.
        """
        self._ctx = ctx
        self.settings = settings or FeedSettings.from_config(ctx.config)
        self._metrics = FeedMetrics(ctx.metrics)
        self._feeds: dict[str, FeedRun] = {}
        self._http: HttpClient | None = None
        self._intake: Intake | None = None
        self._late: LateFiles | None = None

    def __repr__(self) -> str:
        state = "running" if self._http is not None else "idle"
        return f"<FeedWatcher {state} feeds={len(self.settings.urls)} image={self.settings.image}>"

    async def run(self) -> None:
        """Poll until cancelled. Never returns otherwise.

        Feed, network, parse and JSON API failures are logged, counted and backed
        off; so are store failures while running. A store failure while loading the
        feeds' state at start propagates (the master cannot work without its store).
        Cancel-safe: a cancelled poll leaves the store consistent and is done again
        on the next start; the HTTP session is closed before the cancel propagates.
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
            resolver = Resolver(
                self._http, self.settings.pypi_url, max_bytes=self.settings.max_json_bytes
            )
            # One bound on JSON API requests in flight, for new releases and re-checks.
            limit = asyncio.Semaphore(self.settings.resolve_concurrency)
            self._late = LateFiles(self._ctx, self.settings, self._metrics, resolver, limit)
            self._intake = Intake(
                self._ctx, self.settings, self._metrics, resolver, self._late, limit
            )
            try:
                await self._load()
                yield
            finally:
                self._http = self._intake = self._late = None

    async def _load(self) -> None:
        for url in self.settings.urls:
            if url in self._feeds:
                continue
            state = await self._ctx.store.feed.get_state(url)
            cursor = FeedCursor.loads(state.cursor if state else None, url=url)
            validators = Validators(state.etag, state.last_modified) if state else Validators()
            backoff = Backoff(self.settings.backoff_initial, self.settings.backoff_max)
            self._feeds[url] = FeedRun(url, cursor, validators, backoff)
            self._metrics.processed(url, cursor.newest)
        self._update_pending_gauge()

    def _seconds_to_next(self) -> float:
        now_mono, now = time.monotonic(), time.time()
        waits = [f.next_poll - now_mono for f in self._feeds.values()]
        waits += [p.next_at - now for f in self._feeds.values() for p in f.cursor.pending.values()]
        # The floor keeps a clock jump or an overdue entry from spinning the loop.
        return max(0.05, min(waits, default=self.settings.interval))

    async def _tick(self, *, force: bool) -> list[PollReport]:
        assert self._intake is not None
        reports = []
        for feed in self._feeds.values():
            try:
                if force or time.monotonic() >= feed.next_poll:
                    reports.append(await self._poll(feed))
                await self._intake.retry_due(feed)
                if feed.dirty:
                    await self._save(feed)
            except StoreError as exc:
                # The store is the system of record: without it nothing can be queued
                # or remembered, so wait (with backoff) rather than re-fetch in a loop.
                delay = feed.backoff.failure()
                feed.next_poll = time.monotonic() + delay
                self._metrics.errors.inc(1, "store")
                log.error("feed_store_failed", url=feed.url, error=str(exc), retry_in=delay)
        await self._recheck(force=force)
        return reports

    async def _recheck(self, *, force: bool) -> None:
        """Look for files uploaded to queued releases since (``master.feed.late``)."""
        assert self._late is not None
        try:
            await self._late.check_due(force=force)
        except StoreError as exc:
            # Nothing was re-checked; the same releases are due next round.
            self._metrics.errors.inc(1, "store")
            log.error("feed_store_failed", url=None, error=str(exc))

    async def _save(self, feed: FeedRun) -> None:
        state = FeedState(
            cursor=feed.cursor.dumps(),
            etag=feed.validators.etag,
            last_modified=feed.validators.last_modified,
            updated_at=time.time(),
        )
        await self._ctx.store.feed.set_state(feed.url, state)
        feed.dirty = False
        self._update_pending_gauge()

    def _update_pending_gauge(self) -> None:
        self._metrics.pending.set(sum(len(f.cursor.pending) for f in self._feeds.values()))

    # ------------------------------------------------------------- polling ----

    async def _poll(self, feed: FeedRun) -> PollReport:
        assert self._http is not None and self._intake is not None
        report = PollReport(feed.url)
        started = time.monotonic()
        try:
            doc = await self._http.get_feed(
                feed.url, feed.validators, max_bytes=self.settings.max_feed_bytes
            )
            # Parsing a few MB is CPU work: keep it off the event loop.
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
        await self._intake.process(feed, entries, report)
        # Only now: a poll interrupted above must not be answered with a 304 next time.
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
