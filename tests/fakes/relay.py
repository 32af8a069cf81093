"""A loopback TCP relay that can stop forwarding without closing (a silent partition).

``Relay(target_port)`` listens on 127.0.0.1; every connection to it is paired with
one to the target and bytes are copied both ways. ``partition()`` stops copying
in both directions (nothing is read, nothing is closed, EOFs are held back), as a
switch that silently drops everything would; ``heal()`` lets the held bytes and
EOFs through. ``close()`` ends every pair and the listener.
"""

from __future__ import annotations

import asyncio
import contextlib


class Relay:
    """See the module docstring. ``await start()``, then ``port``; ``await close()`` always."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._pair, "127.0.0.1", 0)

    def partition(self) -> None:
        self._flowing.clear()

    def heal(self) -> None:
        self._flowing.set()

    async def _pair(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            down_w.close()
            return
        self._writers.update((down_w, up_w))
        for src, dst in ((down_r, up_w), (up_r, down_w)):
            task = asyncio.create_task(self._pump(src, dst), name="relay-pump")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await src.read(65536)
                await self._flowing.wait()  # read before the cut: held, not lost
                if not data:
                    break
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                dst.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in self._writers:
            w.close()
        self._writers.clear()
        if self._server is not None:
            await self._server.wait_closed()
