"""Live-tail encoding: SSE frames, NDJSON lines, de-duplication, the shared encode cache."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from master.client.api import SseParser
from master.http.fanout import Batch
from master.http.sse import (
    WRITE_SLICE,
    EncodedEvents,
    Stalled,
    TailWriter,
    in_order,
    sse_event,
)
from master.jobs import EventRow


class FakeResponse:
    """Collects what a TailWriter writes (a stand-in for aiohttp's StreamResponse)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.chunks.append(data)


def row(seq: int, **fields: Any) -> EventRow:
    return EventRow(
        job_id=1, seq=seq, ts=1.5, level="info", event="output", phase="tests", fields=fields
    )


async def test_sse_roundtrip_any_chunking() -> None:
    """What the writer frames, the client parser reads back, however the bytes are split."""
    response = FakeResponse()
    writer = TailWriter(response, "sse", EncodedEvents())  # type: ignore[arg-type]
    await writer.start()
    hostile = "line\nwith\r\nbreaks \u2028 and \x1b[31m escapes"
    await writer.rows([row(1, line=hostile), row(2)])
    wire = b"".join(response.chunks)
    for size in (1, 2, 7, len(wire)):
        parser = SseParser()
        messages = []
        for i in range(0, len(wire), size):
            messages += parser.feed(wire[i : i + size])
        assert [(m.event, m.id) for m in messages] == [("log", "1"), ("log", "2")]
        assert json.loads(messages[0].data)["fields"]["line"] == hostile


async def test_writer_skips_seen_seqs() -> None:
    """Rows at or below the last sent seq are not sent again (history/live overlap)."""
    response = FakeResponse()
    writer = TailWriter(response, "ndjson", EncodedEvents())  # type: ignore[arg-type]
    await writer.rows([row(1), row(2)])
    await writer.rows([row(2), row(3), row(1)])
    await writer.rows([row(3)])
    lines = [json.loads(x) for x in b"".join(response.chunks).splitlines()]
    assert [x["seq"] for x in lines] == [1, 2, 3]
    assert all(x["type"] == "event" for x in lines)
    assert len(response.chunks) == 2  # one write per batch, none for an all-seen batch


def test_encode_cache_bounded() -> None:
    """The cache frames a row once for both formats and evicts the oldest beyond capacity."""
    cache = EncodedEvents(capacity=3)
    first = cache.frames(row(1))
    assert cache.frames(row(1)) is first
    sse_frame, ndjson_line = first
    assert sse_frame.startswith(b"id: 1\nevent: log\ndata: {")
    assert ndjson_line.startswith(b'{"type":"event","job_id":1,"seq":1,')
    for seq in range(2, 6):
        cache.frames(row(seq))
    assert len(cache) == 3
    assert cache.frames(row(1)) is not first  # evicted, encoded again


def test_sse_event_frame() -> None:
    """A frame is id, event, one data line, blank line; the end frame has no id."""
    assert sse_event(7, "log", b"{}") == b"id: 7\nevent: log\ndata: {}\n\n"
    assert sse_event(None, "end", b"{}") == b"event: end\ndata: {}\n\n"


def test_in_order() -> None:
    """Rows are in order after ``last`` only without a hole; already-sent rows do not count."""
    assert in_order([row(3), row(4)], 2)
    assert in_order([row(1), row(2), row(3)], 2)  # overlap with what was sent
    assert not in_order([row(4)], 2)  # hole: 3 missing
    assert not in_order([row(3), row(5), row(4)], 2)  # out of order inside
    assert in_order(Batch([row(1), row(2)]), 0)
    assert not in_order(Batch([row(2), row(3)]), 0)
    assert not in_order(Batch([row(3), row(5), row(4)]), 2)


async def test_shared_batch_encoded_once() -> None:
    """Two clients sending the same contiguous batch get the very same bytes object."""
    batch = Batch([row(1), row(2), row(3)])
    assert batch.contiguous and not Batch([row(1), row(3)]).contiguous
    cache = EncodedEvents()
    first, second = FakeResponse(), FakeResponse()
    for response in (first, second):
        await TailWriter(response, "sse", cache).rows(batch)  # type: ignore[arg-type]
    assert first.chunks[0] is second.chunks[0]
    assert first.chunks[0].count(b"event: log") == 3
    late = FakeResponse()
    writer = TailWriter(late, "sse", cache)  # type: ignore[arg-type]
    writer.last_seq = 2  # saw 1 and 2 already: only 3 goes out
    await writer.rows(batch)
    assert late.chunks == [cache.frames(row(3))[0]]


class SlowResponse(FakeResponse):
    """A client that takes one write every ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def write(self, data: bytes) -> None:
        await asyncio.sleep(self.delay)
        self.chunks.append(bytes(data))


async def test_large_writes_go_in_timed_slices_and_a_stalled_client_raises() -> None:
    """A write is cut in 64 KiB slices each with its own deadline: a slow reader that keeps
    taking slices gets everything; one that takes nothing within the timeout is Stalled."""
    data = b"x" * (WRITE_SLICE * 3 + 5)
    slow = SlowResponse(0.05)
    writer = TailWriter(slow, "sse", EncodedEvents(), write_timeout=0.2)  # type: ignore[arg-type]
    await writer._write(data)
    assert len(slow.chunks) == 4 and b"".join(slow.chunks) == data
    with pytest.raises(Stalled):
        stuck = TailWriter(SlowResponse(5.0), "sse", EncodedEvents(), write_timeout=0.1)  # type: ignore[arg-type]
        await stuck._write(b"y")
