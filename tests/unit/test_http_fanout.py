"""Per-job fan-out of the bus to tail clients: batches, bounds, lag, end, lifecycle."""

from __future__ import annotations

import asyncio

import pytest

from master.bus import EventBus, Lagged
from master.http.fanout import JobFeeds, TailSubscription
from master.jobs import EventRow, Job, JobState


def rows(first: int, n: int, job_id: int = 1) -> list[EventRow]:
    return [
        EventRow(job_id=job_id, seq=s, ts=0.0, level="info", event="e", phase=None, fields={})
        for s in range(first, first + n)
    ]


def job(job_id: int = 1) -> Job:
    return Job(
        id=job_id,
        project="p",
        version="1",
        image="i",
        state=JobState.FINISHED,
        outcome="passed",
        priority=0,
        attempt=1,
        lease=1,
        slave=None,
        source="api",
        callback_url=None,
        files=[],
        phases={},
        summary={},
        findings=[],
        isolation=None,
        error=None,
        created_at=0.0,
        assigned_at=None,
        started_at=None,
        finished_at=1.0,
        quarantined=False,
    )


async def seqs(sub: TailSubscription) -> list[int]:
    """The seqs of the next batch (which must be rows, not the end)."""
    item = await sub.get()
    assert isinstance(item, list)
    return [r.seq for r in item]


async def settle() -> None:
    """Let the feed task run (it is woken by the bus)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_clients_share_one_bus_subscription() -> None:
    """Many clients of a job cost one bus subscription; each gets every row, in order."""
    bus = EventBus()
    feeds = JobFeeds(bus)
    with feeds.subscribe(1, 100) as a, feeds.subscribe(1, 100) as b:
        assert bus.subscribers(1) == 1 and feeds.clients(1) == 2
        bus.publish(1, rows(1, 3))
        bus.publish(1, rows(4, 2))
        await settle()
        assert await seqs(a) == [1, 2, 3, 4, 5] == await seqs(b)
    await feeds.close()
    assert bus.subscribers(1) == 0 and feeds.clients(1) == 0


async def test_end_after_rows() -> None:
    """The ended job comes after every row published before it."""
    bus = EventBus()
    feeds = JobFeeds(bus)
    with feeds.subscribe(1, 100) as sub:
        bus.publish(1, rows(1, 2))
        bus.publish_end(job())
        await settle()
        first = await sub.get()
        assert isinstance(first, list) and [r.seq for r in first] == [1, 2]
        assert isinstance(await sub.get(), Job)
    await feeds.close()


async def test_slow_client_lags_alone() -> None:
    """A client over its limit gets Lagged; the other client of the job is unaffected."""
    bus = EventBus()
    feeds = JobFeeds(bus)
    with feeds.subscribe(1, 3) as small, feeds.subscribe(1, 100) as big:
        bus.publish(1, rows(1, 2))
        await settle()
        bus.publish(1, rows(3, 2))
        await settle()
        with pytest.raises(Lagged):
            await small.get()
        assert await seqs(big) == [1, 2, 3, 4]
    await feeds.close()


async def test_feed_lag_resubscribes_before_telling_clients() -> None:
    """When the feed overflows the bus, clients lag and the feed is subscribed again at once."""
    bus = EventBus()
    feeds = JobFeeds(bus, feed_queue=4)
    with feeds.subscribe(1, 100) as sub:
        bus.publish(1, rows(1, 10))  # 10 rows into a bus queue of 4: the feed lags
        await settle()
        with pytest.raises(Lagged):
            await sub.get()
        assert bus.subscribers(1) == 1  # the feed is back on the bus
    with feeds.subscribe(1, 100) as again:
        bus.publish(1, rows(11, 1))
        await settle()
        assert await seqs(again) == [11]
    await feeds.close()


async def test_last_client_leaving_stops_the_feed() -> None:
    """The bus subscription goes when the last client leaves; a waiting get is not left hanging."""
    bus = EventBus()
    feeds = JobFeeds(bus)
    with feeds.subscribe(7, 10):
        assert bus.subscribers(7) == 1
    assert bus.subscribers(7) == 0 and len(feeds) == 0
    await feeds.close()
