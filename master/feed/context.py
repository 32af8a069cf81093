"""What the feed watcher needs from the master: the part of `MasterContext` it uses.

Written as protocols (read-only members, so `MasterContext` satisfies them
structurally) to keep the watcher's dependencies explicit and small.
"""

from __future__ import annotations

from typing import Any, Protocol

from master.config import MasterConfig
from master.images import ImageChoice
from master.jobs import FeedState, FilesSubmitResult, JobRequest, SubmitResult, TrackedRelease
from master.metrics import Metrics


class FeedRecords(Protocol):
    """``store.feed``: feed cursors and seen releases (see ``docs/contracts.md``)."""

    async def get_state(self, url: str) -> FeedState | None: ...

    async def set_state(self, url: str, state: FeedState) -> None: ...

    async def release_seen(self, project: str, version: str) -> bool: ...

    async def mark_release_seen(
        self,
        project: str,
        version: str,
        source: str,
        *,
        files: frozenset[str] | None = None,
        recheck_at: float | None = None,
    ) -> Any: ...

    async def due_rechecks(self, now: float, limit: int) -> list[TrackedRelease]: ...

    async def record_recheck(
        self, project: str, version: str, files: frozenset[str], recheck_at: float | None
    ) -> None: ...


class JobSubmitter(Protocol):
    """``store.jobs``, as far as the watcher is concerned."""

    async def submit(self, req: JobRequest) -> SubmitResult: ...

    async def submit_files(self, req: JobRequest) -> FilesSubmitResult: ...


class WatcherStore(Protocol):
    """The parts of the store the watcher uses."""

    @property
    def feed(self) -> FeedRecords: ...

    @property
    def jobs(self) -> JobSubmitter: ...


class Kickable(Protocol):
    """The scheduler, as far as the watcher is concerned."""

    def kick(self) -> None: ...


class ImageChooser(Protocol):
    """``master.images.ImageCatalogue``, as far as the watcher is concerned."""

    def choose(
        self, spec: str | None, requested: str | None = None, claimed: tuple[str, ...] = ()
    ) -> ImageChoice: ...


class WatcherContext(Protocol):
    """The members of `MasterContext` the watcher reads."""

    @property
    def config(self) -> MasterConfig: ...

    @property
    def store(self) -> WatcherStore: ...

    @property
    def scheduler(self) -> Kickable: ...

    @property
    def images(self) -> ImageChooser: ...

    @property
    def metrics(self) -> Metrics: ...
