"""Frames: a 4-byte big-endian length, then one msgpack map of that many bytes.

The cap on a frame's length is checked *before* its body is read, so a peer that
announces 4 GiB costs us four bytes of reading. msgpack amplifies memory (an
empty array is one byte on the wire and a Python object in memory), so the
unpacker runs with explicit limits, arrays decode as tuples (the empty tuple is
a shared singleton), and nesting is bounded by msgpack's own stack limit. The
worst case for a frame at the cap is measured by ``tests/unit/test_framing.py``
and written down in ``protocol/README.md``.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import msgpack

from protocol.errors import ConnectionClosed, FrameTooLarge, MalformedFrame

#: Cap before the peer has authenticated (handshake messages are small).
PRE_AUTH_MAX_FRAME = 4 * 1024
#: Default cap after authentication; event batches are sized under it.
MAX_FRAME = 1024 * 1024
#: The largest cap a configuration may set (beyond it the length prefix is nonsense).
ABSOLUTE_MAX_FRAME = 16 * 1024 * 1024

_HEADER = struct.Struct(">I")
HEADER_SIZE = _HEADER.size

# Element counts per container. Nothing pyti sends comes near these; they stop a
# single 32-bit length from reserving gigabytes before any element is read.
MAX_ARRAY_LEN = 100_000
MAX_MAP_LEN = 10_000


_packer = msgpack.Packer(use_bin_type=True)


def pack(obj: dict[str, Any]) -> bytes:
    """One frame (header + body) for a msgpack-able map."""
    body: bytes = _packer.pack(obj)
    return _HEADER.pack(len(body)) + body


def unpack_body(body: bytes) -> dict[str, Any]:
    """Decode one frame body; anything but a single map is ``MalformedFrame``."""
    cap = len(body)
    try:
        obj = msgpack.unpackb(
            body,
            raw=False,
            use_list=False,
            strict_map_key=True,
            max_str_len=cap,
            max_bin_len=cap,
            max_array_len=min(cap, MAX_ARRAY_LEN),
            max_map_len=min(cap, MAX_MAP_LEN),
            max_ext_len=0,
        )
    except (
        ValueError,
        TypeError,
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
    ) as exc:
        raise MalformedFrame(f"undecodable frame body: {exc}") from None
    except RecursionError:
        raise MalformedFrame("frame nests too deeply") from None
    if not isinstance(obj, dict):
        raise MalformedFrame(f"frame body is a {type(obj).__name__}, not a map")
    return obj


async def read_frame(reader: asyncio.StreamReader, max_frame: int) -> dict[str, Any]:
    """Read one frame whose body is at most ``max_frame`` bytes.

    Raises ``FrameTooLarge`` having read only the header, ``MalformedFrame`` for a
    bad body, ``ConnectionClosed`` on EOF (also mid-frame). Cancel-safe only in the
    sense that a cancelled read leaves the stream mid-frame: the caller must then
    close the connection, which is what ``Connection`` does.
    """
    try:
        header = await reader.readexactly(HEADER_SIZE)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ConnectionClosed("peer closed the connection inside a frame header") from None
        raise ConnectionClosed("peer closed the connection") from None
    except (ConnectionError, OSError) as exc:
        raise ConnectionClosed(f"connection lost: {exc}") from None
    (length,) = _HEADER.unpack(header)
    if length > max_frame:
        raise FrameTooLarge(length, max_frame)
    if length == 0:
        raise MalformedFrame("empty frame")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ConnectionClosed("peer closed the connection inside a frame") from None
    except (ConnectionError, OSError) as exc:
        raise ConnectionClosed(f"connection lost: {exc}") from None
    return unpack_body(body)
