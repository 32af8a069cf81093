"""Interpretation of raw feed items as releases or new projects, with cross-checks.

PyPI's feeds carry two kinds of item:

* ``/rss/updates.xml``: title ``"<name> <version>"``, link
  ``https://pypi.org/project/<name>/<version>/`` — one release;
* ``/rss/packages.xml``: title ``"<name> added to PyPI"``, link
  ``https://pypi.org/project/<name>/`` — a new project, whose newest version is
  looked up in the JSON API.

The title and the link must agree (same normalised name, same version string);
an item where they do not, or where either is missing or malformed, is rejected
on its own. Names and versions are checked against strict patterns here because
they end up in JSON API URLs and in the job store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import unquote, urlsplit

from master.feed.errors import ItemRejected
from master.feed.parse import RawItem
from master.pypi import normalize_name, valid_name

__all__ = ["FeedEntry", "interpret", "normalize_name", "valid_name", "valid_version"]

#: PEP 440 and the legacy versions PyPI still has; no '/', '?', '%' or spaces
_VERSION = re.compile(r"^[a-z0-9][a-z0-9.+!_-]{0,63}$", re.IGNORECASE | re.ASCII)
_ADDED = " added to PyPI"


def valid_version(version: str) -> bool:
    """Whether ``version`` is safe and plausible as a release version (URL-safe too)."""
    return bool(_VERSION.match(version))


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """A validated feed item: a release, or a new project when ``version`` is None."""

    name: str  # as PyPI displays it
    version: str | None
    published: float | None  # pubDate as epoch seconds, None when absent or unreadable

    @property
    def project(self) -> str:
        """The PEP 503 normalised name (the identity used by filters and the store)."""
        return normalize_name(self.name)

    @property
    def key(self) -> str:
        """Identity of the item within its feed: ``project==version`` or ``project``."""
        return f"{self.project}=={self.version}" if self.version else self.project


def _link_parts(link: str, title: str) -> tuple[str, str | None]:
    parts = urlsplit(link)
    if parts.scheme not in ("http", "https"):
        raise ItemRejected("link is not an http(s) URL", title)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    match segments:
        case ["project", name]:
            return name, None
        case ["project", name, version]:
            return name, version
        case _:
            raise ItemRejected("link is not a PyPI project or release URL", title)


def _published(pub_date: str | None) -> float | None:
    if not pub_date:
        return None
    try:
        return parsedate_to_datetime(pub_date).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def interpret(item: RawItem) -> FeedEntry:
    """The release (or new project) ``item`` announces; `ItemRejected` if unusable."""
    title = item.title
    if not title:
        raise ItemRejected("item has no title", title)
    if not item.link:
        raise ItemRejected("item has no link to cross-check the title against", title)
    link_name, link_version = _link_parts(item.link, title)
    if link_version is None:
        if not title.endswith(_ADDED):
            raise ItemRejected("link names no version and title is not 'added to PyPI'", title)
        name, version = title[: -len(_ADDED)].strip(), None
    else:
        words = title.split()
        if len(words) != 2:  # "name version", nothing else
            raise ItemRejected("title is not '<name> <version>'", title)
        name, version = words
        if version != link_version:
            raise ItemRejected(f"title version differs from link version {link_version!r}", title)
        if not valid_version(version):
            raise ItemRejected("version is not a valid version string", title)
    if not valid_name(name):
        raise ItemRejected("name is not a valid project name", title)
    if normalize_name(name) != normalize_name(link_name):
        raise ItemRejected(f"title name differs from link name {link_name!r}", title)
    return FeedEntry(name=name, version=version, published=_published(item.pub_date))
