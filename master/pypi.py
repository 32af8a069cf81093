"""Releases as the package index's JSON API describes them: one reader for the API and the feed.

``{pypi_url}/pypi/<name>/json`` is a project's document (the newest release's ``info``
and ``urls``, and a ``releases`` map of every version's files);
``/pypi/<name>/<version>/json`` is one release's. Some indexes and mirrors (and PyPI
seen from some networks) answer only the project document: a version is then cut from
its ``releases`` map, matched by PEP 440 equality ("1.0" finds "1.0.0").

File URLs may be relative to the document (``../../packages/...``), as mirrors and
caching proxies serve them: `file_url` resolves them against the URL the document was
actually read from, after redirects, as pip does for the simple index.

The answer is untrusted input: a malformed document or file entry raises
`MalformedRelease`; each caller decides what that means (the HTTP API answers 502, the
feed retries later). Files of kinds a slave cannot test (eggs, Windows installers) are
left out.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urldefrag, urljoin, urlsplit

from packaging.version import InvalidVersion, Version

from master.errors import MasterError
from master.images import python_at

#: what a slave can test; older kinds (bdist_egg, bdist_wininst, ...) are skipped
PACKAGETYPES = frozenset({"sdist", "bdist_wheel"})

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]{0,250}$")
_SCHEMES = ("http", "https")
#: PEP 508 project names (case-insensitive); PyPI caps them far below 200. re.ASCII:
#: with Unicode case folding, [a-z] would also match the Kelvin sign (U+212A).
_NAME = re.compile(r"^(?:[a-z0-9]|[a-z0-9][a-z0-9._-]{0,198}[a-z0-9])$", re.IGNORECASE | re.ASCII)


def normalize_name(name: str) -> str:
    """PEP 503 normalised project name: ``Foo.Bar_baz`` -> ``foo-bar-baz``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def valid_name(name: str) -> bool:
    """Whether ``name`` is a PEP 508 project name (ASCII only, URL-safe)."""
    return bool(_NAME.match(name))


class MalformedRelease(MasterError):
    """The index answered, but not with a usable description of the release asked for."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class JsonDocument:
    """A decoded JSON answer and the URL it was read from (after redirects)."""

    url: str
    data: Any


#: GET a JSON document: None on 404; anything else amiss raises the caller's own error.
JsonGetter = Callable[[str], Awaitable[JsonDocument | None]]


@dataclass(frozen=True, slots=True)
class ReleaseFile:
    """One distribution file of a release, as a job carries it (``url`` absolute)."""

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
    """A release as the index describes it: its own spelling of name and version."""

    name: str
    version: str
    files: tuple[ReleaseFile, ...]
    requires_python: str | None
    yanked: bool
    #: False when the index listed no file at all (an upload still in progress)
    listed: bool = True
    #: the Python minors it claims: its classifiers' (``Programming Language :: Python ::
    #: 3.12``), else the newest CPython out when its first file was uploaded
    python_minors: tuple[str, ...] = ()

    @property
    def largest_file(self) -> int:
        """Size in bytes of the release's biggest file (0 without files)."""
        return max((f.size for f in self.files), default=0)


def file_url(document_url: str, href: str, sha256: str) -> str | None:
    """``href`` made absolute against ``document_url``; None when it is not to be fetched.

    Relative references are resolved as a browser (and pip) would. The fragment is
    dropped: it is never sent, and a ``#sha256=`` in it must agree with ``sha256``
    (a disagreement means the entry is not to be trusted). After joining, only http
    and https URLs with a host are accepted (no ``file:``, ``data:``, ``ftp:``...).
    """
    url, fragment = urldefrag(urljoin(document_url, href))
    if fragment.startswith("sha256=") and fragment.removeprefix("sha256=").lower() != sha256:
        return None
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        return None
    return url


def project_url(pypi_url: str, project: str) -> str:
    """The project document's URL (the name is quoted even though callers validated it)."""
    return f"{pypi_url.rstrip('/')}/pypi/{quote(project, safe='')}/json"


def release_url(pypi_url: str, project: str, version: str) -> str:
    """The release document's URL."""
    base = pypi_url.rstrip("/")
    return f"{base}/pypi/{quote(project, safe='')}/{quote(version, safe='')}/json"


async def fetch_release(
    get: JsonGetter, pypi_url: str, project: str, version: str | None
) -> Release | None:
    """``project``'s newest release, or ``version``; None when the index does not have it.

    Raises `MalformedRelease`, or whatever ``get`` raises. Cancellation propagates.
    """
    if version is None:
        doc = await get(project_url(pypi_url, project))
        return None if doc is None else parse_release(doc, project, None)
    doc = await get(release_url(pypi_url, project, version))
    if doc is not None:
        return parse_release(doc, project, version)
    project_doc = await get(project_url(pypi_url, project))
    cut = None if project_doc is None else cut_release(project_doc, version)
    return None if cut is None else parse_release(cut, project, version)


def parse_release(doc: JsonDocument, project: str, version: str | None) -> Release:
    """The release a ``{info, urls}`` document describes; it must be ``project`` ``version``.

    ``version`` None accepts whatever version the document names. Raises `MalformedRelease`.
    """
    data = doc.data
    info = data.get("info") if isinstance(data, dict) else None
    urls = data.get("urls") if isinstance(data, dict) else None
    if not isinstance(info, dict) or not isinstance(urls, list):
        raise MalformedRelease("no 'info' object and 'urls' list")
    name, got = info.get("name"), info.get("version")
    # valid_name too: str.lower() maps some non-ASCII letters (the Kelvin sign)
    # to ASCII ones, so normalised equality alone would let look-alikes through.
    if (
        not isinstance(name, str)
        or not valid_name(name)
        or normalize_name(name) != normalize_name(project)
    ):
        raise MalformedRelease(f"JSON describes project {name!r}")
    if not isinstance(got, str) or not got or (version is not None and not _same(got, version)):
        raise MalformedRelease(f"JSON describes version {got!r}")
    files = (_file(doc.url, raw) for raw in urls)
    requires_python = info.get("requires_python")
    return Release(
        name=name,
        version=got,
        files=tuple(f for f in files if f.packagetype in PACKAGETYPES),
        requires_python=requires_python if isinstance(requires_python, str) else None,
        yanked=info.get("yanked") is True,
        listed=bool(urls),
        python_minors=python_minors(info.get("classifiers"))
        or tuple(filter(None, [python_at(first_upload(urls))])),
    )


def first_upload(files: Sequence[object]) -> str | None:
    """The day (``YYYY-MM-DD``) the release's first file was uploaded, if the index says."""
    days = []
    for entry in files[:500]:
        if isinstance(entry, dict):
            when = entry.get("upload_time_iso_8601") or entry.get("upload_time")
            if isinstance(when, str) and re.match(r"\d{4}-\d{2}-\d{2}", when):
                days.append(when[:10])
    return min(days) if days else None


_MINOR_CLASSIFIER = re.compile(r"^Programming Language :: Python :: (3\.\d{1,2})$")


def python_minors(classifiers: object) -> tuple[str, ...]:
    """The ``3.X`` versions the trove classifiers name, in their order (at most 30)."""
    if not isinstance(classifiers, list):
        return ()
    found: list[str] = []
    for text in classifiers[:500]:
        matched = _MINOR_CLASSIFIER.match(text.strip()) if isinstance(text, str) else None
        if matched and matched.group(1) not in found:
            found.append(matched.group(1))
    return tuple(found[:30])


def _file(document_url: str, raw: object) -> ReleaseFile:
    if not isinstance(raw, dict):
        raise MalformedRelease("a file entry is not an object")
    filename, digests = raw.get("filename"), raw.get("digests")
    size, packagetype, href = raw.get("size"), raw.get("packagetype"), raw.get("url")
    sha256 = digests.get("sha256") if isinstance(digests, dict) else None
    if not isinstance(filename, str) or not _FILENAME.match(filename) or ".." in filename:
        raise MalformedRelease(f"bad filename {filename!r}")
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise MalformedRelease(f"{filename}: no valid sha256")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise MalformedRelease(f"{filename}: bad size {size!r}")
    if not isinstance(packagetype, str) or not packagetype:
        raise MalformedRelease(f"{filename}: bad packagetype {packagetype!r}")
    url = file_url(document_url, href, sha256) if isinstance(href, str) else None
    if url is None:
        raise MalformedRelease(f"{filename}: bad url {href!r}")
    return ReleaseFile(filename, sha256, size, packagetype, url)


def cut_release(doc: JsonDocument, version: str) -> JsonDocument | None:
    """A release document ({info, urls}) cut from a project document, or None if absent."""
    data = doc.data
    info = data.get("info") if isinstance(data, dict) else None
    releases = data.get("releases") if isinstance(data, dict) else None
    if not isinstance(info, dict) or not isinstance(releases, dict):
        return None
    key = version if version in releases else None
    if key is None:
        key = next((k for k in releases if isinstance(k, str) and _same(k, version)), None)
    files = releases.get(key) if key is not None else None
    if not isinstance(files, list):
        return None
    # The project's info describes its newest release: take what is per file.
    first = files[0] if files and isinstance(files[0], dict) else {}
    cut_info = {
        **info,
        # The project's classifiers are its newest release's: of another, unknown.
        "classifiers": info.get("classifiers") if info.get("version") == key else None,
        "version": key,
        "requires_python": first.get("requires_python"),
        "yanked": bool(files)
        and all(isinstance(f, dict) and f.get("yanked") is True for f in files),
    }
    # Same URL: relative file URLs in it are relative to the project document.
    return JsonDocument(doc.url, {"info": cut_info, "urls": files})


def _same(candidate: str, wanted: str) -> bool:
    """Equal as strings, or as PEP 440 versions ("1.0" is "1.0.0")."""
    if candidate == wanted:
        return True
    try:
        return Version(candidate) == Version(wanted)
    except InvalidVersion:
        return False
