"""Fetch a release's own files through PyPI's JSON API, sha256 verified while streaming.

File URLs may be relative to the JSON document (``../../packages/...``), as mirrors
and caching proxies serve them: `file_url` resolves them against the URL the document
was actually read from, after redirects (as pip does for the simple index).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urldefrag, urljoin, urlsplit

import aiohttp
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from slave.prepare.cache import BlobCache, sha256_file
from slave.prepare.errors import ChecksumMismatch, FetchFailed, ReleaseNotFound
from slave.prepare.models import GuestTarget, HttpTimeouts, ReleaseRequest

_CHUNK = 64 * 1024
# Project JSON of very old, busy projects reaches tens of MiB; more is not an index.
_MAX_JSON_BYTES = 64 << 20
_SAFE_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]{0,254}$")
_SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz")


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """One file of a release as the JSON API describes it (untrusted until verified)."""

    filename: str
    url: str
    sha256: str
    size: int | None
    packagetype: str
    yanked: bool


@dataclass(frozen=True, slots=True)
class ReleaseListing:
    name: str
    version: str
    files: list[RemoteFile]


@dataclass(frozen=True, slots=True)
class _Document:
    """A decoded JSON answer and the URL it was read from (after redirects)."""

    url: str
    data: Any


def file_url(document_url: str, href: str, sha256: str) -> str | None:
    """``href`` made absolute against ``document_url``; None when it is not to be fetched.

    Relative references are resolved as a browser (and pip) would. The fragment is
    dropped: it is never sent, and a ``#sha256=`` in it must agree with ``sha256``.
    After joining, only http and https URLs with a host are accepted.
    """
    url, fragment = urldefrag(urljoin(document_url, href))
    if fragment.startswith("sha256=") and fragment.removeprefix("sha256=").lower() != sha256:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return url


async def _get_json(
    session: aiohttp.ClientSession, url: str, timeouts: HttpTimeouts
) -> _Document | None:
    """GET and decode JSON; None on 404. Raises `FetchFailed` for anything else amiss."""
    timeout = aiohttp.ClientTimeout(
        total=timeouts.api_total, sock_connect=timeouts.connect, sock_read=timeouts.read
    )
    try:
        async with session.get(url, timeout=timeout, allow_redirects=True) as resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise FetchFailed(url, f"HTTP {resp.status}")
            body = bytearray()
            async for chunk in resp.content.iter_chunked(_CHUNK):
                body += chunk
                if len(body) > _MAX_JSON_BYTES:
                    raise FetchFailed(url, f"response larger than {_MAX_JSON_BYTES} bytes")
            final_url = str(resp.url)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise FetchFailed(url, f"{type(exc).__name__}: {exc}") from exc
    try:
        # Large project documents take tens of milliseconds to decode.
        data = await asyncio.to_thread(json.loads, bytes(body))
    except ValueError as exc:
        raise FetchFailed(url, f"invalid JSON: {exc}") from exc
    return _Document(final_url, data)


def _parse_file(entry: Any, url: str) -> RemoteFile | None:
    """A file entry of the JSON document read from ``url``, or None when it is unusable
    (no sha256, odd name, a URL that is not http(s) once resolved)."""
    if not isinstance(entry, dict):
        raise FetchFailed(url, "malformed file entry")
    filename, href = entry.get("filename"), entry.get("url")
    digests = entry.get("digests")
    sha256 = digests.get("sha256") if isinstance(digests, dict) else None
    if not isinstance(filename, str) or not _SAFE_FILENAME.match(filename) or ".." in filename:
        return None
    if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", sha256):
        return None
    absolute = file_url(url, href, sha256) if isinstance(href, str) else None
    if absolute is None:
        return None
    size = entry.get("size")
    return RemoteFile(
        filename=filename,
        url=absolute,
        sha256=sha256,
        size=size if isinstance(size, int) and size >= 0 else None,
        packagetype=str(entry.get("packagetype", "")),
        yanked=bool(entry.get("yanked", False)),
    )


def _files(doc: Any, key: str, url: str) -> list[RemoteFile]:
    entries = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise FetchFailed(url, f"JSON without a {key!r} list")
    return [f for f in (_parse_file(e, url) for e in entries) if f is not None]


def _version_key(version: str) -> tuple[bool, Version]:
    try:
        parsed = Version(version)
    except InvalidVersion:
        return (False, Version("0"))
    return (not parsed.is_prerelease, parsed)


async def fetch_listing(
    session: aiohttp.ClientSession, pypi_url: str, request: ReleaseRequest, timeouts: HttpTimeouts
) -> ReleaseListing:
    """The release's name, version and files. Yanked files are left out unless allowed.

    Without a version, the newest release that still has unyanked files is chosen
    (stable releases before pre-releases). Raises `ReleaseNotFound` or `FetchFailed`.
    """
    base = pypi_url.rstrip("/")
    project = quote(request.project, safe="")
    if request.version is None:
        url = f"{base}/pypi/{project}/json"
    else:
        url = f"{base}/pypi/{project}/{quote(request.version, safe='')}/json"
    answer = await _get_json(session, url, timeouts)
    from_project_doc = False
    if answer is None and request.version is not None:
        # Some indexes and mirrors (and PyPI seen from some networks) serve only
        # the project document; its "releases" map holds every version's files.
        answer = await _get_json(session, f"{base}/pypi/{project}/json", timeouts)
        from_project_doc = True
    if answer is None:
        raise ReleaseNotFound(request.project, request.version, "not on the index")
    # Relative file URLs are relative to where the document really came from.
    url, doc = answer.url, answer.data
    info = doc.get("info") if isinstance(doc, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get("name"), str):
        raise FetchFailed(url, "JSON without info.name")
    name, version = info["name"], str(info.get("version"))
    if from_project_doc:
        assert request.version is not None
        found = _find_version(doc.get("releases"), request.version)
        if found is None:
            raise ReleaseNotFound(request.project, request.version, "not on the index")
        version = found
        files = _files(doc["releases"], version, url)
    else:
        files = _files(doc, "urls", url)
    if not request.allow_yanked:
        live = [f for f in files if not f.yanked]
        if not live and request.version is None:
            version, live = _newest_unyanked(doc, url)
        if not live:
            raise ReleaseNotFound(request.project, request.version or version, "yanked")
        files = live
    if not files:
        raise ReleaseNotFound(request.project, request.version or version, "no files")
    return ReleaseListing(name=name, version=version, files=files)


def _find_version(releases: Any, wanted: str) -> str | None:
    """The key of ``releases`` that is ``wanted`` (exactly, or equal as a PEP 440 version)."""
    if not isinstance(releases, dict):
        return None
    if wanted in releases:
        return wanted
    try:
        target = Version(wanted)
    except InvalidVersion:
        return None
    for key in releases:
        try:
            if Version(key) == target:
                return str(key)
        except InvalidVersion:
            continue
    return None


def _newest_unyanked(doc: Any, url: str) -> tuple[str, list[RemoteFile]]:
    releases = doc.get("releases")
    if not isinstance(releases, dict):
        return ("", [])
    for version in sorted(releases, key=_version_key, reverse=True):
        live = [f for f in _files(releases, version, url) if not f.yanked]
        if live:
            return (version, live)
    return ("", [])


def select_files(listing: ReleaseListing, target: GuestTarget) -> list[RemoteFile]:
    """The sdist (first one) and the wheels the guest can install, best wheel first."""
    ranking = {tag: index for index, tag in enumerate(target.tags())}
    wheels: list[tuple[int, RemoteFile]] = []
    sdists: list[RemoteFile] = []
    for remote in listing.files:
        if remote.filename.endswith(".whl"):
            try:
                _, _, _, tags = parse_wheel_filename(remote.filename)
            except InvalidWheelFilename:
                continue
            ranks = [ranking[t] for t in tags if t in ranking]
            if ranks:
                wheels.append((min(ranks), remote))
        elif remote.packagetype == "sdist" or remote.filename.endswith(_SDIST_SUFFIXES):
            sdists.append(remote)
    chosen = sdists[:1] + [remote for _, remote in sorted(wheels, key=lambda w: w[0])]
    if not chosen:
        raise ReleaseNotFound(
            listing.name, listing.version, f"no sdist and no wheel for {target.platform}"
        )
    return chosen


async def download_file(
    session: aiohttp.ClientSession,
    remote: RemoteFile,
    dest_dir: Path,
    cache: BlobCache,
    timeouts: HttpTimeouts,
) -> Path:
    """``dest_dir/filename`` (``dest_dir`` exists), from the cache or downloaded.

    The sha256 is checked while streaming; on mismatch, error or cancel the partial
    file is removed and nothing enters the cache. Raises `FetchFailed` or
    `ChecksumMismatch`.
    """
    dest = dest_dir / remote.filename
    if cache.has(remote.sha256):
        await cache.place(remote.sha256, dest)
        return dest
    part = dest_dir / f".{remote.filename}.part"
    timeout = aiohttp.ClientTimeout(
        total=timeouts.file_total, sock_connect=timeouts.connect, sock_read=timeouts.read
    )
    digest = hashlib.sha256()
    received = 0
    try:
        try:
            async with session.get(remote.url, timeout=timeout) as resp:
                if resp.status != 200:
                    raise FetchFailed(remote.url, f"HTTP {resp.status}")
                # Writes of 64 KiB chunks land in the page cache in microseconds;
                # a thread hop per chunk would cost more than it saves.
                with part.open("wb") as out:
                    async for chunk in resp.content.iter_chunked(_CHUNK):
                        received += len(chunk)
                        if remote.size is not None and received > remote.size:
                            raise ChecksumMismatch(
                                remote.filename, remote.sha256, f"more than {remote.size} bytes"
                            )
                        digest.update(chunk)
                        out.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FetchFailed(remote.url, f"{type(exc).__name__}: {exc}") from exc
        actual = digest.hexdigest()
        if actual != remote.sha256:
            raise ChecksumMismatch(remote.filename, remote.sha256, actual)
        part.replace(dest)
    finally:
        part.unlink(missing_ok=True)
    await cache.store(dest, actual)
    return dest


async def take_upload(path: Path, sha256: str, dest_dir: Path, cache: BlobCache) -> Path:
    """Copy an uploaded release file into existing ``dest_dir`` after checking its sha256."""
    name = path.name
    if not _SAFE_FILENAME.match(name) or ".." in name:
        raise ReleaseNotFound(name, None, "unsafe file name")
    actual = await asyncio.to_thread(sha256_file, path)
    if actual != sha256.lower():
        raise ChecksumMismatch(name, sha256, actual)
    dest = dest_dir / name
    await asyncio.to_thread(shutil.copyfile, path, dest)
    await cache.store(dest, actual)
    return dest
