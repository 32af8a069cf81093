"""Resolving a release through the index's JSON API reads whole, chunked answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from master.http.releases import resolve_release
from master.http.validation import ApiError

ANSWER = {
    "info": {"name": "six", "version": "1.16.0"},
    "urls": [
        {
            "filename": "six-1.16.0.tar.gz",
            "url": "http://127.0.0.1/six-1.16.0.tar.gz",
            "digests": {
                "sha256": "1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926"
            },
            "packagetype": "sdist",
            "size": 34041,
            "yanked": False,
        }
    ],
    # Padding, so the answer is far larger than one read of the socket.
    "releases": {f"0.{i}": [] for i in range(5000)},
}


@pytest.fixture
async def index() -> AsyncIterator[str]:
    """A loopback index that sends its JSON answer in small, slow chunks (like a real one)."""

    async def answer(request: web.Request) -> web.StreamResponse:
        data = json.dumps(ANSWER).encode()
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for start in range(0, len(data), 4096):
            await response.write(data[start : start + 4096])
            await asyncio.sleep(0.001)
        await response.write_eof()
        return response

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for _ in range(20 * 16):  # 20 MiB in 64 KiB chunks: over the 16 MiB cap
            await response.write(b" " * 65536)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/pypi/six/json", answer)
    app.router.add_get("/pypi/huge/json", huge)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_chunked_answer_is_read_whole(index: str) -> None:
    """An answer arriving in many chunks is read to the end, not cut at the first chunk."""
    async with aiohttp.ClientSession() as session:
        release = await resolve_release(session, index, "six", None)
    assert release.version == "1.16.0"
    assert [f["filename"] for f in release.files] == ["six-1.16.0.tar.gz"]


async def test_answer_over_the_cap_is_an_upstream_error(index: str) -> None:
    """An answer over 16 MiB is refused with a 502, not buffered whole."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ApiError) as info:
            await resolve_release(session, index, "huge", None)
    assert info.value.status == 502 and "too large" in info.value.detail


async def test_versioned_404_falls_back_to_the_project_document(index: str) -> None:
    """When /pypi/NAME/VERSION/json is 404, the version comes from the project's releases."""
    ANSWER["releases"]["1.15.0"] = [dict(ANSWER["urls"][0], filename="six-1.15.0.tar.gz")]  # type: ignore[index]
    async with aiohttp.ClientSession() as session:
        release = await resolve_release(session, index, "six", "1.15.0")
        assert release.version == "1.15.0"
        assert [f["filename"] for f in release.files] == ["six-1.15.0.tar.gz"]
        with pytest.raises(ApiError) as info:
            await resolve_release(session, index, "six", "9.9")
    assert info.value.status == 404
