"""Errors of the feed watcher. None of them ever leaves `FeedWatcher.run`: each is
logged, counted in ``pyti_feed_errors_total{kind=...}`` and answered with a
backoff or a retry. The exception is `FeedConfigError`, raised by the
`FeedWatcher` constructor before anything runs.

::

    MasterError
     └── FeedError                  root; ``kind`` is the metrics label
          ├── FetchError            a feed or JSON API request failed (``url``, ``kind``:
          │                         ``timeout``, ``connection``, ``http_status``,
          │                         ``too_large``, ``bad_json``); ``retry_after`` when
          │                         the server said so
          ├── FeedParseError        the feed document is rejected as a whole (``kind``:
          │                         ``malformed``, ``forbidden_dtd``, ``not_rss``,
          │                         ``too_many_items``, ``too_deep``)
          ├── ItemRejected          one item is unusable, the rest of the feed is fine
          │                         (``kind`` = ``bad_item``, ``reason``, ``title``)
          ├── ResolveError          the JSON API answered something unusable (``kind`` =
          │                         ``bad_json``, ``project``, ``version``)
          └── FeedConfigError       a ``[feed]`` key is unknown or has the wrong type or
                                    value (``key``); also a ``ConfigError``; raised at
                                    start-up, never while running
"""

from __future__ import annotations

from master.config import ConfigError
from master.errors import MasterError


class FeedError(MasterError):
    """Root of feed watcher errors; ``kind`` names the failure for metrics and logs."""

    kind = "feed"


class FetchError(FeedError):
    """An HTTP request to a feed or to the JSON API failed."""

    def __init__(
        self, url: str, kind: str, detail: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{url}: {detail}")
        self.url = url
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after


class FeedParseError(FeedError):
    """The feed document is refused as a whole (hostile, broken or not RSS)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class ItemRejected(FeedError):
    """One feed item cannot be understood; only that item is skipped."""

    kind = "bad_item"

    def __init__(self, reason: str, title: str | None) -> None:
        super().__init__(f"{reason}: {title!r}")
        self.reason = reason
        self.title = title


class ResolveError(FeedError):
    """The JSON API answered, but not with a release we can describe to a slave."""

    kind = "bad_json"

    def __init__(self, project: str, version: str | None, detail: str) -> None:
        label = f"{project}=={version}" if version else project
        super().__init__(f"{label}: {detail}")
        self.project = project
        self.version = version
        self.detail = detail


class FeedConfigError(FeedError, ConfigError):
    """The ``[feed]`` configuration table is invalid (raised before anything runs).

    Also a `ConfigError`, so the daemon's start-up reports it like any bad setting.
    """

    kind = "config"

    def __init__(self, key: str, detail: str) -> None:
        # ``detail`` is a sentence that names the key ("interval must be more than 0").
        super().__init__(f"[feed] {detail}")
        self.key = key
        self.detail = detail
