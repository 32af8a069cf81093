"""Safe RSS parsing: PyPI's documents parse, hostile or broken ones are refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from master.feed.errors import FeedParseError
from master.feed.parse import MAX_DEPTH, MAX_FIELD_CHARS, MAX_ITEMS, RawItem, parse_feed
from tests.fakes.feeds import (
    BILLION_LAUGHS,
    external_entity,
    project_item,
    release_item,
    rss,
)

T = 1_763_740_800.0  # 2025-11-21 16:00:00 UTC


def test_pypi_shaped_document_gives_items_in_order() -> None:
    """Both item kinds come out with title, link and pubDate, in document order."""
    body = rss([release_item("Foo.Bar", "1.0", at=T), project_item("baz", at=T - 60)])
    items = parse_feed(body)
    assert items == [
        RawItem(
            "Foo.Bar 1.0",
            "https://pypi.org/project/Foo.Bar/1.0/",
            None,
            "Fri, 21 Nov 2025 16:00:00 GMT",
        ),
        RawItem(
            "baz added to PyPI",
            "https://pypi.org/project/baz/",
            None,
            "Fri, 21 Nov 2025 15:59:00 GMT",
        ),
    ]


def test_missing_fields_come_out_as_none() -> None:
    """An item without title or link is still an item; interpretation rejects it later."""
    body = b"<rss><channel><item><description>x</description></item></channel></rss>"
    assert parse_feed(body) == [RawItem(None, None, None, None)]


def test_empty_channel_is_a_valid_feed() -> None:
    """A feed with no items is not an error (a quiet index)."""
    assert parse_feed(rss([])) == []


def test_billion_laughs_is_refused_before_expansion() -> None:
    """The entity bomb is refused for its DOCTYPE, fast and without expanding anything."""
    started = time.monotonic()
    with pytest.raises(FeedParseError) as info:
        parse_feed(BILLION_LAUGHS)
    assert info.value.kind == "forbidden_dtd"
    assert time.monotonic() - started < 0.5


def test_external_entity_is_refused_and_never_read(tmp_path: Path) -> None:
    """An external entity (XXE) is refused; the file's content appears nowhere."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    with pytest.raises(FeedParseError) as info:
        parse_feed(external_entity(secret))
    assert info.value.kind == "forbidden_dtd"
    assert "TOP-SECRET" not in str(info.value)


def test_any_doctype_is_refused_even_a_harmless_one() -> None:
    """RSS needs no DOCTYPE, so even an empty one is refused."""
    with pytest.raises(FeedParseError) as info:
        parse_feed(b"<!DOCTYPE rss><rss><channel></channel></rss>")
    assert info.value.kind == "forbidden_dtd"


def test_undefined_entity_is_malformed() -> None:
    """Without a DTD an entity reference cannot be defined: a well-formedness error."""
    body = b"<rss><channel><item><title>&nope; 1.0</title></item></channel></rss>"
    with pytest.raises(FeedParseError) as info:
        parse_feed(body)
    assert info.value.kind == "malformed"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<rss><channel><item>",
        b"not xml at all",
        b"<rss><channel></rss>",
        b"\xff\xfe\x00<",
    ],
)
def test_broken_xml_is_malformed(body: bytes) -> None:
    """Truncated, mismatched or non-XML bodies are refused as malformed."""
    with pytest.raises(FeedParseError) as info:
        parse_feed(body)
    assert info.value.kind == "malformed"


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>PyPI is down</body></html>",
        b"<rss version='2.0'></rss>",
        b'<feed xmlns="http://www.w3.org/2005/Atom"></feed>',
    ],
)
def test_documents_that_are_not_rss_are_refused(body: bytes) -> None:
    """Another root element, or an <rss> without a channel, is not a feed."""
    with pytest.raises(FeedParseError) as info:
        parse_feed(body)
    assert info.value.kind == "not_rss"


def test_too_many_items_are_refused() -> None:
    """More items than any PyPI feed has is refused instead of growing without bound."""
    body = rss([release_item(f"p{i}", "1.0", at=T) for i in range(MAX_ITEMS + 1)])
    with pytest.raises(FeedParseError) as info:
        parse_feed(body)
    assert info.value.kind == "too_many_items"


def test_deep_nesting_is_refused() -> None:
    """Deeply nested elements are refused at the depth cap."""
    depth = MAX_DEPTH + 5
    body = b"<rss><channel>" + b"<a>" * depth + b"</a>" * depth + b"</channel></rss>"
    with pytest.raises(FeedParseError) as info:
        parse_feed(body)
    assert info.value.kind == "too_deep"


def test_long_field_is_truncated_to_the_cap() -> None:
    """A megabyte-long title is kept only up to the per-field cap."""
    body = b"<rss><channel><item><title>" + b"a" * 1_000_000 + b"</title></item></channel></rss>"
    (item,) = parse_feed(body)
    assert item.title is not None
    assert len(item.title) == MAX_FIELD_CHARS


def test_first_title_wins() -> None:
    """A second <title> in an item cannot replace the first (cross-checks use the first)."""
    body = (
        b"<rss><channel><item><title>good 1.0</title><title>evil 6.6</title></item></channel></rss>"
    )
    (item,) = parse_feed(body)
    assert item.title == "good 1.0"


def test_items_outside_the_channel_are_ignored() -> None:
    """Only rss/channel/item counts; an <item> elsewhere is not a feed item."""
    body = b"<rss><item><title>x 1</title></item><channel></channel></rss>"
    assert parse_feed(body) == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_feed_parse_error(body: bytes) -> None:
    """Whatever the bytes, the parser returns items or raises FeedParseError, nothing else."""
    try:
        items = parse_feed(body)
    except FeedParseError as exc:
        assert exc.kind in {"malformed", "forbidden_dtd", "not_rss", "too_many_items", "too_deep"}
    else:
        assert all(isinstance(item, RawItem) for item in items)
