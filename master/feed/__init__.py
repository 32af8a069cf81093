"""The feed watcher: PyPI's RSS feeds in, one low-priority job per new release out.

``FeedWatcher(ctx).run()`` is all the daemon needs; ``docs/feed.md`` lists the
``[feed]`` settings. Modules: ``fetch`` (HTTP, conditional GET, caps), ``parse``
(safe RSS), ``items`` (title/link cross-checks), ``resolve`` (JSON API),
``settings`` (filters and limits), ``state`` (the persisted cursor), ``intake``
(entries to jobs, retries, backfill), ``late`` and ``fileset`` (files uploaded to
a release after it was queued), ``watcher`` (the polling loop).
"""

from master.feed.errors import FeedConfigError, FeedError
from master.feed.settings import FeedSettings
from master.feed.state import PollReport
from master.feed.watcher import FeedWatcher

__all__ = ["FeedConfigError", "FeedError", "FeedSettings", "FeedWatcher", "PollReport"]
