"""A connected pair of asyncio streams over a real loopback TCP socket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass
class StreamPair:
    server_reader: asyncio.StreamReader
    server_writer: asyncio.StreamWriter
    client_reader: asyncio.StreamReader
    client_writer: asyncio.StreamWriter


@contextlib.asynccontextmanager
async def stream_pair() -> AsyncIterator[StreamPair]:
    """Yield both ends of one real TCP connection on 127.0.0.1; close both after."""
    accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
        asyncio.get_running_loop().create_future()
    )

    async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.set_result((r, w))

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cr, cw = await asyncio.open_connection("127.0.0.1", port)
    sr, sw = await accepted
    try:
        yield StreamPair(sr, sw, cr, cw)
    finally:
        for w in (cw, sw):
            w.close()
            with contextlib.suppress(OSError):
                await w.wait_closed()
        server.close()
        await server.wait_closed()
