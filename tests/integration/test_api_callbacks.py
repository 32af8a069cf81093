"""Completion callbacks: signed POSTs to a loopback receiver, retried, surviving a restart."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from master.context import MasterContext
from master.http import callbacks
from master.http.app import create_app
from master.http.callback_guard import CallbackPolicy
from tests.fakes.callback_receiver import Receiver
from tests.integration.test_api_harness import (
    CALLBACK_SECRET,
    FakeProducer,
    app_with,
    open_ctx,
    queue_job,
)

ClientFactory = Any


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[MasterContext]:
    """A master with a callback secret."""
    context = await open_ctx(tmp_path / "master")
    try:
        yield context
    finally:
        await context.close()


async def test_signed_callback(
    aiohttp_client: ClientFactory, ctx: MasterContext, receiver: Receiver
) -> None:
    """A finished job's result (outcome, verdict, reason) is POSTed once, HMAC-SHA256 signed."""
    await aiohttp_client(create_app(ctx))  # starts the sender (cleanup_ctx)
    job = await queue_job(ctx, callback_url=receiver.url)
    producer = await FakeProducer.start(ctx, job)
    await producer.finish("crashed", verdict="suspicious", reason="tests crashed (SIGSEGV)")
    async with asyncio.timeout(5):
        await receiver.delivered.wait()
    [(headers, body)] = receiver.received
    assert callbacks.verify(CALLBACK_SECRET.encode(), body, headers["X-Pyti-Signature"])
    assert not callbacks.verify(b"another secret 0123456", body, headers["X-Pyti-Signature"])
    payload = json.loads(body)
    assert (payload["id"], payload["outcome"]) == (job.id, "crashed")
    assert payload["verdict"] == "suspicious"
    assert payload["summary"]["reason"] == "tests crashed (SIGSEGV)"
    assert headers["X-Pyti-Event"] == "job_finished"
    assert await _settled(ctx)


async def _settled(ctx: MasterContext) -> bool:
    """True once the store has no pending callback (the sender records after the answer)."""
    for _ in range(250):
        if not await ctx.store.callbacks.due(time.time() + 10**6):
            return True
        await asyncio.sleep(0.02)
    return False


async def test_failed_delivery_is_retried(
    aiohttp_client: ClientFactory, ctx: MasterContext
) -> None:
    """A receiver answering 500 twice gets the same delivery a third time, after a backoff."""
    recv = Receiver(fail=2)
    await recv.server.start_server()
    try:
        await aiohttp_client(app_with(ctx, callback_backoff=0.05))
        job = await queue_job(ctx, callback_url=recv.url)
        await (await FakeProducer.start(ctx, job)).finish("passed")
        async with asyncio.timeout(10):
            await recv.delivered.wait()
        assert len(recv.received) == 3
        deliveries = {h["X-Pyti-Delivery"] for h, _ in recv.received}
        assert len(deliveries) == 1  # one callback, retried: the receiver can dedupe
        assert len({body for _, body in recv.received}) == 1
        assert await _settled(ctx)
    finally:
        await recv.server.close()


async def test_pending_callback_survives_restart(
    aiohttp_client: ClientFactory, tmp_path: Path, receiver: Receiver
) -> None:
    """A callback pending when the master stopped is delivered by the next master."""
    ctx = await open_ctx(tmp_path / "m")
    try:
        job = await queue_job(ctx, callback_url=receiver.url)
        await (await FakeProducer.start(ctx, job)).finish("failed")  # no app, no sender
    finally:
        await ctx.close()
    assert receiver.received == []
    ctx = await open_ctx(tmp_path / "m")
    try:
        await aiohttp_client(create_app(ctx))
        async with asyncio.timeout(5):
            await receiver.delivered.wait()
        assert json.loads(receiver.received[0][1])["outcome"] == "failed"
    finally:
        await ctx.close()


async def test_unreachable_receiver_is_rescheduled(ctx: MasterContext) -> None:
    """A refused connection is a failed attempt: the store keeps it with a later next_at."""
    job = await queue_job(ctx, callback_url="http://127.0.0.1:9/hook")
    await (await FakeProducer.start(ctx, job)).finish("passed")
    async with aiohttp.ClientSession() as session:
        sender = callbacks.CallbackSender(
            ctx.store,
            ctx.bus,
            CALLBACK_SECRET.encode(),
            ctx.metrics,
            session,
            policy=CallbackPolicy.parse(["127.0.0.0/8"]),
        )
        assert await sender.deliver_due() == 1
    assert await ctx.store.callbacks.due(time.time()) == []
    [pending] = await ctx.store.callbacks.due(time.time() + 10**6)
    assert pending.attempts == 1 and pending.next_at > time.time()
