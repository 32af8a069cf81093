"""The feed watcher: PyPI's RSS feeds in, one low-priority job per new release out.

``FeedWatcher(ctx).run()`` is all the daemon needs; ``docs/feed.md`` lists the
``[feed]`` settings. Modules: ``fetch`` (HTTP, conditional GET, caps), ``parse``
(safe RSS), ``items`` (title/link cross-checks), ``resolve`` (JSON API),
``settings`` (filters and limits), ``state`` (the persisted cursor), ``watcher``.
"""

from master.feed.errors import FeedConfigError, FeedError
from master.feed.settings import FeedSettings
from master.feed.watcher import FeedWatcher, PollReport

__all__ = ["FeedConfigError", "FeedError", "FeedSettings", "FeedWatcher", "PollReport"]
