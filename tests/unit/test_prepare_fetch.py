"""Fetching release files: timeouts, HTTP failures, cancellation, file selection."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from slave.prepare import FetchFailed, GuestTarget, HttpTimeouts, ReleaseNotFound, ReleaseRequest
from slave.prepare.cache import BlobCache
from slave.prepare.fetch import download_file, fetch_listing, select_files
from tests.fakes.dists import build_wheel
from tests.fakes.pypi import FakePyPI

GUEST = GuestTarget("3.11", "manylinux_2_36_x86_64")
# Incompressible, so the wheel stays ~20 KiB: 20 chunks when the fake trickles.
NOISE = random.Random(7).randbytes(20_000)
FAST = HttpTimeouts(connect=2, read=0.5, api_total=0.5, file_total=0.5)


@pytest.fixture
async def pypi() -> AsyncIterator[FakePyPI]:
    async with FakePyPI() as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def test_slow_index_fails_within_its_timeout(
    pypi: FakePyPI, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A JSON API that does not answer raises FetchFailed after api_total, not later."""
    pypi.add_project(tmp_path, "app", "1.0")
    pypi.faults.delay = 0.6
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(FetchFailed):
        await fetch_listing(session, pypi.base_url, ReleaseRequest("app"), FAST)
    assert loop.time() - started < 0.6


async def test_trickling_download_fails_and_leaves_no_partial_file(
    pypi: FakePyPI, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A file that trickles past file_total raises FetchFailed; no .part, no blob remains."""
    whl = build_wheel(tmp_path / "idx", "app", "1.0", {"app/data.bin": NOISE})
    pypi.add(whl)
    listing = await fetch_listing(session, pypi.base_url, ReleaseRequest("app"), FAST)
    pypi.faults.trickle["/files/"] = 0.2
    dest = tmp_path / "files"
    dest.mkdir()
    cache = BlobCache(tmp_path / "cache")
    with pytest.raises(FetchFailed):
        await download_file(session, listing.files[0], dest, cache, FAST)
    assert list(dest.iterdir()) == []
    assert not cache.has(listing.files[0].sha256)


async def test_cancelled_download_leaves_no_partial_file(
    pypi: FakePyPI, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Cancelling a download mid-transfer removes the partial file and re-raises."""
    pypi.add(build_wheel(tmp_path / "idx", "app", "1.0", {"app/x.bin": NOISE}))
    listing = await fetch_listing(session, pypi.base_url, ReleaseRequest("app"), FAST)
    pypi.faults.trickle["/files/"] = 0.05
    dest = tmp_path / "files"
    dest.mkdir()
    slow = HttpTimeouts(file_total=60, read=60)
    task = asyncio.create_task(
        download_file(session, listing.files[0], dest, BlobCache(tmp_path / "c"), slow)
    )
    await pypi.wait_for_request("/files/")
    await asyncio.sleep(0.2)  # a few 1 KiB chunks at 0.05 s each: mid-transfer
    assert [p.name for p in dest.iterdir()] == [".app-1.0-py3-none-any.whl.part"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(dest.iterdir()) == []


async def test_http_error_on_a_file_is_fetch_failed(
    pypi: FakePyPI, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A 503 from the file host raises FetchFailed carrying the URL."""
    whl = build_wheel(tmp_path, "app", "1.0", {})
    pypi.add(whl)
    pypi.faults.status[f"/files/{whl.name}"] = 503
    listing = await fetch_listing(session, pypi.base_url, ReleaseRequest("app"), FAST)
    with pytest.raises(FetchFailed) as err:
        await download_file(session, listing.files[0], tmp_path, BlobCache(tmp_path / "c"), FAST)
    assert err.value.url.endswith(whl.name) and "503" in err.value.reason


async def test_missing_project_is_release_not_found(
    pypi: FakePyPI, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A project the index answers 404 for raises ReleaseNotFound, not FetchFailed."""
    pypi.add_project(tmp_path, "app", "1.0")
    pypi.faults.missing.add("app")
    with pytest.raises(ReleaseNotFound):
        await fetch_listing(session, pypi.base_url, ReleaseRequest("app", "1.0"), FAST)


async def test_only_wheels_for_the_guest_are_selected(
    pypi: FakePyPI, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The sdist and guest-compatible wheels are chosen; Windows and newer-glibc ones not."""
    pypi.add_project(tmp_path / "a", "app", "1.0", wheel=False)
    for tag in (
        "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
        "cp311-cp311-win_amd64",
        "cp311-cp311-manylinux_2_39_x86_64",
        "cp312-cp312-manylinux_2_17_x86_64",
        "py3-none-any",
    ):
        pypi.add(build_wheel(tmp_path / "w", "app", "1.0", {}, tag=tag))
    listing = await fetch_listing(session, pypi.base_url, ReleaseRequest("app"), FAST)
    chosen = [f.filename for f in select_files(listing, GUEST)]
    assert chosen == [
        "app-1.0.tar.gz",
        "app-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "app-1.0-py3-none-any.whl",
    ]


async def test_release_without_usable_file_is_not_found(
    pypi: FakePyPI, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Only a Windows wheel: ReleaseNotFound explains there is nothing for the guest."""
    pypi.add(build_wheel(tmp_path, "app", "1.0", {}, tag="cp311-cp311-win_amd64"))
    listing = await fetch_listing(session, pypi.base_url, ReleaseRequest("app"), FAST)
    with pytest.raises(ReleaseNotFound, match="manylinux_2_36_x86_64"):
        select_files(listing, GUEST)


async def test_versioned_url_missing_falls_back_to_the_project_document(
    pypi: FakePyPI, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """When /pypi/NAME/VERSION/json is 404, the version's files come from /pypi/NAME/json."""
    pypi.add_project(tmp_path, "app", "1.0")
    pypi.add_project(tmp_path, "app", "2.0")
    pypi.faults.status["/pypi/app/1.0/json"] = 404
    listing = await fetch_listing(session, pypi.base_url, ReleaseRequest("app", "1.0"), FAST)
    assert listing.version == "1.0"
    assert listing.files and all("1.0" in f.filename for f in listing.files)
    assert pypi.count("/pypi/app/json") == 1
    with pytest.raises(ReleaseNotFound):
        await fetch_listing(session, pypi.base_url, ReleaseRequest("app", "3.0"), FAST)
