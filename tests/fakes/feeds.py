"""Feed documents, and a feed watcher's surroundings, for tests of the feed.

The index itself (feeds served, JSON API, faults) is `tests.fakes.pypi.FakePyPI`::

    pypi.set_feed("updates", rss([release_item("demo", "1.0", at=T)]), etag='"v1"')

``rss`` and the item builders write documents the way PyPI does; ``BILLION_LAUGHS``
and ``external_entity`` are hostile ones. `feed_config` points a master config at a
`FakePyPI`; `feed_context` opens a real `Store` in a directory and yields a
`FeedContext` (the members of `MasterContext` the watcher uses) with a `KickRecorder`
as scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from master.config import MasterConfig
from master.images import ImageCatalogue
from master.metrics import Metrics
from master.store import Store
from tests.fakes.pypi import FakePyPI

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
    data_dir: Path, srv: FakePyPI, feeds: Sequence[str] = ("updates",), **feed: Any
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
        feed_urls=tuple(srv.feed_url(f) for f in feeds),
        pypi_url=srv.base_url,
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
