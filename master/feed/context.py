"""What the feed watcher needs from the master: the part of `MasterContext` it uses.

Written as protocols (read-only members, so `MasterContext` satisfies them
structurally) to keep the watcher's dependencies explicit and small.
"""

from __future__ import annotations

from typing import Any, Protocol

from master.config import MasterConfig
from master.jobs import FeedState, JobRequest, SubmitResult
from master.metrics import Metrics


class FeedStore(Protocol):
    """The store calls the watcher makes (see ``docs/contracts.md``)."""

    async def get_feed_state(self, url: str) -> FeedState | None: ...

    async def set_feed_state(self, url: str, state: FeedState) -> None: ...

    async def release_seen(self, project: str, version: str) -> bool: ...

    async def mark_release_seen(self, project: str, version: str, source: str) -> Any: ...

    async def submit_job(self, req: JobRequest) -> SubmitResult: ...


class Kickable(Protocol):
    """The scheduler, as far as the watcher is concerned."""

    def kick(self) -> None: ...


class WatcherContext(Protocol):
    """The members of `MasterContext` the watcher reads."""

    @property
    def config(self) -> MasterConfig: ...

    @property
    def store(self) -> FeedStore: ...

    @property
    def scheduler(self) -> Kickable: ...

    @property
    def metrics(self) -> Metrics: ...
