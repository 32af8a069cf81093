"""Completion callbacks cannot be turned against the master's own network: non-public targets
are refused at connect time unless allow-listed, and redirects are not followed."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from master.context import MasterContext
from master.http.app import create_app
from master.http.callback_guard import CallbackPolicy, CallbackRefused
from tests.fakes.callback_receiver import Receiver
from tests.integration.test_api_callbacks import _settled
from tests.integration.test_api_harness import (
    CALLBACK_SECRET,
    FakeProducer,
    app_with,
    open_ctx,
    queue_job,
)

ClientFactory = Any


class HostsResolver(AbstractResolver):
    """A hosts file: names map to fixed addresses; anything else does not exist (no DNS)."""

    def __init__(self, hosts: dict[str, str]) -> None:
        self.hosts = hosts
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.hosts:
            raise OSError(f"unknown host {host}")
        address = self.hosts[host]
        return [
            {"hostname": host, "host": address, "port": port, "family": socket.AF_INET,
             "proto": 0, "flags": socket.AI_NUMERICHOST}
        ]  # fmt: skip

    async def close(self) -> None:
        pass


async def _open(tmp_path: Path, allow: list[str] | None) -> MasterContext:
    http: dict[str, Any] = {"callback_secret": CALLBACK_SECRET}
    if allow is not None:
        http["callback_allow"] = allow
    return await open_ctx(tmp_path, http=http)


async def _finish_with_callback(ctx: MasterContext, url: str, project: str = "demo") -> None:
    job = await queue_job(ctx, project, callback_url=url)
    await (await FakeProducer.start(ctx, job)).finish("passed")


def _count(ctx: MasterContext, result: str) -> float:
    return ctx.metrics.counter("callbacks_total", "", ["result"]).value(result)


async def _counted(ctx: MasterContext, result: str, expected: float) -> bool:
    """True once ``callbacks_total{result}`` reaches ``expected`` (the sender counts after
    it records the delivery, so the store can be settled a moment before the metric)."""
    for _ in range(250):
        if _count(ctx, result) == expected:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_loopback_callback_refused_by_default(
    aiohttp_client: ClientFactory, tmp_path: Path, receiver: Receiver
) -> None:
    """Without an allow-list a loopback receiver gets nothing; the callback is refused, not
    retried."""
    ctx = await _open(tmp_path, allow=None)
    try:
        with capture_logs() as logs:
            await aiohttp_client(create_app(ctx))
            await _finish_with_callback(ctx, receiver.url)
            assert await _settled(ctx)
        assert receiver.received == []
        assert _count(ctx, "refused") == 1 and _count(ctx, "failed") == 0
        [refused] = [e for e in logs if e["event"] == "callback_refused"]
        assert "loopback" in refused["reason"] and "callback_allow" in refused["reason"]
    finally:
        await ctx.close()


async def test_loopback_callback_delivered_when_allow_listed(
    aiohttp_client: ClientFactory, tmp_path: Path, receiver: Receiver
) -> None:
    """``callback_allow = ["127.0.0.0/8"]`` lets the same callback through."""
    ctx = await _open(tmp_path, allow=["127.0.0.0/8"])
    try:
        await aiohttp_client(create_app(ctx))
        await _finish_with_callback(ctx, receiver.url)
        async with asyncio.timeout(5):
            await receiver.delivered.wait()
        assert await _settled(ctx) and await _counted(ctx, "delivered", 1)
    finally:
        await ctx.close()


async def test_name_resolving_to_a_private_address_refused_at_connect(
    aiohttp_client: ClientFactory, tmp_path: Path, receiver: Receiver
) -> None:
    """A name is judged by what it resolves to at delivery: a private answer is refused; an
    allow-listed name goes wherever it resolves (here: loopback, itself not allowed)."""
    ctx = await _open(tmp_path, allow=["hooks.allowed.test"])
    port = receiver.server.port
    hosts = HostsResolver({"rebind.test": "10.11.12.13", "hooks.allowed.test": "127.0.0.1"})
    try:
        await aiohttp_client(app_with(ctx, callback_resolver=hosts))
        with capture_logs() as logs:
            await _finish_with_callback(ctx, f"http://rebind.test:{port}/hook")
            assert await _settled(ctx)
        assert hosts.asked == ["rebind.test"] and receiver.received == []
        [refused] = [e for e in logs if e["event"] == "callback_refused"]
        assert "rebind.test (10.11.12.13) is a private address" in refused["reason"]
        await _finish_with_callback(ctx, f"http://hooks.allowed.test:{port}/hook", "other")
        async with asyncio.timeout(5):
            await receiver.delivered.wait()
        assert await _settled(ctx) and await _counted(ctx, "delivered", 1)
    finally:
        await ctx.close()


async def test_redirect_is_not_followed(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    """A receiver answering 302 to another loopback URL: that URL is never requested."""
    hits: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPFound("/inner")

    async def inner(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", redirect)
    app.router.add_route("*", "/inner", inner)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    ctx = await _open(tmp_path, allow=["127.0.0.0/8"])
    try:
        await aiohttp_client(app_with(ctx, callback_backoff=60.0))
        await _finish_with_callback(ctx, str(server.make_url("/hook")))
        for _ in range(250):
            if _count(ctx, "failed"):
                break
            await asyncio.sleep(0.02)
        assert hits == ["/hook"] and _count(ctx, "failed") == 1
    finally:
        await ctx.close()
        await server.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/x",
        "http://[::1]:1/x",
        "http://[::ffff:127.0.0.1]:1/x",
        "http://169.254.169.254/latest",
        "http://10.0.0.1/x",
        "http://[fe80::1]/x",
        "http://224.0.0.1/x",
        "http://0.0.0.0/x",
    ],
)
def test_policy_refuses_non_public_literals(url: str) -> None:
    """Loopback, link-local, private, multicast and unspecified literals are refused by default."""
    with pytest.raises(CallbackRefused):
        CallbackPolicy().check_url(url)


def test_policy_allow_list_entries() -> None:
    """Networks and host names parse; anything else is a configuration error."""
    policy = CallbackPolicy.parse(["10.1.0.0/16", "127.0.0.1", "Hooks.Example."])
    policy.check_url("http://10.1.2.3/x")
    assert policy.host_allowed("hooks.example") and not policy.host_allowed("other.example")
    with pytest.raises(CallbackRefused):
        policy.check_url("http://10.2.0.1/x")
    with pytest.raises(ValueError, match="neither"):
        CallbackPolicy.parse(["http://x/"])
