"""Resolve ``project[==version]`` to a release's files for a submission.

Reading the index's JSON API (the versioned-URL fallback, relative file URLs, the
checks of every entry) is `master.pypi`'s, shared with the feed; this module gives the
HTTP API's answers: 404 when the index does not know the release, 502 when it fails
or answers something malformed, 504 when it is too slow, 422 when the release has no
sdist or wheel to test.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp

from master.http.validation import ApiError
from master.pypi import JsonDocument, MalformedRelease, Release, fetch_release

#: A release's JSON is small; PyPI's largest project pages are a few MiB.
MAX_ANSWER_BYTES = 16 * 1024 * 1024


async def resolve_release(
    session: aiohttp.ClientSession,
    pypi_url: str,
    project: str,
    version: str | None,
    *,
    timeout: float,
) -> Release:
    """Ask the index for ``project`` (newest release, or ``version``) within ``timeout`` s.

    Raises ``ApiError``: 404 when the index does not know the project or version,
    422 when the release has no file to test, 502 when the index fails or answers
    nonsense, 504 when the whole lookup takes longer. Cancellation propagates.
    """

    async def get(url: str) -> JsonDocument | None:
        return await _get_json(session, url)

    what = project if version is None else f"{project} {version}"
    try:
        async with asyncio.timeout(timeout):
            release = await fetch_release(get, pypi_url, project, version)
    except TimeoutError:
        raise ApiError(
            504, "upstream_timeout", "the package index did not answer in time"
        ) from None
    except MalformedRelease as exc:
        raise ApiError(
            502, "upstream_error", f"the package index answered unusably: {exc.detail}"
        ) from None
    if release is None:
        raise ApiError(404, "release_not_found", f"the package index has no {what}")
    if not release.files:
        raise ApiError(
            422, "no_files", f"{release.name} {release.version} has no sdist or wheel to test"
        )
    return release


async def _read_capped(response: aiohttp.ClientResponse, cap: int) -> bytes:
    """The whole body, or ``ApiError`` once it passes ``cap`` bytes.

    ``content.read(n)`` returns what has arrived (at most n bytes), not the whole
    body: a real index sends its answer in many chunks.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > cap:
            raise ApiError(502, "upstream_error", "the package index answer is too large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _get_json(session: aiohttp.ClientSession, url: str) -> JsonDocument | None:
    """The decoded JSON at ``url`` and where it came from; None on 404; ``ApiError`` else."""
    try:
        async with session.get(url, allow_redirects=True, max_redirects=3) as response:
            if response.status == 404:
                return None
            if response.status != 200:
                raise ApiError(
                    502, "upstream_error", f"the package index answered {response.status}"
                )
            body = await _read_capped(response, MAX_ANSWER_BYTES)
            final_url = str(response.url)
    except aiohttp.ClientError as exc:
        raise ApiError(502, "upstream_error", f"cannot reach the package index: {exc}") from None
    try:
        data: object = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(502, "upstream_error", "the package index answered invalid JSON") from None
    return JsonDocument(final_url, data)
