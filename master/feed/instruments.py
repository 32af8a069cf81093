"""The feed watcher's metrics, registered on the daemon's `Metrics` registry."""

from __future__ import annotations

import time

from master.metrics import Metrics

_POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class FeedMetrics:
    """Counters, gauges and the poll histogram; names are ``pyti_feed_*``."""

    def __init__(self, metrics: Metrics) -> None:
        self.seen = metrics.counter(
            "feed_releases_seen_total", "Releases seen in the feeds for the first time"
        )
        self.queued = metrics.counter(
            "feed_releases_queued_total", "Releases from the feeds that became new jobs"
        )
        self.filtered = metrics.counter(
            "feed_releases_filtered_total", "Releases not queued, by reason", ("reason",)
        )
        self.errors = metrics.counter(
            "feed_errors_total", "Feed and JSON API failures, by kind", ("kind",)
        )
        self.gaps = metrics.counter(
            "feed_gaps_total", "Polls sharing no item with the previous poll of the feed"
        )
        self.rechecks = metrics.counter(
            "feed_release_rechecks_total",
            "JSON API look-ups of queued releases for files uploaded since",
        )
        self.late_files = metrics.counter(
            "feed_late_files_total",
            "Re-checks that found new files, by what became of them",
            ("how",),
        )
        self.lag = metrics.gauge(
            "feed_lag_seconds", "Now minus the newest pubDate processed, per feed", ("feed",)
        )
        self.pending = metrics.gauge(
            "feed_pending_releases", "Releases waiting for the JSON API to know them"
        )
        self.poll_duration = metrics.histogram(
            "feed_poll_duration_seconds",
            "Time to fetch, parse and process one poll of one feed",
            buckets=_POLL_BUCKETS,
        )
        self._newest: dict[str, float] = {}
        metrics.add_collector(self._collect)

    def processed(self, feed: str, newest: float | None) -> None:
        """Remember the newest pubDate processed in ``feed`` (for the lag gauge)."""
        if newest is not None:
            self._newest[feed] = newest
            self.lag.set(max(0.0, time.time() - newest), feed)

    async def _collect(self) -> None:
        # The lag grows while nothing new arrives: compute it at scrape time.
        now = time.time()
        for feed, newest in self._newest.items():
            self.lag.set(max(0.0, now - newest), feed)
