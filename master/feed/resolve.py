"""Releases described by PyPI's JSON API, checked before anything is queued.

``{pypi_url}/pypi/<name>/<version>/json`` gives a release's files (filename,
sha256, size, packagetype, url), ``requires_python`` and whether it is yanked;
``{pypi_url}/pypi/<name>/json`` gives a project's newest version and the upload
times of all its releases (for new projects and for gap backfill). A 404 is "not
there (yet)" — the JSON API lags uploads by a little — and is answered with None
so the caller can retry later; anything else unexpected raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from master.feed.errors import ResolveError
from master.feed.fetch import HttpClient
from master.feed.items import normalize_name, valid_name, valid_version

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: what a slave can test; older kinds (bdist_egg, bdist_wininst, ...) are skipped
PACKAGETYPES = frozenset({"sdist", "bdist_wheel"})


@dataclass(frozen=True, slots=True)
class ReleaseFile:
    """One distribution file of a release, as a job carries it."""

    filename: str
    sha256: str
    size: int
    packagetype: str
    url: str

    def to_dict(self) -> dict[str, Any]:
        """The ``files`` entry of a `JobRequest`."""
        return {
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
            "packagetype": self.packagetype,
            "url": self.url,
        }


@dataclass(frozen=True, slots=True)
class Release:
    """A release as the JSON API describes it."""

    name: str
    version: str
    files: tuple[ReleaseFile, ...]
    requires_python: str | None
    yanked: bool

    @property
    def largest_file(self) -> int:
        """Size in bytes of the release's biggest file (0 without files)."""
        return max((f.size for f in self.files), default=0)


@dataclass(frozen=True, slots=True)
class ProjectReleases:
    """A project's newest version and when each of its releases was first uploaded."""

    newest: str
    uploaded: dict[str, float | None]  # version -> earliest upload time, None if unknown


def _file(project: str, version: str, raw: Any) -> ReleaseFile:
    if not isinstance(raw, dict):
        raise ResolveError(project, version, "a file entry is not an object")
    filename, digests = raw.get("filename"), raw.get("digests")
    size, packagetype, url = raw.get("size"), raw.get("packagetype"), raw.get("url")
    sha256 = digests.get("sha256") if isinstance(digests, dict) else None
    if not isinstance(filename, str) or not filename or "/" in filename or "\\" in filename:
        raise ResolveError(project, version, f"bad filename {filename!r}")
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise ResolveError(project, version, f"{filename}: no valid sha256")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ResolveError(project, version, f"{filename}: bad size {size!r}")
    if not isinstance(packagetype, str) or not packagetype:
        raise ResolveError(project, version, f"{filename}: bad packagetype {packagetype!r}")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise ResolveError(project, version, f"{filename}: bad url {url!r}")
    return ReleaseFile(filename, sha256, size, packagetype, url)


def _upload_time(raw: Any) -> float | None:
    if not isinstance(raw, dict):
        return None
    value = raw.get("upload_time_iso_8601") or raw.get("upload_time")
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:  # PyPI's plain "upload_time" is UTC without a suffix
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class Resolver:
    """JSON API lookups against ``pypi_url`` (no trailing slash)."""

    def __init__(self, http: HttpClient, pypi_url: str, *, max_bytes: int) -> None:
        self._http = http
        self._base = pypi_url.rstrip("/")
        self._max_bytes = max_bytes

    def release_url(self, project: str, version: str) -> str:
        """The release's JSON API URL (segments quoted even though they were validated)."""
        return f"{self._base}/pypi/{quote(project, safe='')}/{quote(version, safe='')}/json"

    async def release(self, project: str, version: str) -> Release | None:
        """The release, or None while the JSON API does not have it (or has no files yet).

        Files of kinds a slave cannot test (eggs, Windows installers) are left out;
        a release with only those comes back with no files.

        Raises `FetchError` (network, timeout, HTTP errors other than 404) or
        `ResolveError` (the document does not describe this release properly).
        """
        doc = await self._http.get_json(
            self.release_url(project, version), max_bytes=self._max_bytes
        )
        if doc is None:
            # Some indexes and mirrors (and PyPI seen from some networks) serve only
            # the project document; its "releases" map holds every version's files.
            doc = await self._release_from_project(project, version)
        if doc is None:
            return None
        info = doc.get("info") if isinstance(doc, dict) else None
        urls = doc.get("urls") if isinstance(doc, dict) else None
        if not isinstance(info, dict) or not isinstance(urls, list):
            raise ResolveError(project, version, "no 'info' object and 'urls' list")
        name, got_version = info.get("name"), info.get("version")
        # valid_name too: str.lower() maps some non-ASCII letters (the Kelvin sign)
        # to ASCII ones, so normalised equality alone would let look-alikes through.
        if (
            not isinstance(name, str)
            or not valid_name(name)
            or normalize_name(name) != normalize_name(project)
        ):
            raise ResolveError(project, version, f"JSON describes project {name!r}")
        if got_version != version:
            raise ResolveError(project, version, f"JSON describes version {got_version!r}")
        if not urls:
            return None  # files are still being uploaded: retry later like a 404
        requires_python = info.get("requires_python")
        return Release(
            name=name,
            version=version,
            files=tuple(
                f
                for f in (_file(project, version, raw) for raw in urls)
                if f.packagetype in PACKAGETYPES
            ),
            requires_python=requires_python if isinstance(requires_python, str) else None,
            yanked=info.get("yanked") is True,
        )

    async def _release_from_project(self, project: str, version: str) -> Any:
        """A release document ({info, urls}) cut from the project document, or None."""
        url = f"{self._base}/pypi/{quote(project, safe='')}/json"
        doc = await self._http.get_json(url, max_bytes=self._max_bytes)
        info = doc.get("info") if isinstance(doc, dict) else None
        releases = doc.get("releases") if isinstance(doc, dict) else None
        if not isinstance(info, dict) or not isinstance(releases, dict):
            return None
        files = releases.get(version)
        if not isinstance(files, list):
            return None
        # The project's info describes its newest release: take what is per file.
        first = files[0] if files and isinstance(files[0], dict) else {}
        return {
            "info": {
                **info,
                "version": version,
                "requires_python": first.get("requires_python"),
                "yanked": bool(files)
                and all(isinstance(f, dict) and f.get("yanked") is True for f in files),
            },
            "urls": files,
        }

    async def project(self, project: str) -> ProjectReleases | None:
        """Newest version and per-release upload times; None when the project is unknown.

        Raises `FetchError` or `ResolveError` like `release`.
        """
        url = f"{self._base}/pypi/{quote(project, safe='')}/json"
        doc = await self._http.get_json(url, max_bytes=self._max_bytes)
        if doc is None:
            return None
        info = doc.get("info") if isinstance(doc, dict) else None
        releases = doc.get("releases") if isinstance(doc, dict) else None
        newest = info.get("version") if isinstance(info, dict) else None
        if not isinstance(newest, str) or not valid_version(newest):
            raise ResolveError(project, None, f"no valid 'info.version' ({newest!r})")
        uploaded: dict[str, float | None] = {}
        if isinstance(releases, dict):
            for version, files in releases.items():
                if not isinstance(version, str) or not valid_version(version):
                    continue
                if not isinstance(files, list):
                    continue
                times = [t for t in map(_upload_time, files) if t is not None]
                uploaded[version] = min(times) if times else None
        return ProjectReleases(newest=newest, uploaded=uploaded)
