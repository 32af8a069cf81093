"""Resolve ``project[==version]`` to a release's files through the PyPI JSON API.

``{pypi_url}/pypi/<name>/json`` gives the newest release, ``/pypi/<name>/<version>/json``
a given one. The answer is untrusted input like any other: every file entry is
checked (a bare file name, a 64-hex sha256, an http(s) URL, a known package type)
and entries that fail are dropped; a release with no usable file is refused. Its
``Requires-Python`` (``info`` and the kept files) chooses the image (``master.images``).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from packaging.version import InvalidVersion, Version

from master.http.validation import ApiError
from master.images import requires_python

#: The whole resolution (connect, answer, body) must finish within this.
TIMEOUT_S = 15.0
#: A release's JSON is small; PyPI's largest project pages are a few MiB.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
PACKAGETYPES = frozenset({"sdist", "bdist_wheel"})

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_FILENAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]{0,250}$")


@dataclass(frozen=True, slots=True)
class Release:
    """A resolved release: PyPI's name for the project, the version, the files to test."""

    project: str
    version: str
    files: list[dict[str, Any]]
    requires_python: str | None = None


def _file_entry(raw: object) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    filename = raw.get("filename")
    digests = raw.get("digests")
    sha256 = digests.get("sha256") if isinstance(digests, dict) else None
    url = raw.get("url")
    size = raw.get("size")
    packagetype = raw.get("packagetype")
    if not (
        isinstance(filename, str)
        and _FILENAME_RE.match(filename)
        and ".." not in filename
        and isinstance(sha256, str)
        and _SHA256_RE.match(sha256)
        and isinstance(url, str)
        and urlsplit(url).scheme in ("http", "https")
        and isinstance(size, int)
        and not isinstance(size, bool)
        and size >= 0
        and packagetype in PACKAGETYPES
    ):
        return None
    return {
        "filename": filename,
        "sha256": sha256,
        "size": size,
        "packagetype": packagetype,
        "url": url,
    }


def parse_release(answer: object) -> Release:
    """A ``Release`` from a JSON API answer; 502 if PyPI's answer is not the expected shape."""
    info = answer.get("info") if isinstance(answer, dict) else None
    urls = answer.get("urls") if isinstance(answer, dict) else None
    if not isinstance(info, dict) or not isinstance(urls, list):
        raise ApiError(502, "upstream_error", "the package index answered an unexpected shape")
    name = info.get("name")
    version = info.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        raise ApiError(502, "upstream_error", "the package index gave no name or version")
    kept = [(raw, entry) for raw, entry in ((raw, _file_entry(raw)) for raw in urls) if entry]
    files = [entry for _, entry in kept]
    if not files:
        raise ApiError(
            422,
            "no_files",
            f"{name} {version} has no sdist or wheel to test",
        )
    # PyPI's spelling of both ("1.0" asked, "1.0" or "1.0.0" as published).
    spec = requires_python(
        [info.get("requires_python"), *(raw.get("requires_python") for raw, _ in kept)]
    )
    return Release(project=name, version=version, files=files, requires_python=spec)


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


async def resolve_release(
    session: aiohttp.ClientSession, pypi_url: str, project: str, version: str | None
) -> Release:
    """Ask the index for ``project`` (newest release, or ``version``).

    Raises ``ApiError``: 404 when the index does not know the project or version,
    502 when it fails, times out or answers nonsense. Cancellation propagates.
    """
    base = pypi_url.rstrip("/")
    project_url = f"{base}/pypi/{quote(project, safe='')}/json"
    what = project if version is None else f"{project} {version}"
    if version is None:
        answer = await _get_json(session, project_url)
    else:
        answer = await _get_json(
            session, f"{base}/pypi/{quote(project, safe='')}/{quote(version, safe='')}/json"
        )
        if answer is None:
            # Some indexes and mirrors (and PyPI seen from some networks) serve only
            # the project document; its "releases" map holds every version's files.
            answer = _release_from_project(await _get_json(session, project_url), version)
    if answer is None:
        raise ApiError(404, "release_not_found", f"the package index has no {what}")
    return parse_release(answer)


def _release_from_project(doc: object, version: str) -> dict[str, Any] | None:
    """A release answer ({info, urls}) cut from a project document, or None if absent."""
    if not isinstance(doc, dict):
        return None
    info, releases = doc.get("info"), doc.get("releases")
    if not isinstance(info, dict) or not isinstance(releases, dict):
        return None
    key = version if version in releases else None
    if key is None:
        try:
            wanted = Version(version)
        except InvalidVersion:
            return None
        key = next((k for k in releases if _same_version(k, wanted)), None)
    if key is None:
        return None
    return {"info": {**info, "version": key}, "urls": releases[key]}


def _same_version(candidate: str, wanted: Version) -> bool:
    try:
        return Version(candidate) == wanted
    except InvalidVersion:
        return False


async def _get_json(session: aiohttp.ClientSession, url: str) -> object | None:
    """The decoded JSON at ``url``; None on 404; ``ApiError`` for anything else amiss."""
    try:
        async with (
            asyncio.timeout(TIMEOUT_S),
            session.get(url, allow_redirects=True, max_redirects=3) as response,
        ):
            if response.status == 404:
                return None
            if response.status != 200:
                raise ApiError(
                    502, "upstream_error", f"the package index answered {response.status}"
                )
            body = await _read_capped(response, MAX_ANSWER_BYTES)
    except TimeoutError:
        raise ApiError(
            504, "upstream_timeout", "the package index did not answer in time"
        ) from None
    except aiohttp.ClientError as exc:
        raise ApiError(502, "upstream_error", f"cannot reach the package index: {exc}") from None
    try:
        answer: object = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(502, "upstream_error", "the package index answered invalid JSON") from None
    return answer
