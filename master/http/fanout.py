"""One bus subscription per tailed job, fanned out to its tail clients in batches.

The bus hands out events one row at a time to each subscriber, which costs a
queue operation per row *per subscriber*: a hundred browsers on a busy job
would be a hundred queue puts and gets per event. Instead the HTTP app keeps one
``JobFeed`` per job that has tail clients: it takes the job's rows off a single
bus subscription, groups what is waiting into one batch, and hands the same
list to every client's ``TailSubscription`` (one append per client per batch).

Guarantees, the same as a bus subscription's:

- a ``TailSubscription`` receives every row published after ``subscribe()``
  returned (the feed is subscribed to the bus before it is registered, and a
  feed that lagged re-subscribes before it tells its clients), so
  "subscribe, then read history" has no gap;
- it is bounded (``limit`` rows); a client that falls behind, or a feed that
  fell behind the bus, makes ``get()`` raise ``Lagged``: re-read from the
  store and subscribe again;
- after the job's end (the ``Job`` from ``publish_end``) every row published
  before it has been handed out first;
- at shutdown (``JobFeeds.closing``) ``get()`` hands out what is buffered, then
  raises ``Closing``, so each client can be told before its connection ends.

The feed's task is owned by the ``JobFeeds`` registry: started with the first
client of a job, stopped (bus left at once, task cancelled) when the last one
leaves; ``close()`` stops them all and awaits their tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterator
from contextlib import ExitStack

from master.bus import EventBus, Lagged, Subscription
from master.jobs import EventRow, Job

#: The feed's own bus queue, in rows: generous, since one feed serves every client of a job.
FEED_QUEUE = 50_000


class Batch(list[EventRow]):
    """Rows handed to every client of a feed at once (the same object to each).

    ``contiguous``: the seqs rise by one from the first row to the last, so a
    client whose last seq is just before the first can take the batch whole;
    ``encoded`` caches the batch's wire bytes per format, built by the first
    client that sends it and reused by the others.
    """

    __slots__ = ("contiguous", "encoded")

    def __init__(self, rows: list[EventRow]) -> None:
        super().__init__(rows)
        self.contiguous = all(b.seq == a.seq + 1 for a, b in itertools.pairwise(rows))
        self.encoded: dict[str, bytes] = {}


TailItem = Batch | Job


class Closing(Exception):
    """The master is shutting down: the tail should end with a marker now."""


class TailSubscription:
    """One tail client's bounded view of a job's feed."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._batches: list[Batch] = []
        self._size = 0
        self._ended: Job | None = None
        self._wake = asyncio.Event()
        self.lagged = False
        self.closing = False

    def __repr__(self) -> str:
        return f"<TailSubscription rows={self._size} lagged={self.lagged}>"

    def _offer(self, rows: Batch) -> None:
        if self.lagged:
            return
        if self._size + len(rows) > self._limit:
            self._lag()
            return
        self._batches.append(rows)
        self._size += len(rows)
        self._wake.set()

    def _end(self, job: Job) -> None:
        if self._ended is None:
            self._ended = job
        self._wake.set()

    def _close(self) -> None:
        self.closing = True
        self._wake.set()

    def _lag(self) -> None:
        # Overflow policy: drop what is buffered and tell the reader to catch up from the store.
        self.lagged = True
        self._batches.clear()
        self._size = 0
        self._wake.set()

    async def get(self) -> TailItem:
        """All rows waiting (one list, in order), else the ended job.

        Raises ``Lagged`` when the client fell behind, ``Closing`` once nothing is
        left to hand out and the master is shutting down.
        """
        while True:
            if self.lagged:
                raise Lagged("tail client fell behind")
            if self._batches:
                batches, self._batches, self._size = self._batches, [], 0
                if len(batches) == 1:
                    return batches[0]
                return Batch([row for batch in batches for row in batch])
            if self._ended is not None:
                return self._ended
            if self.closing:
                raise Closing("the master is shutting down")
            self._wake.clear()
            await self._wake.wait()


class JobFeed:
    """The single bus subscription of one job and its clients."""

    def __init__(self, bus: EventBus, job_id: int, *, queue: int = FEED_QUEUE) -> None:
        self.job_id = job_id
        self.clients: set[TailSubscription] = set()
        self._bus = bus
        self._queue = queue
        self._stack = ExitStack()
        self._sub: Subscription[EventRow | Job] = self._stack.enter_context(
            bus.subscribe(job_id, maxsize=queue)
        )
        self._task = asyncio.create_task(self._run(), name=f"tail-feed-{job_id}")

    def __repr__(self) -> str:
        return f"<JobFeed job={self.job_id} clients={len(self.clients)}>"

    def _resubscribe(self) -> None:
        self._stack.close()
        self._stack = ExitStack()
        self._sub = self._stack.enter_context(self._bus.subscribe(self.job_id, maxsize=self._queue))

    async def _run(self) -> None:
        while True:
            try:
                item: EventRow | Job | None = await self._sub.get()
                rows: list[EventRow] = []
                ended: Job | None = None
                while item is not None:
                    if isinstance(item, Job):
                        ended = item
                        break
                    rows.append(item)
                    item = self._sub.get_nowait()
            except Lagged:
                # Re-subscribe first, then tell the clients: when they subscribe again
                # (and re-read the store) this feed already receives everything new.
                self._resubscribe()
                for client in tuple(self.clients):
                    client._lag()
                continue
            batch = Batch(rows)
            for client in tuple(self.clients):
                if batch:
                    client._offer(batch)
                if ended is not None:
                    client._end(ended)

    def stop(self) -> asyncio.Task[None]:
        """Leave the bus now and cancel the task (idempotent); the task, to be awaited."""
        self._task.cancel()
        self._stack.close()
        return self._task


class JobFeeds:
    """The feeds of every job that has tail clients, owned by the HTTP app."""

    def __init__(self, bus: EventBus, *, feed_queue: int = FEED_QUEUE) -> None:
        """``feed_queue``: each job feed's own bus queue, in rows."""
        self._bus = bus
        self._feed_queue = feed_queue
        self._feeds: dict[int, JobFeed] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._closing = False

    def __repr__(self) -> str:
        return f"<JobFeeds jobs={len(self._feeds)}>"

    def __len__(self) -> int:
        return len(self._feeds)

    def clients(self, job_id: int) -> int:
        """How many tail clients follow ``job_id`` right now."""
        feed = self._feeds.get(job_id)
        return 0 if feed is None else len(feed.clients)

    @contextlib.contextmanager
    def subscribe(self, job_id: int, limit: int) -> Iterator[TailSubscription]:
        """Rows of ``job_id`` published from now on, in batches, then its end."""
        feed = self._feeds.get(job_id)
        if feed is None:
            feed = self._feeds[job_id] = JobFeed(self._bus, job_id, queue=self._feed_queue)
        sub = TailSubscription(limit)
        if self._closing:
            sub._close()
        feed.clients.add(sub)
        try:
            yield sub
        finally:
            feed.clients.discard(sub)
            if not feed.clients and self._feeds.get(job_id) is feed:
                del self._feeds[job_id]
                task = feed.stop()
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)

    def closing(self) -> None:
        """The master is shutting down: every client's ``get()`` raises ``Closing`` once
        it has taken what is buffered (clients subscribing from now on too)."""
        self._closing = True
        for feed in self._feeds.values():
            for client in feed.clients:
                client._close()

    async def close(self) -> None:
        """Stop every feed and wait for their tasks (at app shutdown)."""
        feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            self._stopping.add(feed.stop())
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
