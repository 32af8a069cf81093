"""File URLs from a JSON document are resolved the same way by the master and the slave."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from master.pypi import JsonDocument, MalformedRelease, parse_release
from master.pypi import file_url as master_file_url
from slave.prepare.fetch import file_url as slave_file_url

SHA = "a" * 64
DOC = "https://mirror.example/pypi/demo/json"
HELPERS = [master_file_url, slave_file_url]
Helper = Callable[[str, str, str], str | None]

CASES = [
    # relative to the document, as mirrors and caching proxies serve them
    ("../../packages/ab/demo-1.0.tar.gz", "https://mirror.example/packages/ab/demo-1.0.tar.gz"),
    ("../../../files/x.whl", "https://mirror.example/files/x.whl"),
    ("/packages/x.whl", "https://mirror.example/packages/x.whl"),
    ("x.whl", "https://mirror.example/pypi/demo/x.whl"),
    # absolute ones are kept
    ("https://files.example/p/x.whl", "https://files.example/p/x.whl"),
    ("http://files.example/p/x.whl", "http://files.example/p/x.whl"),
    ("//files.example/p/x.whl", "https://files.example/p/x.whl"),
    # the fragment is never sent; a matching #sha256= is fine
    (f"../../p/x.whl#sha256={SHA}", "https://mirror.example/p/x.whl"),
    (f"../../p/x.whl#sha256={SHA.upper()}", "https://mirror.example/p/x.whl"),
    ("../../p/x.whl#md5=00", "https://mirror.example/p/x.whl"),
]
REFUSED = [
    "file:///etc/passwd",
    "ftp://files.example/x.whl",
    "data:application/octet-stream;base64,AAAA",
    "javascript:alert(1)",
    "http:///no-host.whl",
    f"../../p/x.whl#sha256={'b' * 64}",  # the fragment names another file
]


@pytest.mark.parametrize("helper", HELPERS, ids=["master", "slave"])
@pytest.mark.parametrize(("href", "expected"), CASES)
def test_file_url_is_resolved_against_the_document(
    helper: Helper, href: str, expected: str
) -> None:
    """Relative URLs are joined to the document's URL; absolute ones stay; no fragment."""
    assert helper(DOC, href, SHA) == expected


@pytest.mark.parametrize("helper", HELPERS, ids=["master", "slave"])
@pytest.mark.parametrize("href", REFUSED)
def test_file_url_refuses_what_is_not_http(helper: Helper, href: str) -> None:
    """After joining, anything but an http(s) URL with a host (or a wrong #sha256=) is None."""
    assert helper(DOC, href, SHA) is None


@pytest.mark.parametrize("helper", HELPERS, ids=["master", "slave"])
def test_file_url_follows_the_url_after_redirects(helper: Helper) -> None:
    """The same relative URL means another file when the document was moved elsewhere."""
    moved = "https://mirror.example/json/demo"
    assert helper(moved, "../files/x.whl", SHA) == "https://mirror.example/files/x.whl"
    assert helper(DOC, "../files/x.whl", SHA) == "https://mirror.example/pypi/files/x.whl"


def _entry(url: str) -> dict[str, object]:
    return {
        "filename": "demo-1.0.tar.gz",
        "url": url,
        "digests": {"sha256": SHA},
        "packagetype": "sdist",
        "size": 10,
    }


def test_release_files_are_made_absolute() -> None:
    """parse_release gives every file an absolute URL resolved against the document."""
    doc = JsonDocument(
        DOC, {"info": {"name": "demo", "version": "1.0"}, "urls": [_entry("../../p/d.tgz")]}
    )
    (only,) = parse_release(doc, "demo", "1.0").files
    assert only.url == "https://mirror.example/p/d.tgz"


def test_release_with_a_bad_scheme_is_malformed() -> None:
    """A file URL that is not http(s) once resolved makes the document malformed."""
    doc = JsonDocument(
        DOC, {"info": {"name": "demo", "version": "1.0"}, "urls": [_entry("file:///x")]}
    )
    with pytest.raises(MalformedRelease, match="bad url"):
        parse_release(doc, "demo", "1.0")


def test_pep_440_equal_version_is_accepted() -> None:
    """A document for "1.0.0" answers a request for "1.0"; the index's spelling is kept."""
    doc = JsonDocument(DOC, {"info": {"name": "Demo", "version": "1.0.0"}, "urls": []})
    release = parse_release(doc, "demo", "1.0")
    assert (release.name, release.version, release.listed) == ("Demo", "1.0.0", False)
