"""Resolving a release for a submission reads whole, chunked answers from the index."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from master.http.releases import resolve_release
from master.http.validation import ApiError
from tests.fakes.pypi import FakePyPI, default_files


@pytest.fixture
async def index() -> AsyncIterator[FakePyPI]:
    """The fake index, sending JSON answers in 1 KiB chunks (like a real one, in many reads)."""
    async with FakePyPI() as pypi:
        pypi.add_release("six", "1.15.0")
        pypi.add_release("six", "1.16.0")
        pypi.faults.trickle["/pypi/"] = 0.001
        yield pypi


async def test_chunked_answer_is_read_whole(index: FakePyPI) -> None:
    """An answer arriving in many chunks is read to the end, not cut at the first chunk."""
    async with aiohttp.ClientSession() as session:
        release = await resolve_release(session, index.base_url, "six", None, timeout=10)
    assert release.version == "1.16.0"
    assert [f.filename for f in release.files] == [
        f["filename"] for f in default_files(index.base_url, "six", "1.16.0")
    ]


async def test_answer_over_the_cap_is_an_upstream_error(index: FakePyPI) -> None:
    """An answer over 16 MiB is refused with a 502, not buffered whole."""
    index.faults.huge("/pypi/huge/json", 20 << 20, content_length=False)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ApiError) as info:
            await resolve_release(session, index.base_url, "huge", None, timeout=10)
    assert info.value.status == 502 and "too large" in info.value.detail


async def test_versioned_404_falls_back_to_the_project_document(index: FakePyPI) -> None:
    """When /pypi/NAME/VERSION/json is 404, the version comes from the project's releases."""
    index.versioned_urls = False
    async with aiohttp.ClientSession() as session:
        release = await resolve_release(session, index.base_url, "six", "1.15.0", timeout=10)
        assert release.version == "1.15.0"
        assert {f.filename for f in release.files} == {
            "six-1.15.0.tar.gz",
            "six-1.15.0-py3-none-any.whl",
        }
        with pytest.raises(ApiError) as info:
            await resolve_release(session, index.base_url, "six", "9.9", timeout=10)
    assert info.value.status == 404


async def test_pep_440_equal_version_is_found(index: FakePyPI) -> None:
    """Asking for "1.15" finds the release published as "1.15.0" (PyPI's spelling kept)."""
    index.versioned_urls = False
    async with aiohttp.ClientSession() as session:
        release = await resolve_release(session, index.base_url, "six", "1.15", timeout=10)
    assert release.version == "1.15.0"


async def test_malformed_file_entry_is_an_upstream_error(index: FakePyPI) -> None:
    """A file entry with a bad digest makes the answer unusable: 502, nothing guessed."""
    files = default_files(index.base_url, "bad", "1.0")
    files[0]["digests"] = {"sha256": "abc"}
    index.add_release("bad", "1.0", files=files)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ApiError) as info:
            await resolve_release(session, index.base_url, "bad", "1.0", timeout=10)
    assert info.value.status == 502 and "sha256" in info.value.detail


@pytest.mark.parametrize("redirect", [False, True])
async def test_relative_file_urls_resolve_against_the_document(
    index: FakePyPI, redirect: bool
) -> None:
    """Relative file URLs (as mirrors serve them) become absolute against the page read,
    after redirects."""
    index.relative_urls = True
    index.redirect_json = redirect
    async with aiohttp.ClientSession() as session:
        for version in (None, "1.15.0"):
            release = await resolve_release(session, index.base_url, "six", version, timeout=10)
            assert release.files
            for f in release.files:
                assert f.url == f"{index.base_url}/files/{f.filename}"
