"""Feed items are releases or new projects only when title and link agree."""

from __future__ import annotations

import pytest

from master.feed.errors import ItemRejected
from master.feed.items import FeedEntry, interpret, normalize_name
from master.feed.parse import RawItem

DATE = "Fri, 21 Nov 2025 16:00:00 GMT"
T = 1_763_740_800.0


def test_release_item_gives_name_version_and_time() -> None:
    """'name version' with a matching release link is a release with its pubDate."""
    entry = interpret(
        RawItem("Foo.Bar 1.0rc1", "https://pypi.org/project/Foo.Bar/1.0rc1/", None, DATE)
    )
    assert entry == FeedEntry("Foo.Bar", "1.0rc1", T)
    assert entry.project == "foo-bar"
    assert entry.key == "foo-bar==1.0rc1"


def test_new_project_item_has_no_version() -> None:
    """'name added to PyPI' with a project link is a new project to look up."""
    entry = interpret(
        RawItem("Baz_Qux added to PyPI", "https://pypi.org/project/baz-qux/", None, DATE)
    )
    assert entry == FeedEntry("Baz_Qux", None, T)
    assert entry.key == "baz-qux"


def test_link_name_may_differ_in_spelling_only() -> None:
    """Title and link names are compared PEP 503-normalised."""
    entry = interpret(
        RawItem("Zope.Interface 6.0", "https://pypi.org/project/zope-interface/6.0/", None, None)
    )
    assert entry.name == "Zope.Interface"
    assert entry.published is None


@pytest.mark.parametrize(
    ("title", "link", "reason"),
    [
        (None, "https://pypi.org/project/a/1/", "no title"),
        ("a 1", None, "no link"),
        ("a", "https://pypi.org/project/a/1/", "not '<name> <version>'"),
        ("a 1 extra", "https://pypi.org/project/a/1/", "not '<name> <version>'"),
        ("a 1.0", "https://pypi.org/project/a/2.0/", "differs from link version"),
        ("a 1.0", "https://pypi.org/project/b/1.0/", "differs from link name"),
        ("a 1.0", "javascript:alert(1)", "not an http(s) URL"),
        ("a 1.0", "https://pypi.org/simple/a/", "not a PyPI project"),
        ("a 1.0", "https://pypi.org/project/a/1.0/extra/", "not a PyPI project"),
        ("a", "https://pypi.org/project/a/", "not 'added to PyPI'"),
        ("b added to PyPI", "https://pypi.org/project/a/", "differs from link name"),
        ("../etc 1.0", "https://pypi.org/project/..%2Fetc/1.0/", "not a valid project name"),
        ("a 1.0?x=1", "https://pypi.org/project/a/1.0%3Fx=1/", "not a valid version"),
        ("-a 1.0", "https://pypi.org/project/-a/1.0/", "not a valid project name"),
        ("\u212aeras 1.0", "https://pypi.org/project/keras/1.0/", "not a valid project name"),
    ],
)
def test_items_that_do_not_cross_check_are_rejected(
    title: str | None, link: str | None, reason: str
) -> None:
    """Missing fields, title/link disagreement and unsafe names or versions reject the item."""
    with pytest.raises(ItemRejected) as info:
        interpret(RawItem(title, link, None, DATE))
    assert reason in info.value.reason
    assert info.value.kind == "bad_item"


@pytest.mark.parametrize("date", ["yesterday", "", "Mon, 99 Foo 2025 99:99:99 GMT"])
def test_unreadable_pubdate_is_kept_as_unknown(date: str) -> None:
    """A bad pubDate does not lose the release; its time is just unknown."""
    entry = interpret(RawItem("a 1", "https://pypi.org/project/a/1/", None, date))
    assert entry.published is None


def test_normalize_name_is_pep_503() -> None:
    """Runs of '-', '_' and '.' become one '-', lower-cased."""
    assert normalize_name("Foo.._-Bar_baz") == "foo-bar-baz"
