"""PyPI's RSS feeds and a small JSON API on loopback, under the test's control.

::

    async with FakeFeeds() as srv:
        srv.set_feed("updates", rss([release_item("demo", "1.0", at=T)]), etag='"v1"')
        srv.url("updates")                 # http://127.0.0.1:PORT/rss/updates.xml
        srv.fail("updates", 500, times=2)  # the next two GETs answer 500
        srv.slow("updates", 5.0)           # every GET waits 5 s before answering
        srv.huge("updates", 50 << 20, content_length=False)  # stream 50 MB of XML
        srv.requests_for("updates")        # [Recorded(path, headers, status)]
        srv.sent_bytes("updates")          # body bytes a huge answer managed to write

        srv.add_release("demo", "1.0", uploaded=T)        # JSON API, PyPI's shape
        srv.hide("demo", "1.0", times=3)   # the release JSON answers 404 three times
        srv.set_json("demo", "1.0", {...})  # answer exactly this document instead
        srv.json_delay = 0.2               # every JSON answer waits first
        srv.pypi_url                       # http://127.0.0.1:PORT (the --pypi-url)

`feed_context` opens a real `Store` in a directory and yields a `FeedContext` (the
members of `MasterContext` the watcher uses) with a `KickRecorder` as scheduler.

A feed honours ``If-None-Match`` / ``If-Modified-Since`` against the validators it
was set with (answering 304). ``rss`` and the item builders write documents the
way PyPI does; ``BILLION_LAUGHS`` and ``external_entity`` are hostile ones. The
project JSON's ``info.version`` is the release added last (no version ordering:
tests say what is newest by adding it last).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from xml.sax.saxutils import escape

from aiohttp import web

from master.config import MasterConfig
from master.images import ImageCatalogue
from master.metrics import Metrics
from master.store import Store
from tests.fakes.dists import escape_name, normalize_name

WEB = "https://pypi.org"


def release_item(name: str, version: str, *, at: float, link: str | None = None) -> str:
    """An ``updates.xml`` item: title "name version", link to the release page."""
    link = link if link is not None else f"{WEB}/project/{name}/{version}/"
    return _item(f"{name} {version}", link, at)


def project_item(name: str, *, at: float) -> str:
    """A ``packages.xml`` item: title "name added to PyPI", link to the project page."""
    return _item(f"{name} added to PyPI", f"{WEB}/project/{name}/", at)


def _item(title: str, link: str, at: float) -> str:
    date = format_datetime(datetime.fromtimestamp(at, UTC), usegmt=True)
    return (
        f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
        f"<description>a summary &amp; more</description>"
        f"<author>someone@example.org</author><pubDate>{date}</pubDate></item>"
    )


def rss(items: list[str], *, title: str = "PyPI recent updates") -> bytes:
    """A whole RSS 2.0 document as PyPI writes it, items newest first as given."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
        f"<title>{escape(title)}</title><link>{WEB}/</link>"
        "<description>Recent updates to the Python Package Index</description>"
        f'<atom:link href="{WEB}/rss/updates.xml" rel="self"/><language>en</language>'
        + "".join(items)
        + "</channel></rss>\n"
    ).encode()


#: The classic entity expansion bomb: 10^9 "lol"s from a 1 KB document.
BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + b"".join(
        b' <!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]>\n<rss><channel><item><title>&lol9; 1.0</title>"
    b"<link>https://pypi.org/project/lol/1.0/</link></item></channel></rss>\n"
)


def external_entity(path: Path) -> bytes:
    """A feed whose title would contain ``path``'s contents if entities were resolved."""
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://'
        + str(path).encode()
        + b'">]>\n<rss><channel><item><title>&xxe; 1.0</title>'
        b"<link>https://pypi.org/project/xxe/1.0/</link></item></channel></rss>\n"
    )


@dataclass(slots=True)
class Recorded:
    """One request a feed route received."""

    path: str
    headers: dict[str, str]
    status: int = 0
    at: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class _Feed:
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    failures: list[int] = field(default_factory=list)
    retry_after: str | None = None
    delay: float = 0.0
    huge: int = 0
    huge_length: bool = False
    sent: int = 0


@dataclass(slots=True)
class _Release:
    name: str
    version: str
    files: list[dict[str, Any]]
    yanked: bool
    requires_python: str | None


def default_files(base_url: str, name: str, version: str, size: int = 2048) -> list[dict[str, Any]]:
    """An sdist and a wheel as the JSON API lists them (sha256 derived from the name)."""
    stem = f"{escape_name(name)}-{version}"
    out = []
    for filename, kind in (
        (f"{stem}.tar.gz", "sdist"),
        (f"{stem}-py3-none-any.whl", "bdist_wheel"),
    ):
        out.append(
            {
                "filename": filename,
                "url": f"{base_url}/files/{filename}",
                "digests": {"sha256": hashlib.sha256(filename.encode()).hexdigest()},
                "packagetype": kind,
                "size": size,
            }
        )
    return out


class FakeFeeds:
    """Feed documents and a JSON API on 127.0.0.1 (random port); an async context manager."""

    def __init__(self) -> None:
        self._feeds: dict[str, _Feed] = {}
        self._recorded: dict[str, list[Recorded]] = {}
        self._releases: dict[str, dict[str, _Release]] = {}
        self._uploaded: dict[tuple[str, str], float] = {}
        self._hidden: dict[tuple[str, str | None], int] = {}
        self._lagging: set[tuple[str, str | None]] = set()
        #: False: /pypi/NAME/VERSION/json is always 404 (as PyPI answers from some networks)
        self.versioned_urls = True
        self._raw: dict[tuple[str, str | None], Any] = {}
        self.json_requests: list[str] = []
        self.json_delay = 0.0
        self._arrived = asyncio.Event()
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    def __repr__(self) -> str:
        state = "serving" if self._runner is not None else "stopped"
        return f"<FakeFeeds {state} feeds={sorted(self._feeds)}>"

    # --------------------------------------------------------------- feeds ----

    @property
    def pypi_url(self) -> str:
        """``http://127.0.0.1:PORT``: base of the JSON API (and of the feeds)."""
        if self._port is None:
            raise RuntimeError("FakeFeeds is not started")
        return f"http://127.0.0.1:{self._port}"

    def url(self, feed: str) -> str:
        """The URL of the feed named ``feed`` (``/rss/<feed>.xml``)."""
        return f"{self.pypi_url}/rss/{feed}.xml"

    def set_feed(
        self, feed: str, body: bytes, *, etag: str | None = None, last_modified: str | None = None
    ) -> None:
        """Serve ``body`` for ``feed`` from now on, with these validators."""
        f = self._feeds.setdefault(feed, _Feed())
        f.body, f.etag, f.last_modified, f.huge = body, etag, last_modified, 0

    def fail(
        self, feed: str, status: int, *, times: int = 1, retry_after: str | None = None
    ) -> None:
        """The next ``times`` GETs of ``feed`` answer ``status`` (then normal service)."""
        f = self._feeds.setdefault(feed, _Feed())
        f.failures.extend([status] * times)
        f.retry_after = retry_after

    def slow(self, feed: str, seconds: float) -> None:
        """Every GET of ``feed`` waits ``seconds`` before answering (0 to stop)."""
        self._feeds.setdefault(feed, _Feed()).delay = seconds

    def huge(self, feed: str, size: int, *, content_length: bool) -> None:
        """Answer ``feed`` with a ``size``-byte XML stream, announcing the size or not."""
        f = self._feeds.setdefault(feed, _Feed())
        f.huge, f.huge_length, f.sent = size, content_length, 0

    def requests_for(self, feed: str) -> list[Recorded]:
        """Requests ``feed`` received so far, oldest first."""
        return list(self._recorded.get(feed, []))

    async def wait_requests(self, feed: str, count: int) -> None:
        """Return once ``feed`` has received ``count`` requests (bound it with a timeout)."""
        while len(self._recorded.get(feed, [])) < count:
            self._arrived.clear()
            await self._arrived.wait()

    def sent_bytes(self, feed: str) -> int:
        """Body bytes the last huge answer of ``feed`` wrote before the client left."""
        return self._feeds[feed].sent

    # ------------------------------------------------------------ JSON API ----

    def add_release(
        self,
        name: str,
        version: str,
        *,
        uploaded: float | None = None,
        files: list[dict[str, Any]] | None = None,
        yanked: bool = False,
        file_size: int = 2048,
        requires_python: str | None = ">=3.8",
    ) -> None:
        """Let the JSON API describe ``name`` ``version`` (it becomes the newest)."""
        releases = self._releases.setdefault(normalize_name(name), {})
        releases.pop(version, None)  # re-adding moves it to the end: newest
        releases[version] = _Release(
            name,
            version,
            files if files is not None else default_files(self.pypi_url, name, version, file_size),
            yanked,
            requires_python,
        )
        if uploaded is not None:
            self._uploaded[(normalize_name(name), version)] = uploaded

    def hide(self, name: str, version: str | None = None, *, times: int) -> None:
        """The next ``times`` JSON lookups of the release (or project) answer 404."""
        self._hidden[(normalize_name(name), version)] = times

    def set_json(self, name: str, version: str | None, doc: Any) -> None:
        """Answer the release (or project) JSON with ``doc`` verbatim, whatever it is."""
        self._raw[(normalize_name(name), version)] = doc

    def json_count(self, name: str, version: str | None = None) -> int:
        """How many JSON API requests asked for this release (or project)."""
        path = f"/pypi/{normalize_name(name)}/" + (f"{version}/json" if version else "json")
        return sum(1 for p in self.json_requests if p == path)

    # ------------------------------------------------------------- server ----

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/rss/{feed}.xml", self._feed)
        app.router.add_get("/pypi/{name}/json", self._project_json)
        app.router.add_get("/pypi/{name}/{version}/json", self._release_json)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        self._runner = runner
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._released.set()  # slow handlers stop waiting
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _feed(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["feed"]
        record = Recorded(request.path, dict(request.headers))
        self._recorded.setdefault(name, []).append(record)
        self._arrived.set()
        feed = self._feeds.get(name)
        if feed is None:
            record.status = 404
            return web.Response(status=404)
        if feed.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), feed.delay)
        if feed.failures:
            record.status = feed.failures.pop(0)
            headers = {"Retry-After": feed.retry_after} if feed.retry_after else {}
            return web.Response(status=record.status, text="injected failure", headers=headers)
        if feed.huge:
            record.status = 200
            return await self._stream_huge(request, feed)
        validators = {}
        if feed.etag:
            validators["ETag"] = feed.etag
        if feed.last_modified:
            validators["Last-Modified"] = feed.last_modified
        inm, ims = request.headers.get("If-None-Match"), request.headers.get("If-Modified-Since")
        if (feed.etag and inm == feed.etag) or (
            not feed.etag and feed.last_modified and ims == feed.last_modified
        ):
            record.status = 304
            return web.Response(status=304, headers=validators)
        record.status = 200
        return web.Response(body=feed.body, content_type="application/rss+xml", headers=validators)

    async def _stream_huge(self, request: web.Request, feed: _Feed) -> web.StreamResponse:
        headers = {"Content-Type": "application/rss+xml"}
        if feed.huge_length:
            headers["Content-Length"] = str(feed.huge)
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        chunk = b"<!-- " + b"x" * (64 * 1024 - 9) + b" -->"
        feed.sent = 0
        try:
            await response.write(b'<?xml version="1.0"?><rss><channel>')
            while feed.sent < feed.huge:
                await response.write(chunk)
                feed.sent += len(chunk)
        except (ConnectionError, OSError):
            return response  # the client hung up: exactly what the test wants to see
        return response

    async def _json_wait(self) -> None:
        if self.json_delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), self.json_delay)

    def _take_hidden(self, key: tuple[str, str | None]) -> bool:
        left = self._hidden.get(key, 0)
        if left > 0:
            self._hidden[key] = left - 1
            return True
        return False

    def _file_json(self, release: _Release) -> list[dict[str, Any]]:
        uploaded = self._uploaded.get((normalize_name(release.name), release.version))
        stamp = (
            datetime.fromtimestamp(uploaded, UTC).isoformat().replace("+00:00", "Z")
            if uploaded is not None
            else None
        )
        return [
            {**f, "upload_time_iso_8601": stamp, "yanked": release.yanked} for f in release.files
        ]

    def _info(self, release: _Release) -> dict[str, Any]:
        return {
            "name": release.name,
            "version": release.version,
            "requires_python": release.requires_python,
            "yanked": release.yanked,
        }

    async def _project_json(self, request: web.Request) -> web.Response:
        name = normalize_name(request.match_info["name"])
        self.json_requests.append(f"/pypi/{name}/json")
        await self._json_wait()
        if self._take_hidden((name, None)):
            return web.json_response({"message": "Not Found"}, status=404)
        if (name, None) in self._raw:
            return web.json_response(self._raw[(name, None)])
        releases = self._releases.get(name)
        if not releases:
            return web.json_response({"message": "Not Found"}, status=404)
        lagging = {v for (n, v) in self._lagging if n == name}
        self._lagging = {(n, v) for (n, v) in self._lagging if n != name}
        newest = list(releases.values())[-1]
        return web.json_response(
            {
                "info": self._info(newest),
                "urls": self._file_json(newest),
                "releases": {
                    v: self._file_json(r) for v, r in releases.items() if v not in lagging
                },
            }
        )

    async def _release_json(self, request: web.Request) -> web.Response:
        name = normalize_name(request.match_info["name"])
        version = request.match_info["version"]
        self.json_requests.append(f"/pypi/{name}/{version}/json")
        await self._json_wait()
        if not self.versioned_urls:
            return web.json_response({"message": "Not Found"}, status=404)
        if self._take_hidden((name, version)):
            # The index lags for this release as a whole: a lookup that falls back
            # to the project document right after must not find it there either.
            self._lagging.add((name, version))
            return web.json_response({"message": "Not Found"}, status=404)
        if (name, version) in self._raw:
            return web.json_response(self._raw[(name, version)])
        release = self._releases.get(name, {}).get(version)
        if release is None:
            return web.json_response({"message": "Not Found"}, status=404)
        return web.json_response({"info": self._info(release), "urls": self._file_json(release)})


class KickRecorder:
    """Stands in for the scheduler: counts kicks (the dispatcher is not under test)."""

    def __init__(self) -> None:
        self.kicks = 0
        self._kicked = asyncio.Event()

    def kick(self) -> None:
        self.kicks += 1
        self._kicked.set()

    async def wait_kicks(self, count: int) -> None:
        """Return once ``kick()`` was called ``count`` times (bound it with a timeout)."""
        while self.kicks < count:
            self._kicked.clear()
            await self._kicked.wait()


@dataclass
class FeedContext:
    """The part of `MasterContext` the feed watcher uses, with a real store."""

    config: MasterConfig
    store: Store
    scheduler: KickRecorder
    metrics: Metrics
    images: ImageCatalogue = field(default_factory=lambda: ImageCatalogue({}, "bookworm"))


def feed_config(
    data_dir: Path, srv: FakeFeeds, feeds: Sequence[str] = ("updates",), **feed: Any
) -> MasterConfig:
    """A master config whose feeds and JSON API are ``srv``, with fast test timings."""
    table: dict[str, Any] = {
        "interval": 0.05,
        "timeout": 2.0,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
        "resolve_retry_initial": 0.01,
        "resolve_retry_max": 0.02,
    }
    table.update(feed)
    return MasterConfig(
        data_dir=data_dir,
        db_path=data_dir / "pyti.sqlite3",
        secret=b"test-secret",
        tokens=frozenset(),
        feed_urls=tuple(srv.url(f) for f in feeds),
        pypi_url=srv.pypi_url,
        feed=table,
    )


@contextlib.asynccontextmanager
async def feed_context(config: MasterConfig) -> AsyncIterator[FeedContext]:
    """Open the store at ``config.db_path`` (again, after a "restart") and close it after."""
    store = await Store.open(config.db_path)
    try:
        yield FeedContext(config, store, KickRecorder(), Metrics())
    finally:
        await store.close()
