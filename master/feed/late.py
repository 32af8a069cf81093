"""`LateFiles`: files uploaded to a release after the feed queued it get tested too.

PyPI lists a release in its feed once, when the release is created; files uploaded
to it later (wheels built by CI minutes or hours after the sdist, or the sdist after
the wheels) make no new item. So every release the feed queues is looked up again in
the JSON API on a schedule, for ``late_files_window`` seconds after it was first
seen: ``late_files_first`` seconds after it was queued, then four times as long after
each re-check (10 min, 50 min, 3.5 h, 14 h by default), and once more at the window's
end::

    store.feed.due_rechecks ─▶ JSON API ─▶ new files worth a run? (``fileset``)
      ─▶ store.jobs.submit_files ─▶ store.feed.record_recheck (files, next time) ─▶ kick

``store.jobs.submit_files`` decides what the new files become: they replace the files
of the release's feed job while it is still queued (nobody tested the old set yet),
else they make one new job with the release's whole current file set. It is one
transaction that answers "already covered" when the newest feed job has them all, so
an interruption between it and ``record_recheck`` (the next round does the re-check
again) never queues a second job; ``record_recheck`` makes the new files known so
later rounds and restarts do not look at them again.

Rate: at most ``late_files_batch`` re-checks per ``interval``, the longest overdue
first, sharing the ``resolve_concurrency`` requests in flight with the feed's own
look-ups. What is due waits for the next round; nothing is dropped.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from master.errors import MasterError
from master.feed.context import WatcherContext
from master.feed.errors import FeedError
from master.feed.fileset import digests, new_files
from master.feed.instruments import FeedMetrics
from master.feed.resolve import Resolver
from master.feed.settings import FeedSettings
from master.jobs import JobRequest, TrackedRelease
from master.pypi import Release

log = structlog.get_logger(__name__)

#: each delay between two re-checks is this many times the one before
GROWTH = 4.0


def next_recheck(
    settings: FeedSettings, first_seen: float, rechecks: int, now: float
) -> float | None:
    """When to look at a release again after ``rechecks`` re-checks; None when done.

    ``late_files_first * GROWTH**rechecks`` from now, but never past the window's end,
    which gets one last re-check of its own.
    """
    end = first_seen + settings.late_files_window
    if settings.late_files_window <= 0 or now >= end:
        return None
    return min(now + settings.late_files_first * GROWTH**rechecks, end)


class LateFiles:
    """Re-checks the releases the feed queued for files uploaded since."""

    def __init__(
        self,
        ctx: WatcherContext,
        settings: FeedSettings,
        metrics: FeedMetrics,
        resolver: Resolver,
        limit: asyncio.Semaphore,
    ) -> None:
        self._ctx = ctx
        self._settings = settings
        self._metrics = metrics
        self._resolver = resolver
        self._limit = limit
        self._next_round = 0.0  # monotonic

    def __repr__(self) -> str:
        return f"<LateFiles window={self._settings.late_files_window:g}s>"

    def first_recheck(self, now: float) -> float | None:
        """When a release queued ``now`` is first looked at again (None: re-checks are off)."""
        return next_recheck(self._settings, now, 0, now)

    async def check_due(self, *, force: bool = False) -> int:
        """Re-check the releases that are due, at most one batch per ``interval``.

        ``force`` ignores the interval (``poll_once``). Returns how many were looked
        up. A failure of one re-check (the store) is logged and leaves that release
        due for the next round; a `StoreError` while listing what is due propagates.
        Cancel-safe: an interrupted re-check is done again (module docstring).
        """
        if self._settings.late_files_window <= 0:
            return 0
        now_mono = time.monotonic()
        if not force and now_mono < self._next_round:
            return 0
        self._next_round = now_mono + self._settings.interval
        due = await self._ctx.store.feed.due_rechecks(time.time(), self._settings.late_files_batch)
        if due:
            async with asyncio.TaskGroup() as tg:
                for tracked in due:
                    tg.create_task(self._guarded(tracked))
        return len(due)

    async def _guarded(self, tracked: TrackedRelease) -> None:
        async with self._limit:
            try:
                await self._recheck(tracked)
            except MasterError as exc:
                self._metrics.errors.inc(1, "store")
                key = f"{tracked.project}=={tracked.version}"
                log.error("release_recheck_failed", release=key, error=str(exc))

    async def _recheck(self, tracked: TrackedRelease) -> None:
        project, version = tracked.project, tracked.version
        next_at = next_recheck(
            self._settings, tracked.first_seen, tracked.rechecks + 1, time.time()
        )
        if self._settings.name_excluded(project) is not None:
            # The filters changed since it was queued: they now say no more runs.
            await self._ctx.store.feed.record_recheck(project, version, frozenset(), None)
            return
        try:
            release = await self._resolver.release(project, version)
        except FeedError as exc:
            self._metrics.errors.inc(1, f"resolve_{exc.kind}")
            log.warning("release_recheck_failed", project=project, version=version, error=str(exc))
            release = None
        self._metrics.rechecks.inc()
        if release is None or release.yanked:
            # Not known right now (or yanked): nothing to add; a yanked one is not run again.
            done = release is not None and release.yanked
            await self._ctx.store.feed.record_recheck(
                project, version, frozenset(), None if done else next_at
            )
            return
        fresh = new_files(release.files, tracked.files)
        if fresh:
            await self._queue(release, [f.filename for f in fresh])
        await self._ctx.store.feed.record_recheck(project, version, digests(release.files), next_at)

    async def _queue(self, release: Release, fresh: list[str]) -> None:
        """Have ``release``'s current files tested; ``fresh`` names the new ones (for the log)."""
        limit = self._settings.max_file_size
        fields = {"project": release.name, "version": release.version, "new_files": fresh}
        if limit is not None and release.largest_file > limit:
            self._metrics.filtered.inc(1, "too_large")
            log.info("release_filtered", reason="too_large", **fields)
            return
        choice = self._ctx.images.choose(release.requires_python, None, release.python_minors)
        request = JobRequest(
            project=release.name,
            version=release.version,
            files=[f.to_dict() for f in release.files],
            image=choice.image,
            priority=self._settings.priority,
            source="feed",
            untestable=choice.untestable,
        )
        result = await self._ctx.store.jobs.submit_files(request)
        self._metrics.late_files.inc(1, result.how)
        log.info("release_late_files", how=result.how, job_id=result.job.id, **fields)
        if result.how != "covered" and choice.untestable is None:
            self._ctx.scheduler.kick()
