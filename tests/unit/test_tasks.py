"""cancel_and_wait: ending an owned task never swallows the caller's own cancellation."""

from __future__ import annotations

import asyncio

import pytest

from pyti.tasks import cancel_and_wait


async def test_the_tasks_own_cancellation_ends_there_and_failures_are_returned() -> None:
    """A cancelled child is absorbed; a child that failed on its own hands back its error."""

    async def fail() -> None:
        raise ValueError("boom")

    sleeper = asyncio.create_task(asyncio.sleep(60))
    failed = asyncio.create_task(fail())
    await asyncio.sleep(0)
    errors = await cancel_and_wait(sleeper, failed)
    assert sleeper.cancelled() and [type(e) for e in errors] == [ValueError]


async def test_the_callers_cancellation_propagates_while_it_waits() -> None:
    """Cancelling the caller while a child takes its time to stop raises in the caller."""
    stopping = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            stopping.set()
            await asyncio.sleep(60)

    child = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    caller = asyncio.create_task(cancel_and_wait(child))
    await stopping.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert not child.done()
    child.cancel()
    await asyncio.wait((child,))


async def test_a_cancelled_caller_still_cleans_up_in_finally() -> None:
    """After its own cancellation, a caller's finally waits for its children to end."""
    child = asyncio.create_task(asyncio.sleep(60))
    ended: list[bool] = []

    async def owner() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await cancel_and_wait(child)
            ended.append(child.done())

    task = asyncio.create_task(owner())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended == [True]
