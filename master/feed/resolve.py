"""Releases described by PyPI's JSON API, checked before anything is queued.

Reading the documents (the versioned-URL fallback, relative file URLs, the checks of
every entry) is `master.pypi`'s, shared with the HTTP API; this module adds the feed's
reactions: a 404 or an empty file list is "not there (yet)" — the JSON API lags
uploads by a little — and is answered with None so the caller can retry later; a
malformed document is a `ResolveError` (retried like any `FeedError`). The project
document also gives the upload times of all releases (for new projects and gap
backfill).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from master.feed.errors import ResolveError
from master.feed.fetch import HttpClient
from master.feed.items import valid_version
from master.pypi import (
    JsonDocument,
    MalformedRelease,
    Release,
    fetch_release,
    project_url,
)


@dataclass(frozen=True, slots=True)
class ProjectReleases:
    """A project's newest version and when each of its releases was first uploaded."""

    newest: str
    uploaded: dict[str, float | None]  # version -> earliest upload time, None if unknown


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

    async def release(self, project: str, version: str) -> Release | None:
        """The release, or None while the JSON API does not have it (or has no files yet).

        Files of kinds a slave cannot test (eggs, Windows installers) are left out;
        a release with only those comes back with no files.

        Raises `FetchError` (network, timeout, HTTP errors other than 404) or
        `ResolveError` (the document does not describe this release properly).
        """
        try:
            release = await fetch_release(self._get_json, self._base, project, version)
        except MalformedRelease as exc:
            raise ResolveError(project, version, exc.detail) from None
        if release is None or not release.listed:
            return None  # files are still being uploaded: retry later like a 404
        return release

    async def _get_json(self, url: str) -> JsonDocument | None:
        return await self._http.get_json(url, max_bytes=self._max_bytes)

    async def project(self, project: str) -> ProjectReleases | None:
        """Newest version and per-release upload times; None when the project is unknown.

        Raises `FetchError` or `ResolveError` like `release`.
        """
        answer = await self._get_json(project_url(self._base, project))
        if answer is None:
            return None
        doc = answer.data
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
