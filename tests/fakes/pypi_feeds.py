"""The RSS feeds of the fake PyPI: generated from what was added, or set by a test.

`tests.fakes.pypi.FakePyPI` owns one `ServedFeeds` and routes ``/rss/{feed}.xml``
to it::

    feeds.project_added(when, "demo")             # FakePyPI.add, a new project
    feeds.release_added(when, "demo", "1.0")      # FakePyPI.add, a new release
    feeds.set("updates", body, etag='"v1"')       # FakePyPI.set_feed
    feeds.answer(request, base_url)               # the handler

``updates`` and ``packages`` list the added releases and projects like PyPI does:
RSS 2.0, newest first, at most 100 items. A set feed is served verbatim and honours
``If-None-Match`` / ``If-Modified-Since`` (answering 304). Any other name is 404.

Faults (statuses, held and huge answers) are not applied here: ``FakePyPI``'s
middleware applies its one `Faults` vocabulary to feed paths as to any other.
Documents for `set` are written with `tests.fakes.feeds.rss`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from email.utils import formatdate

from aiohttp import web

#: Items in a generated feed, as on PyPI.
MAX_ITEMS = 100


@dataclass(frozen=True, slots=True)
class _SetFeed:
    body: bytes
    etag: str | None
    last_modified: str | None


class ServedFeeds:
    """The feeds one fake index serves (see the module docstring)."""

    def __init__(self) -> None:
        self._set: dict[str, _SetFeed] = {}
        self._releases: list[tuple[float, str, str]] = []
        self._projects: list[tuple[float, str]] = []

    def release_added(self, when: float, name: str, version: str) -> None:
        """List ``name`` ``version`` in the generated ``updates`` feed, dated ``when``."""
        self._releases.append((when, name, version))

    def project_added(self, when: float, name: str) -> None:
        """List ``name`` in the generated ``packages`` feed, dated ``when``."""
        self._projects.append((when, name))

    def set(
        self, feed: str, body: bytes, *, etag: str | None = None, last_modified: str | None = None
    ) -> None:
        """Serve ``body`` as ``feed`` from now on, with these validators."""
        self._set[feed] = _SetFeed(body, etag, last_modified)

    def answer(self, request: web.Request, base_url: str) -> web.Response:
        """The answer to ``GET /rss/{feed}.xml`` of an index at ``base_url``."""
        name = request.match_info["feed"]
        served = self._set.get(name)
        if served is not None:
            return _conditional(request, served)
        if name == "updates":
            items = [
                (when, f"{project} {version}", f"{base_url}/project/{project}/{version}/")
                for when, project, version in self._releases
            ]
            return _rss("PyPI recent updates", items, base_url)
        if name == "packages":
            items = [
                (when, f"{project} added to PyPI", f"{base_url}/project/{project}/")
                for when, project in self._projects
            ]
            return _rss("Newest packages", items, base_url)
        raise web.HTTPNotFound(text="no such feed")


def _conditional(request: web.Request, served: _SetFeed) -> web.Response:
    """``served``, or 304 when the request's validator matches it."""
    etag, last_modified = served.etag, served.last_modified
    validators = {}
    if etag:
        validators["ETag"] = etag
    if last_modified:
        validators["Last-Modified"] = last_modified
    inm, ims = request.headers.get("If-None-Match"), request.headers.get("If-Modified-Since")
    if (etag and inm == etag) or (not etag and last_modified and ims == last_modified):
        return web.Response(status=304, headers=validators)
    return web.Response(body=served.body, content_type="application/rss+xml", headers=validators)


def _rss(title: str, items: list[tuple[float, str, str]], base_url: str) -> web.Response:
    """RSS 2.0 like PyPI's: newest first, at most `MAX_ITEMS` items."""
    entries = []
    for when, item_title, link in sorted(items, key=lambda i: i[0], reverse=True)[:MAX_ITEMS]:
        entries.append(
            "<item>"
            f"<title>{html.escape(item_title)}</title>"
            f"<link>{html.escape(link)}</link>"
            "<description></description>"
            f"<pubDate>{formatdate(when, usegmt=True)}</pubDate>"
            "</item>\n"
        )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>\n'
        f"<title>{title}</title><link>{base_url}/</link>"
        f"<description>{title}</description><language>en</language>\n"
        + "".join(entries)
        + "</channel></rss>\n"
    )
    return web.Response(text=body, content_type="text/xml")
