"""A completion-callback (webhook) receiver on loopback, for the master's callback tests."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestServer


class Receiver:
    """A webhook receiver on loopback that fails the first ``fail`` deliveries with 500."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.delivered = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_post("/hook", self.hook)
        self.server = TestServer(self.app, host="127.0.0.1")

    async def hook(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        if len(self.received) <= self.fail:
            return web.Response(status=500)
        self.delivered.set()
        return web.Response(status=204)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/hook"))
