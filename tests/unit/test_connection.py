"""The Connection object: messages both ways, heartbeats, hostile peers, one close path."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator

import pytest

from protocol.connection import Connection, State
from protocol.errors import ConnectionClosed, FrameTooLarge, MalformedFrame, PeerTimeout
from protocol.framing import pack
from protocol.messages import Bye, EventsAck, Heartbeat, JobAccept, JobFile, encode
from tests.unit.loopback import StreamPair, stream_pair
from tests.unit.protocol_samples import SAMPLES


@contextlib.asynccontextmanager
async def pair(**kw: float) -> AsyncIterator[tuple[Connection, Connection, StreamPair]]:
    async with stream_pair() as p:
        a = Connection(p.server_reader, p.server_writer, name="a", **kw)  # type: ignore[arg-type]
        b = Connection(p.client_reader, p.client_writer, name="b", **kw)  # type: ignore[arg-type]
        a.start()
        b.start()
        try:
            yield a, b, p
        finally:
            await a.close()
            await b.close()


async def test_messages_flow_both_ways_in_order() -> None:
    """Messages sent on one side arrive on the other, in order."""
    async with pair() as (a, b, _):
        for i in range(100):
            await a.send(EventsAck(job_id=1, lease=1, seq=i))
        await b.send(JobAccept(job_id=9, lease=2))
        got = [await b.recv() for _ in range(100)]
        assert [m.seq for m in got if isinstance(m, EventsAck)] == list(range(100))
        assert await a.recv() == JobAccept(job_id=9, lease=2)


async def test_every_sample_message_crosses_the_wire() -> None:
    """Each message type survives a real socket round trip."""
    async with pair() as (a, b, _):
        for msg in SAMPLES.values():
            if isinstance(msg, Bye):
                continue
            await a.send(msg)
        for msg in SAMPLES.values():
            if not isinstance(msg, Bye):
                assert await b.recv() == msg


async def test_heartbeats_keep_an_idle_connection_alive() -> None:
    """Idle peers exchange heartbeats and stay connected past the timeout."""
    async with pair(heartbeat_interval=0.05, heartbeat_timeout=0.3) as (a, b, _):
        await asyncio.sleep(0.6)
        assert a.state is State.RUNNING and b.state is State.RUNNING
        assert isinstance(await b.recv(), Heartbeat)


async def test_silent_peer_times_out() -> None:
    """A peer that sends nothing at all is disconnected with PeerTimeout."""
    async with stream_pair() as p:
        conn = Connection(
            p.server_reader,
            p.server_writer,
            name="a",
            heartbeat_interval=0.05,
            heartbeat_timeout=0.2,
        )
        conn.start()
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(conn.recv(), 2.0)
        assert isinstance(info.value.__cause__, PeerTimeout)
        assert isinstance(conn.error, PeerTimeout)
        await conn.close()


@pytest.mark.parametrize(
    ("garbage", "error"),
    [
        (struct.pack(">I", 0xFFFFFFFF), FrameTooLarge),
        (struct.pack(">I", 5) + b"\xc1\xc1\xc1\xc1\xc1", MalformedFrame),
        (pack({"type": "launch"}), Exception),
    ],
    ids=["4GiB-prefix", "garbage-body", "unknown-type"],
)
async def test_hostile_frames_close_only_that_connection(garbage: bytes, error: type) -> None:
    """A malformed frame ends its connection with the error; another connection is unaffected."""
    async with pair() as (a, _b, p), pair() as (c, d, _):
        p.client_writer.write(garbage)
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(a.recv(), 2.0)
        assert isinstance(info.value.__cause__, error)
        await c.send(JobAccept(job_id=1, lease=1))
        assert await d.recv() == JobAccept(job_id=1, lease=1)


async def test_messages_before_close_are_still_delivered() -> None:
    """What arrived before the peer closed is delivered, then ConnectionClosed."""
    async with pair() as (a, b, _):
        await a.send(JobAccept(job_id=1, lease=1))
        await a.send(JobAccept(job_id=2, lease=1))
        await asyncio.sleep(0.1)
        await a.close("done")
        assert await b.recv() == JobAccept(job_id=1, lease=1)
        assert await b.recv() == JobAccept(job_id=2, lease=1)
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(b.recv(), 2.0)
        assert "done" in str(info.value.__cause__)


async def test_close_is_idempotent_and_send_after_close_fails() -> None:
    """close() may be called many times; send() afterwards raises ConnectionClosed."""
    async with pair() as (a, _, _):
        await a.close()
        await a.close()
        assert a.state is State.CLOSED
        with pytest.raises(ConnectionClosed):
            await a.send(JobAccept(job_id=1, lease=1))


class _BrokenReader:
    """A stream reader with a bug: its first read raises something no decoder expects."""

    async def readexactly(self, n: int) -> bytes:
        raise RuntimeError("bug in the reader")


async def test_a_loop_that_failed_on_its_own_surfaces_from_close_after_the_socket_closed() -> None:
    """A loop's own failure is not swallowed: close() raises it once the close is complete."""
    async with stream_pair() as p:
        conn = Connection(_BrokenReader(), p.server_writer, name="a")  # type: ignore[arg-type]
        conn.start()
        with pytest.raises(RuntimeError, match="bug in the reader"):
            await conn.close()
        assert conn.state is State.CLOSED
        assert p.server_writer.is_closing()


async def test_cancelled_recv_loses_nothing() -> None:
    """Cancelling a waiting recv() does not swallow the next message."""
    async with pair() as (a, b, _):
        waiter = asyncio.create_task(b.recv())
        await asyncio.sleep(0.05)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        await a.send(JobAccept(job_id=5, lease=1))
        assert await asyncio.wait_for(b.recv(), 2.0) == JobAccept(job_id=5, lease=1)


async def test_peer_that_stops_reading_is_disconnected() -> None:
    """A peer that never reads fills the buffers; the writer gives up after write_timeout."""
    async with stream_pair() as p:
        conn = Connection(
            p.server_reader,
            p.server_writer,
            name="a",
            write_timeout=0.5,
            heartbeat_interval=10,
            heartbeat_timeout=60,
            outbound_limit=4,
        )
        conn.start()
        big = JobFile(
            job_id=1, lease=1, filename="f", offset=0, data=b"x" * 512 * 1024, final=False
        )
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    await conn.send(big)
        assert isinstance(conn.error, PeerTimeout)
        await conn.close()


async def test_repr_shows_state() -> None:
    """The run state shows in repr."""
    async with pair() as (a, _, _):
        assert "running" in repr(a)
        await a.close()
        assert "closed" in repr(a)
        assert encode(Bye(reason="x"))["type"] == "bye"


async def test_wait_unwritten_returns_once_the_socket_took_the_frames() -> None:
    """wait_unwritten(n) returns when at most n queued messages are still unwritten."""
    async with pair(heartbeat_interval=10, heartbeat_timeout=60) as (a, b, _):
        for i in range(20):
            await a.send(EventsAck(job_id=1, lease=1, seq=i))
        await asyncio.wait_for(a.wait_unwritten(0), 2.0)
        assert a.unwritten == 0
        assert [await b.recv() for _ in range(20)][-1] == EventsAck(job_id=1, lease=1, seq=19)


async def test_wait_unwritten_ends_with_the_connection() -> None:
    """A producer waiting for a peer that does not read is released by the close."""
    async with stream_pair() as p:
        conn = Connection(
            p.server_reader,
            p.server_writer,
            name="a",
            heartbeat_interval=10,
            heartbeat_timeout=60,
            outbound_limit=64,
        )
        conn.start()
        big = JobFile(
            job_id=1, lease=1, filename="f", offset=0, data=b"x" * 512 * 1024, final=False
        )
        for _ in range(32):
            await conn.send(big)
        waiter = asyncio.create_task(conn.wait_unwritten(0))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        conn.close_nowait("enough")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(waiter, 2.0)
        await conn.close()
        assert conn.state is State.CLOSED
