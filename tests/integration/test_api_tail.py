"""The live tail: history, live events, end; resumable with Last-Event-ID with no gap."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from master.client.api import SseMessage, SseParser
from master.context import MasterContext
from master.http.app import TAIL_CLOSE_S
from tests.integration.test_api_harness import FakeProducer, app, app_with, ctx, queue_job

__all__ = ["app", "ctx"]  # fixtures used by the tests below

ClientFactory = Any


@pytest.fixture
async def client(aiohttp_client: ClientFactory, app: web.Application) -> TestClient[Any, Any]:
    """An HTTP client on the real app."""
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


class SseReader:
    """Reads SSE messages from one response, with a deadline per wait."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.parser = SseParser()
        self.pending: list[SseMessage] = []

    async def next(self, timeout: float = 5.0) -> SseMessage:
        async with asyncio.timeout(timeout):
            while not self.pending:
                chunk = await self.response.content.readany()
                if not chunk:
                    raise EOFError("stream closed")
                self.pending.extend(self.parser.feed(chunk))
        return self.pending.pop(0)

    async def logs(self, n: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while len(out) < n:
            message = await self.next()
            assert message.event == "log", message
            event = json.loads(message.data)
            assert message.id == str(event["seq"])
            out.append(event)
        return out


async def _running_job(ctx: MasterContext) -> FakeProducer:
    return await FakeProducer.start(ctx, await queue_job(ctx))


def _url(job_id: int) -> str:
    return f"/api/v1/jobs/{job_id}/events/stream"


async def test_history_live_end(client: TestClient[Any, Any], ctx: MasterContext) -> None:
    """A tail gets the stored history, then live events in order, then end with the outcome."""
    producer = await _running_job(ctx)
    await producer.emit(3)
    resp = await client.get(_url(producer.job.id))
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    reader = SseReader(resp)
    assert [e["seq"] for e in await reader.logs(3)] == [1, 2, 3]
    await producer.emit(2, note="<script>alert(1)</script>")
    live = await reader.logs(2)
    assert [e["seq"] for e in live] == [4, 5]
    assert live[0]["fields"]["note"] == "<script>alert(1)</script>"
    await producer.finish("harmful")
    end = await reader.next()
    assert end.event == "end"
    assert json.loads(end.data)["outcome"] == "harmful"
    with pytest.raises(EOFError):
        await reader.next()


async def test_reconnect_with_last_event_id(
    client: TestClient[Any, Any], ctx: MasterContext
) -> None:
    """Reconnecting with Last-Event-ID resumes right after it: every seq exactly once."""
    producer = await _running_job(ctx)
    await producer.emit(3)
    first = await client.get(_url(producer.job.id))
    seen = [e["seq"] for e in await SseReader(first).logs(3)]
    first.close()
    await producer.emit(4)  # while disconnected
    second = await client.get(_url(producer.job.id), headers={"Last-Event-ID": str(seen[-1])})
    reader = SseReader(second)
    seen += [e["seq"] for e in await reader.logs(4)]
    await producer.emit(2)
    seen += [e["seq"] for e in await reader.logs(2)]
    await producer.finish()
    assert (await reader.next()).event == "end"
    assert seen == list(range(1, 10))


async def test_no_gap_while_producer_runs(client: TestClient[Any, Any], ctx: MasterContext) -> None:
    """A tail that connects while events are being produced misses none and repeats none."""
    producer = await _running_job(ctx)
    total = 300

    async def produce() -> None:
        for _ in range(total // 5):
            await producer.emit(5)
            await asyncio.sleep(0.002)

    task = asyncio.create_task(produce())
    await asyncio.sleep(0.01)  # let some history accumulate first
    resp = await client.get(_url(producer.job.id))
    assert not task.done(), "the tail must connect while events are still coming"
    reader = SseReader(resp)
    events = await reader.logs(total)
    await task
    assert [e["seq"] for e in events] == list(range(1, total + 1))


async def test_lagging_tail_catches_up_from_store(
    aiohttp_client: ClientFactory, ctx: MasterContext
) -> None:
    """A tail whose bus queue overflows re-reads the store and still gets every event in order."""
    client = await aiohttp_client(app_with(ctx, tail_queue=4))
    producer = await _running_job(ctx)
    await producer.emit(1)
    resp = await client.get(_url(producer.job.id))
    reader = SseReader(resp)
    await reader.logs(1)  # subscribed and past the history
    await producer.emit(100)  # 100 rows into a queue of 4: lagged
    await producer.emit(10)
    events = await reader.logs(110)
    assert [e["seq"] for e in events] == list(range(2, 112))


@pytest.mark.parametrize("how", ["accept", "query"])
async def test_ndjson(client: TestClient[Any, Any], ctx: MasterContext, how: str) -> None:
    """Accept: application/x-ndjson or ?format=ndjson gives one JSON object a line, then end."""
    producer = await _running_job(ctx)
    await producer.emit(2)
    await producer.finish("failed")
    url = _url(producer.job.id) + ("?format=ndjson" if how == "query" else "")
    headers = {"Accept": "application/x-ndjson"} if how == "accept" else {}
    resp = await client.get(url, headers=headers)
    assert resp.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in (await resp.text()).splitlines() if line]
    assert [(x["type"], x.get("seq")) for x in lines] == [("event", 1), ("event", 2), ("end", None)]
    assert lines[-1]["job"]["outcome"] == "failed"


async def test_finished_job_ends_at_once(client: TestClient[Any, Any], ctx: MasterContext) -> None:
    """Tailing a finished job from ?after=N gives the rest of its history and the end."""
    producer = await _running_job(ctx)
    await producer.emit(4)
    await producer.finish()
    resp = await client.get(_url(producer.job.id) + "?after=2")
    text = await resp.text()
    assert text.count("event: log") == 2 and "id: 3\n" in text and "id: 4\n" in text
    assert text.rstrip().split("\n\n")[-1].startswith("event: end")


@pytest.mark.parametrize(
    ("headers", "query"),
    [({"Last-Event-ID": "x"}, ""), ({}, "?after=-1"), ({}, "?format=xml"), ({}, "?colour=1")],
)
async def test_bad_tail_requests(
    client: TestClient[Any, Any], ctx: MasterContext, headers: dict[str, str], query: str
) -> None:
    """A malformed resume point, format or parameter is a 400 JSON error."""
    job = await queue_job(ctx)
    resp = await client.get(_url(job.id) + query, headers=headers)
    assert resp.status == 400
    assert "error" in await resp.json()


async def test_shutdown_ends_open_tails(
    aiohttp_client: ClientFactory, app: web.Application, ctx: MasterContext
) -> None:
    """Closing the app ends open tails at once instead of waiting out the shutdown timeout."""
    client: TestClient[Any, Any] = await aiohttp_client(app)
    producer = await _running_job(ctx)
    job = producer.job
    resp = await client.get(_url(job.id))
    await producer.emit(1)
    await SseReader(resp).logs(1)  # live: the handler is subscribed and waiting
    assert ctx.bus.subscribers(job.id) == 1
    started = time.monotonic()
    await client.close()
    assert time.monotonic() - started < 5.0
    assert ctx.bus.subscribers(job.id) == 0


async def test_shutdown_sends_open_tails_a_closing_marker(
    aiohttp_server: ClientFactory, app: web.Application, ctx: MasterContext
) -> None:
    """At shutdown an open tail gets a ``closing`` event (no id: the resume point stays the
    last event's seq) and a clean end of its stream, at once."""
    server = await aiohttp_server(app)
    producer = await _running_job(ctx)
    async with aiohttp.ClientSession() as session:
        resp = await session.get(server.make_url(_url(producer.job.id)))
        lines = await session.get(server.make_url(_url(producer.job.id) + "?format=ndjson"))
        reader = SseReader(resp)
        await producer.emit(2)
        assert [e["seq"] for e in await reader.logs(2)] == [1, 2]
        assert [json.loads(await lines.content.readline())["seq"] for _ in range(2)] == [1, 2]
        started = time.monotonic()
        shutdown = asyncio.create_task(server.close())
        marker = await reader.next()
        assert (marker.event, marker.id) == ("closing", "2")
        assert json.loads(marker.data) == {"reason": "the master is shutting down"}
        with pytest.raises(EOFError):  # a clean end: not a cut chunk (ClientPayloadError)
            await reader.next()
        rest = (await lines.content.read()).decode().splitlines()  # to a clean end, too
        assert [json.loads(line) for line in rest if line] == [
            {"type": "closing", "reason": "the master is shutting down"}
        ]
        await shutdown
        took = time.monotonic() - started
    assert took < TAIL_CLOSE_S, took  # the tail ended by itself, it was not waited out
    assert ctx.bus.subscribers(producer.job.id) == 0


async def test_out_of_order_publish_still_in_order(
    client: TestClient[Any, Any], ctx: MasterContext
) -> None:
    """Batches published out of order (two slave sessions, say) reach the tail in seq order."""
    producer = await _running_job(ctx)
    await producer.emit(1)
    resp = await client.get(_url(producer.job.id))
    reader = SseReader(resp)
    await reader.logs(1)  # live
    stored_a = await ctx.store.events.save(producer.job.id, producer.lease, producer.make(3))
    stored_b = await ctx.store.events.save(producer.job.id, producer.lease, producer.make(3))
    # 2, then 5-7, then 3-4: the first row fits, a hole follows inside the batch.
    ctx.bus.publish(producer.job.id, [stored_a.new[0], *stored_b.new, *stored_a.new[1:]])
    assert [e["seq"] for e in await reader.logs(6)] == [2, 3, 4, 5, 6, 7]
