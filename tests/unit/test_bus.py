"""The in-process event bus: fan-out, bounded subscriptions, lag."""

from __future__ import annotations

import asyncio

import pytest

from master.bus import EventBus, Lagged
from master.jobs import EventRow, Job, JobState


def _row(job_id: int, seq: int) -> EventRow:
    return EventRow(job_id, seq, 1.0, "info", "output", "tests", {})


def _job(job_id: int) -> Job:
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
        isolation="tcg",
        error=None,
        created_at=0.0,
        assigned_at=None,
        started_at=None,
        finished_at=1.0,
        quarantined=False,
    )


async def test_subscribers_get_their_jobs_events_then_the_end() -> None:
    """A job subscription yields that job's rows in order, then the ended job; others see none."""
    bus = EventBus()
    with bus.subscribe(1) as one, bus.subscribe(2) as two:
        bus.publish(1, [_row(1, 1), _row(1, 2)])
        bus.publish_end(_job(1))
        assert (await one.get()) == _row(1, 1)
        assert (await one.get()) == _row(1, 2)
        end = await one.get()
        assert isinstance(end, Job) and end.id == 1
        assert two.get_nowait() is None
    assert bus.subscribers(1) == 0 and bus.subscribers(2) == 0


async def test_overflow_marks_lagged_and_wakes_a_waiting_reader() -> None:
    """A subscriber that falls maxsize behind gets Lagged (also if already waiting), not a block."""
    bus = EventBus()
    with bus.subscribe(1, maxsize=3) as sub:
        waiter = asyncio.create_task(sub.get())
        await asyncio.sleep(0)
        bus.publish(1, [_row(1, 1)])
        assert (await waiter) == _row(1, 1)
        await asyncio.sleep(0)
        bus.publish(1, [_row(1, s) for s in range(2, 10)])  # publish never blocks
        assert sub.lagged
        with pytest.raises(Lagged):
            await sub.get()
        with pytest.raises(Lagged):
            sub.get_nowait()


async def test_end_watchers_see_every_job_end() -> None:
    """subscribe_ends yields every job that ends, in order."""
    bus = EventBus()
    with bus.subscribe_ends() as ends:
        bus.publish(3, [_row(3, 1)])
        bus.publish_end(_job(3))
        bus.publish_end(_job(4))
        assert [(await ends.get()).id, (await ends.get()).id] == [3, 4]
    assert bus.subscribers() == 0
