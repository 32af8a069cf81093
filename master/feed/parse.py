"""Safe RSS parsing: bytes of a feed document to raw items, refusing anything hostile.

The parser is expat driven by hand (stdlib only, no defusedxml): RSS needs no
document type, so *any* DOCTYPE, entity declaration or external entity reference
is refused outright, which rules out billion-laughs bombs and external entity
(XXE) reads before they start. Undefined entities are then errors in expat itself.
Every other dimension is capped too: nesting depth, item count, text per field.

`parse_feed` is synchronous and CPU-bound: callers on the event loop run it with
``asyncio.to_thread``. The body's size is capped earlier, while it is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.parsers import expat

from master.feed.errors import FeedParseError

#: deeper than any RSS document (rss/channel/item/field is 4)
MAX_DEPTH = 16
#: PyPI serves 100 (updates) and 40 (packages); far more is not a PyPI feed
MAX_ITEMS = 1000
#: characters kept per item field; titles and links are short, descriptions are ignored
MAX_FIELD_CHARS = 2048

#: item children we read; everything else (description, author, ...) is skipped
_FIELDS = frozenset({"title", "link", "guid", "pubDate"})


@dataclass(frozen=True, slots=True)
class RawItem:
    """One ``<item>`` as text, before any interpretation (fields may be missing)."""

    title: str | None
    link: str | None
    guid: str | None
    pub_date: str | None


class _Collector:
    """Expat handlers that keep only channel/item/{title,link,guid,pubDate} text."""

    def __init__(self) -> None:
        self.items: list[RawItem] = []
        self._path: list[str] = []
        self._fields: dict[str, str] | None = None
        self._field: str | None = None
        self._text: list[str] = []
        self._text_len = 0
        self.has_channel = False

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if not self._path and name != "rss":
            raise FeedParseError("not_rss", f"root element is <{name[:64]}>, not <rss>")
        self._path.append(name)
        depth = len(self._path)
        if depth > MAX_DEPTH:
            raise FeedParseError("too_deep", f"elements nested deeper than {MAX_DEPTH}")
        if depth == 2 and name == "channel":
            self.has_channel = True
        elif depth == 3 and name == "item" and self._path[1] == "channel":
            if len(self.items) >= MAX_ITEMS:
                raise FeedParseError("too_many_items", f"more than {MAX_ITEMS} items")
            self._fields = {}
        elif depth == 4 and self._fields is not None and name in _FIELDS:
            self._field = name
            self._text = []
            self._text_len = 0

    def chars(self, data: str) -> None:
        if self._field is None or self._text_len >= MAX_FIELD_CHARS:
            return
        self._text.append(data[: MAX_FIELD_CHARS - self._text_len])
        self._text_len += len(data)

    def end(self, name: str) -> None:
        depth = len(self._path)
        self._path.pop()
        if depth == 4 and self._field == name and self._fields is not None:
            # The first occurrence wins: a second <title> must not override the one
            # the cross-checks are made against.
            self._fields.setdefault(name, "".join(self._text).strip())
            self._field = None
        elif depth == 3 and name == "item" and self._fields is not None:
            f = self._fields
            self.items.append(
                RawItem(f.get("title"), f.get("link"), f.get("guid"), f.get("pubDate"))
            )
            self._fields = None


def _refuse_doctype(*_: object) -> None:
    raise FeedParseError("forbidden_dtd", "the document has a DOCTYPE; RSS needs none")


def _refuse_entity(*_: object) -> None:
    raise FeedParseError("forbidden_dtd", "the document declares or references an entity")


def _refuse_external(*_: object) -> int:
    raise FeedParseError("forbidden_dtd", "the document references an external entity")


def parse_feed(body: bytes) -> list[RawItem]:
    """The items of an RSS 2.0 document, in document order.

    Raises `FeedParseError` for anything that is not a well-formed, DTD-free RSS
    document within the caps. Never resolves an entity or fetches anything.
    """
    collector = _Collector()
    parser = expat.ParserCreate()
    # Belt and braces: with every DOCTYPE refused these can never fire, but if they
    # did, nothing external may be read and no declared entity may be expanded.
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity
    parser.UnparsedEntityDeclHandler = _refuse_entity
    parser.ExternalEntityRefHandler = _refuse_external
    parser.StartElementHandler = collector.start
    parser.EndElementHandler = collector.end
    parser.CharacterDataHandler = collector.chars
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise FeedParseError("malformed", f"not well-formed XML: {exc}") from None
    if not collector.has_channel:
        raise FeedParseError("not_rss", "no <channel> in the document")
    return collector.items
