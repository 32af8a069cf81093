"""In-process fan-out of stored events and job ends (live tails, callbacks).

Publishing never blocks and never fails: the store is the truth, the bus only
says "look, something new". Each subscription has a bounded queue; when a
subscriber falls ``maxsize`` items behind, its subscription is marked
``lagged`` and stops receiving, and ``get()`` raises ``Lagged``: the subscriber
re-reads from the store after the last seq it saw and subscribes again. A slow
reader thus costs memory bounded by its ``maxsize`` and never slows the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Generic, TypeVar

from master.errors import MasterError
from master.jobs import EventRow, Job

T = TypeVar("T")

#: What a job subscription yields: a stored event, or the job itself once it ended.
JobItem = EventRow | Job


class Lagged(MasterError):
    """The subscriber fell too far behind; re-read from the store and subscribe again."""


class Subscription(Generic[T]):
    """One subscriber's bounded queue."""

    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize)
        self.lagged = False

    def _offer(self, item: T) -> None:
        if self.lagged:
            return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            # Overflow policy: stop delivering and tell the reader to catch up from the store.
            self.lagged = True
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(_LAGGED)  # type: ignore[arg-type]  # wakes a waiting get()

    async def get(self) -> T:
        """The next item; raises ``Lagged`` once the subscription overflowed."""
        if self.lagged:
            raise Lagged("subscriber fell behind")
        item = await self._queue.get()
        if item is _LAGGED:
            raise Lagged("subscriber fell behind")
        return item

    def get_nowait(self) -> T | None:
        """The next item if one is waiting, else None; raises ``Lagged`` like ``get``."""
        if self.lagged:
            raise Lagged("subscriber fell behind")
        if self._queue.empty():
            return None
        return self._queue.get_nowait()


_LAGGED = object()


class EventBus:
    """Fan-out by job id, plus a stream of every job end."""

    def __init__(self) -> None:
        self._jobs: dict[int, set[Subscription[JobItem]]] = {}
        self._ends: set[Subscription[Job]] = set()

    def publish(self, job_id: int, rows: Sequence[EventRow]) -> None:
        """Hand committed events to the job's subscribers (call only after the commit)."""
        for sub in tuple(self._jobs.get(job_id, ())):
            for row in rows:
                sub._offer(row)

    def publish_end(self, job: Job) -> None:
        """A job reached a final state (after the commit): its subscribers and end-watchers."""
        for sub in tuple(self._jobs.get(job.id, ())):
            sub._offer(job)
        for end_sub in tuple(self._ends):
            end_sub._offer(job)

    @contextmanager
    def subscribe(self, job_id: int, maxsize: int = 1000) -> Iterator[Subscription[JobItem]]:
        """Events of one job from now on (``EventRow``), then the ended ``Job``."""
        sub: Subscription[JobItem] = Subscription(maxsize)
        self._jobs.setdefault(job_id, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._jobs.get(job_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._jobs[job_id]

    @contextmanager
    def subscribe_ends(self, maxsize: int = 1000) -> Iterator[Subscription[Job]]:
        """Every job that ends from now on."""
        sub: Subscription[Job] = Subscription(maxsize)
        self._ends.add(sub)
        try:
            yield sub
        finally:
            self._ends.discard(sub)

    def subscribers(self, job_id: int | None = None) -> int:
        """How many subscriptions are open (for one job, or end-watchers if None)."""
        if job_id is None:
            return len(self._ends)
        return len(self._jobs.get(job_id, ()))
