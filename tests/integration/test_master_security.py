"""Unknown peers and bad frames against a real master: refused, and harmless to others."""

from __future__ import annotations

import asyncio
import os
import struct
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from master.jobs import JobState
from master.slaves.listener import SlaveListener
from protocol.errors import HandshakeFailed
from protocol.framing import pack, read_frame
from protocol.handshake import client_handshake
from protocol.messages import (
    Capabilities,
    Heartbeat,
    ImageInfo,
    JobOffer,
    ResultAck,
    decode,
    encode,
)
from tests.fakes.slave import FakeSlave
from tests.integration.conftest import SECRET, Harness


async def test_wrong_secret_is_refused_with_nothing_but_a_reason(harness: Harness) -> None:
    """A slave with the wrong secret gets 'authentication failed', no session, no job."""
    await harness.submit()
    intruder = FakeSlave("127.0.0.1", harness.port, b"not-the-secret", name="intruder")
    with capture_logs() as logs, pytest.raises(HandshakeFailed) as info:
        await intruder.connect()
    assert "authentication failed" in str(info.value)
    assert harness.ctx.slaves.list() == []
    failures = harness.ctx.metrics.counter("slave_handshake_failures_total", "", ["reason"])
    assert failures.value("authentication_failed") == 1
    assert any(e["event"] == "slave_handshake_failed" for e in logs)
    assert (await harness.ctx.store.jobs.counts())["state"]["queued"] == 1


async def test_a_connected_name_cannot_be_taken_over(harness: Harness) -> None:
    """A second connection with a connected slave's name is rejected; the first keeps working."""
    first = await harness.slave("twin")
    second = harness.fake("twin")
    with pytest.raises(HandshakeFailed) as info:
        await second.connect()
    assert "already connected" in str(info.value)
    await harness.submit()
    assert (await first.next(JobOffer)).project == "demo"


async def test_unknown_peer_gets_only_the_hello(harness: Harness) -> None:
    """A peer that does not authenticate reads one hello (a nonce), then is cut off."""
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
    try:
        hello = decode(await read_frame(reader, 4096))
        assert hello.TYPE == "hello"
        writer.write(struct.pack(">I", 1 << 30))  # announces 1 GiB: refused on the header
        await writer.drain()
        async with asyncio.timeout(5):
            rest = await reader.read()
        assert rest == b""
    finally:
        writer.close()


async def test_malformed_frames_end_only_their_own_connection(harness: Harness) -> None:
    """Garbage from one authenticated slave and from raw peers leaves another slave's job fine."""
    worker = await harness.slave("worker", mode="accept")
    job = await harness.submit()
    offer = await worker.next(JobOffer)
    await harness.until_job(job.id, lambda j: j.state is JobState.RUNNING)

    vandal = await harness.slave("vandal")
    await vandal.send_raw(struct.pack(">I", 5) + b"\xc1\xc1\xc1\xc1\xc1")  # not msgpack
    await vandal.conn.wait_closed()  # type: ignore[union-attr]
    oversize = await harness.slave("oversize")
    await oversize.send_raw(struct.pack(">I", 64 * 1024 * 1024))
    await oversize.conn.wait_closed()  # type: ignore[union-attr]
    liar = await harness.slave("liar")
    await liar.send_raw(pack({"type": "job_offer", "job_id": "x"}))  # invalid message
    await liar.conn.wait_closed()  # type: ignore[union-attr]
    for _ in range(5):
        _r, w = await asyncio.open_connection("127.0.0.1", harness.port)
        w.write(b"GET / HTTP/1.1\r\n\r\n")
        w.close()

    await harness.until(lambda: [s.name for s in harness.ctx.slaves.list()] == ["worker"])
    await worker.send_events(job.id, offer.lease, 3)
    await worker.send_result(job.id, offer.lease, "passed", last_seq=3)
    await worker.next(ResultAck)
    done = await harness.job(job.id)
    assert done.outcome == "passed"
    assert len(await harness.ctx.store.events.read(job.id)) == 3


async def test_slave_that_stops_reading_does_not_stall_dispatch(
    harness: Harness, tmp_path: Path
) -> None:
    """A slave that stops reading mid-upload is cut off by the write timeout; meanwhile
    and afterwards other slaves get their jobs, including the one it was sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
    try:
        caps = Capabilities(slots=1, accel="tcg", images=(ImageInfo("bookworm", "3.11", "x"),))
        welcome = await client_handshake(
            reader, writer, secret=SECRET, name="sleeper", software_version="t", capabilities=caps
        )
        writer.write(pack(encode(Heartbeat(ts=time.time()))))
        await writer.drain()
        await harness.until(lambda: harness.ctx.slaves.get("sleeper") is not None)
        big = tmp_path / "big-1.0.tar.gz"
        big.write_bytes(os.urandom(16 * 1024 * 1024))
        upload = await harness.submit(
            "big",
            files=[
                {
                    "filename": big.name,
                    "sha256": "0" * 64,
                    "size": 16 * 1024 * 1024,
                    "packagetype": "sdist",
                    "url": "",
                    "path": str(big),
                }
            ],
        )
        await harness.until_job(upload.id, lambda j: j.slave == "sleeper")
        worker = await harness.slave("worker", mode="accept", slots=3)
        small = await harness.submit("small")
        got = await worker.next(JobOffer, timeout=2 * welcome.heartbeat_timeout)
        assert got.job_id == small.id  # served while the sleeper's socket is full
        # The sleeper is dropped within the write timeout and its offer goes to the worker.
        await harness.until(lambda: harness.ctx.slaves.get("sleeper") is None, timeout=10)
        await worker.wait_for(lambda: len(worker.inbox["job_offer"]) == 2, timeout=10)
        assert worker.inbox["job_offer"][1].job_id == upload.id  # type: ignore[attr-defined]
    finally:
        writer.close()


async def test_handshake_flood_is_capped_and_harmless(harness: Harness) -> None:
    """Beyond the cap of pending handshakes new peers are closed at once; a connected
    slave keeps getting work throughout."""
    listener = SlaveListener(harness.ctx, port=0, max_pending_handshakes=4)
    await listener.start()
    flood: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        worker = await harness.slave("worker", port=listener.port, mode="accept")
        for _ in range(10):
            flood.append(await asyncio.open_connection("127.0.0.1", listener.port))
        firsts = []
        for reader, _ in flood:
            async with asyncio.timeout(5):
                firsts.append(await reader.read(1))
        assert firsts.count(b"") == 6  # closed without a word
        await harness.submit()
        assert (await worker.next(JobOffer)).project == "demo"
        refused = harness.ctx.metrics.counter("slave_handshake_failures_total", "", ["reason"])
        assert refused.value("too_many_pending") == 6
    finally:
        for _, writer in flood:
            writer.close()
        await listener.stop(0)
