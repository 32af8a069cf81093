"""Frames: caps before reading, hostile bodies, bounded decode memory."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import tracemalloc

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import ConnectionClosed, FrameTooLarge, InvalidMessage, MalformedFrame
from protocol.framing import (
    HEADER_SIZE,
    MAX_FRAME,
    PRE_AUTH_MAX_FRAME,
    pack,
    read_frame,
    unpack_body,
)
from protocol.messages import decode, encode
from tests.unit.protocol_samples import SAMPLES


def _reader(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


async def test_oversized_length_rejected_before_body_is_read() -> None:
    """A 4 GiB length prefix fails at once, having read only the 4-byte header."""
    reader = _reader(struct.pack(">I", 0xFFFFFFFF), eof=False)  # no body ever comes
    with pytest.raises(FrameTooLarge) as info:
        await asyncio.wait_for(read_frame(reader, MAX_FRAME), 1.0)
    assert info.value.length == 0xFFFFFFFF and info.value.cap == MAX_FRAME


async def test_pre_auth_cap_is_small() -> None:
    """A frame over 4 KiB is refused under the pre-authentication cap."""
    frame = pack({"type": "bye", "reason": "x" * 5000})
    with pytest.raises(FrameTooLarge):
        await read_frame(_reader(frame), PRE_AUTH_MAX_FRAME)


async def test_half_a_frame_then_eof() -> None:
    """A peer that sends half a frame and closes ends with ConnectionClosed."""
    frame = pack(encode(SAMPLES["bye"]))
    with pytest.raises(ConnectionClosed, match="inside a frame"):
        await read_frame(_reader(frame[: len(frame) // 2]), MAX_FRAME)


async def test_half_a_header_then_eof() -> None:
    """EOF inside the header is a ConnectionClosed too."""
    with pytest.raises(ConnectionClosed, match="header"):
        await read_frame(_reader(b"\x00\x00"), MAX_FRAME)


async def test_empty_frame_is_malformed() -> None:
    """A zero-length frame is malformed."""
    with pytest.raises(MalformedFrame):
        await read_frame(_reader(struct.pack(">I", 0)), MAX_FRAME)


async def test_frames_back_to_back() -> None:
    """Several frames in one buffer come out one by one."""
    data = b"".join(pack(encode(SAMPLES[t])) for t in ("hello", "bye", "drain"))
    reader = _reader(data)
    got = [decode(await read_frame(reader, MAX_FRAME)).TYPE for _ in range(3)]
    assert got == ["hello", "bye", "drain"]


@pytest.mark.parametrize(
    "body",
    [
        b"\xc1",
        b"\x92\x01\x02",
        b"\xa3abc",
        b"\x81\x01\x02",
        b"\x81\xa1a",
        b"\x80\x80",
        b"\xd4\x01\x00",
    ],
    ids=["never-used-byte", "array", "string", "int-key", "truncated", "extra-data", "ext-type"],
)
def test_malformed_bodies(body: bytes) -> None:
    """Bodies that are not exactly one string-keyed map are MalformedFrame."""
    with pytest.raises(MalformedFrame):
        unpack_body(body)


def test_deep_nesting_is_refused() -> None:
    """A frame nesting arrays beyond msgpack's stack limit is refused, not a crash."""
    body = b"\x81\xa1k" + b"\x91" * 5000 + b"\x90"
    with pytest.raises(MalformedFrame):
        unpack_body(body)


def _peak_decode_bytes(body: bytes) -> int:
    tracemalloc.start()
    try:
        with contextlib.suppress(MalformedFrame):
            unpack_body(body)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _bomb(cap: int) -> bytes:
    """The worst shape we know: arrays (within max_array_len) of empty maps, filling the cap."""
    inner_n = 1000
    inner = b"\xdc" + struct.pack(">H", inner_n) + b"\x80" * inner_n
    outer_n = (cap - 16) // len(inner)
    tail_n = cap - 16 - outer_n * len(inner) - 3
    body = b"\x81\xa1k\xdd" + struct.pack(">I", outer_n + 1) + inner * outer_n
    body += b"\xdc" + struct.pack(">H", max(tail_n, 0)) + b"\x80" * max(tail_n, 0)
    assert len(body) <= cap
    return body


@pytest.mark.parametrize(
    ("cap", "limit"), [(MAX_FRAME, 80 * MAX_FRAME), (PRE_AUTH_MAX_FRAME, 1 << 20)]
)
def test_decode_bomb_memory_is_bounded(cap: int, limit: int) -> None:
    """A worst-case frame at the cap decodes within a bounded, measured memory growth.

    Measured: ~69 MiB for a 1 MiB frame of empty maps (≈ 68×), ~0.3 MiB at the
    4 KiB pre-authentication cap. A flat array of 1 M empty maps is refused by
    max_array_len before anything is allocated.
    """
    body = _bomb(cap)
    peak = _peak_decode_bytes(body)
    assert peak < limit, f"decoding {len(body)} bytes peaked at {peak / 2**20:.1f} MiB"
    flat = b"\x81\xa1k\xdd" + struct.pack(">I", cap - 8) + b"\x80" * (cap - 8)
    assert _peak_decode_bytes(flat) < 1 << 20


def test_packer_recovers_after_an_unpackable_value() -> None:
    """A failed pack does not leave bytes behind in the shared packer."""
    with pytest.raises(TypeError):
        pack({"bad": object()})
    frame = pack({"type": "bye", "reason": "ok"})
    assert unpack_body(frame[HEADER_SIZE:]) == {"type": "bye", "reason": "ok"}


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes_only_raise_protocol_errors(data: bytes) -> None:
    """Random bodies either decode to a message or raise MalformedFrame/InvalidMessage."""
    with contextlib.suppress(MalformedFrame, InvalidMessage):
        decode(unpack_body(data))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_fuzz_truncated_and_flipped_frames(tag: str, data: st.DataObject) -> None:
    """Valid frames truncated or with a byte flipped never raise anything else."""
    body = bytearray(pack(encode(SAMPLES[tag]))[HEADER_SIZE:])
    cut = data.draw(st.integers(min_value=1, max_value=len(body)))
    body = body[:cut]
    if data.draw(st.booleans()):
        pos = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
        body[pos] ^= data.draw(st.integers(min_value=1, max_value=255))
    with contextlib.suppress(MalformedFrame, InvalidMessage):
        decode(unpack_body(bytes(body)))


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.floats()
        | st.text()
        | st.binary(),
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.text(max_size=8), children, max_size=5)
        ),
        max_leaves=30,
    )
)
def test_fuzz_structured_values_in_message_fields(value: object) -> None:
    """Any msgpack value in any field of a real message is accepted or InvalidMessage."""
    for tag in ("job_offer", "events", "auth", "job_result"):
        wire = unpack_body(pack(encode(SAMPLES[tag]))[HEADER_SIZE:])
        for key in list(wire):
            if key == "type":
                continue
            mutated = dict(wire)
            mutated[key] = value
            body = msgpack.packb(mutated, use_bin_type=True)
            with contextlib.suppress(MalformedFrame, InvalidMessage):
                decode(unpack_body(body))
