"""Fault table row 13: many live-tail subscribers on one job, some slow, some not reading."""

# ruff: noqa: ASYNC110 (polling master counters, which have no event to wait on)

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from typing import Any

from master.context import MasterContext
from master.http.keys import FEEDS
from tests.integration.test_api_harness import FakeProducer, app_with, ctx, queue_job

__all__ = ["ctx"]  # the fixture used below

ClientFactory = Any  # pytest-aiohttp's aiohttp_client fixture

#: Subscribers (the issue's 1,000: PYTI_TAIL_SUBSCRIBERS=1000); 10 % of them slow:
#: half read 16 KiB every 50 ms while the job runs, half never read at all.
SUBSCRIBERS = int(os.environ.get("PYTI_TAIL_SUBSCRIBERS", "20"))
EVENTS = 3000
WRITE_TIMEOUT = 2.0
_ID = re.compile(rb"\nid: (\d+)\n")


async def _subscriber(
    port: int, job_id: int, kind: str, produced: asyncio.Event
) -> tuple[list[int], bool, float]:
    """One raw HTTP tail client: the ids it saw, whether it saw ``end``, when it finished.

    ``fast`` reads all it can; ``slow`` stops reading once the events flow until they
    are all produced (more than its socket buffers and its queue absorb), then reads
    all it can; ``stalled`` reads the headers and nothing more."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if kind != "fast":  # else loopback autotuning buffers megabytes: nobody looks slow
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(f"GET /api/v1/jobs/{job_id}/events/stream HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    data = bytearray()
    paused = False
    started = time.monotonic()
    try:
        if kind == "stalled":
            await reader.read(1)  # the headers came; now never read again
            await asyncio.sleep(30)
        while b"event: end" not in data:
            chunk = await reader.read(262144)
            if not chunk:
                break
            data.extend(chunk)
            if kind == "slow" and b"id: " in data and not paused:
                paused = True
                await produced.wait()
    except (ConnectionError, asyncio.CancelledError):
        if kind != "stalled":
            raise
    finally:
        writer.close()
    ids = [int(m) for m in _ID.findall(bytes(data))]
    return ids, b"event: end" in data, time.monotonic() - started


async def test_many_subscribers_slow_ones_lag_or_are_dropped_others_complete(
    aiohttp_client: ClientFactory, ctx: MasterContext
) -> None:
    """With 10 % slow subscribers, fast ones get every event once, in order, and the end;
    slow readers lag and catch up from the store; non-readers are dropped on the write
    timeout; nothing is left subscribed afterwards."""
    app = app_with(ctx, tail_queue=200, tail_write_timeout=WRITE_TIMEOUT)
    client = await aiohttp_client(app)
    port = client.server.port
    producer = await FakeProducer.start(ctx, await queue_job(ctx))
    slow = max(2, SUBSCRIBERS // 10)
    kinds = ["slow"] * (slow // 2) + ["stalled"] * (slow - slow // 2)
    kinds += ["fast"] * (SUBSCRIBERS - len(kinds))
    produced = asyncio.Event()
    tasks = [asyncio.create_task(_subscriber(port, producer.job.id, k, produced)) for k in kinds]
    clients = ctx.metrics.gauge("tail_clients", "")
    deadline = time.monotonic() + 10
    while clients.value() < SUBSCRIBERS and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    started = time.monotonic()
    for _ in range(EVENTS // 100):
        await producer.emit(100, text="y" * 1000)
    produced.set()
    await producer.finish("passed")
    readers = [t for t, k in zip(tasks, kinds, strict=True) if k == "fast"]
    results = await asyncio.wait_for(asyncio.gather(*readers), 30)
    produced_for = time.monotonic() - started
    for ids, ended, _ in results:
        assert ids == list(range(1, EVENTS + 1)) and ended
    # A slow reader is either dropped (it stalled past the write timeout) or caught up
    # from the store after it lagged; nobody is left half-served.
    slow_results = await asyncio.wait_for(
        asyncio.gather(*(t for t, k in zip(tasks, kinds, strict=True) if k == "slow")), 30
    )
    caught_up = sum(1 for ids, ended, _ in slow_results if ended)
    for ids, ended, _ in slow_results:
        assert ids == list(range(1, len(ids) + 1))
        assert ended == (len(ids) == EVENTS)
    dropped = ctx.metrics.counter("tail_dropped_total", "")
    lagged = ctx.metrics.counter("tail_lagged_total", "")
    stalled = kinds.count("stalled")
    expected_drops = stalled + len(slow_results) - caught_up
    deadline = time.monotonic() + 10
    while dropped.value() < expected_drops and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert dropped.value() == expected_drops
    assert lagged.value() >= caught_up
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    deadline = time.monotonic() + 5
    while clients.value() > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert clients.value() == 0
    assert len(app[FEEDS]) == 0  # every subscription released
    print(
        f"tail: {SUBSCRIBERS} subscribers ({stalled} stalled, {len(slow_results)} slow, "
        f"{caught_up} of them caught up), "
        f"{EVENTS} events; readers done {produced_for:.2f} s after the first event; "
        f"dropped {dropped.value():.0f}, lagged {lagged.value():.0f}"
    )
