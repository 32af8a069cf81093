"""PEP 440 versions, PEP 503 names and distribution file names (slave.quality.naming)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import InvalidVersion, Version

from slave.quality.naming import (
    canonical_version,
    filename_name,
    is_valid_name,
    normalise_name,
    parse_filename,
)

_sep = st.sampled_from(["", ".", "-", "_"])
_num = st.integers(0, 30).map(str) | st.sampled_from(["00", "007", "10"])


@st.composite
def version_like(draw: st.DrawFn) -> str:
    """Strings built from PEP 440's grammar, with its spelling variants and case."""
    text = draw(st.sampled_from(["", "v", "V"]))
    if draw(st.booleans()):
        text += draw(_num) + "!"
    text += ".".join(draw(st.lists(_num, min_size=1, max_size=4)))
    if draw(st.booleans()):
        letter = draw(st.sampled_from(["a", "b", "c", "rc", "alpha", "beta", "pre", "preview"]))
        text += draw(_sep) + letter + draw(_sep) + draw(st.sampled_from(["", "1", "02"]))
    if draw(st.booleans()):
        text += draw(st.sampled_from(["-1", ".post", "post2", "-r3", "_rev", ".post.4", "post-05"]))
    if draw(st.booleans()):
        text += draw(_sep) + "dev" + draw(st.sampled_from(["", "0", "7"]))
    if draw(st.booleans()):
        text += "+" + draw(st.sampled_from(["ubuntu-01", "abc.5", "A_B", "x", "1.-2"]))
    if draw(st.booleans()):
        text = text.upper()
    return draw(st.sampled_from(["", " "])) + text + draw(st.sampled_from(["", " "]))


def _packaging(text: str) -> str | None:
    try:
        return str(Version(text))
    except InvalidVersion:
        return None


@given(version_like())
def test_canonical_version_agrees_with_packaging_on_grammar(text: str) -> None:
    """On strings shaped like versions, validity and normal form match `packaging`."""
    assert canonical_version(text) == _packaging(text)


@given(st.text(alphabet="0123456789.!+-_abcdelmoprstv ", max_size=20))
def test_canonical_version_agrees_with_packaging_on_noise(text: str) -> None:
    """On arbitrary strings from the version alphabet, validity matches `packaging`."""
    assert canonical_version(text) == _packaging(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.0", "1.0"),
        ("v1.0-1", "1.0.post1"),
        ("1!2.0RC1", "1!2.0rc1"),
        ("1.0a", "1.0a0"),
        ("2020.01.01.dev", "2020.1.1.dev0"),
        ("1.0+Ubuntu-01", "1.0+ubuntu.1"),
        ("1.0.0-beta", "1.0.0b0"),
        ("1.0-foo", None),
        ("latest", None),
        ("1" * 5000, None),
    ],
)
def test_canonical_version_examples(text: str, expected: str | None) -> None:
    """Known spellings normalise as PEP 440 says; non-versions and huge inputs are None."""
    assert canonical_version(text) == expected


def test_names_normalise_per_pep_503() -> None:
    """Runs of -_. collapse; the index form uses '-', file names use '_'."""
    assert normalise_name("Foo.Bar__baz") == "foo-bar-baz"
    assert filename_name("Foo.Bar-baz") == "foo_bar_baz"
    assert is_valid_name("a.b-c_d")
    assert not is_valid_name("-leading")
    assert not is_valid_name("spa ce")


def test_parse_wheel_filename() -> None:
    """Wheel names split into name, version and tag sets (build tag tolerated)."""
    dist = parse_filename(
        "foo_bar-1.0-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    )
    assert (dist.kind, dist.name, dist.version) == ("wheel", "foo_bar", "1.0")
    assert dist.platform_tags == ("manylinux_2_17_x86_64", "manylinux2014_x86_64")
    assert not dist.is_pure
    assert parse_filename("foo-1.0-py3-none-any.whl").is_pure


def test_parse_sdist_filename_uses_expected_name() -> None:
    """Legacy hyphenated sdist names split where the metadata name says."""
    assert parse_filename("my-pkg-2-1.0.tar.gz", "my_pkg_2").version == "1.0"
    assert parse_filename("my-pkg-1.0.tar.gz").name == "my-pkg"
    assert parse_filename("thing.egg").kind == "other"
