"""Metadata indicators on wheels and sdists built by the tests (slave.quality.metadata)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from slave.quality import Indicator, static_indicators
from slave.quality.metadata import Metadata, parse_metadata
from tests.fakes.dists import build_sdist, build_wheel, escape_name, metadata_text

Header = tuple[str, str]

GOOD: list[Header] = [
    ("License-Expression", "MIT"),
    ("Project-URL", "Source, https://example.com/src"),
    ("Classifier", "Programming Language :: Python :: 3"),
    ("Classifier", "License :: OSI Approved :: MIT License"),
    ("Description-Content-Type", "text/markdown"),
]


def indicator(indicators: Sequence[Indicator], ident: str) -> Indicator:
    """The one indicator called `ident`."""
    found = [i for i in indicators if i.id == ident]
    assert len(found) == 1, [i.id for i in indicators]
    return found[0]


def wheel(
    tmp_path: Path,
    extra: Sequence[Header] = GOOD,
    *,
    description: str | None = "# Demo\n\nA demo.\n",
    name: str = "demo",
    version: str = "1.0",
    file_version: str | None = None,
    requires_python: str | None = ">=3.9",
    requires_dist: Sequence[str] = (),
    raw_metadata: str | None = None,
) -> Path:
    """A wheel whose METADATA is exactly what the test says."""
    file_version = file_version or version
    meta = raw_metadata or metadata_text(
        name,
        version,
        requires_python=requires_python,
        requires_dist=requires_dist,
        extra=extra,
        description=description,
    )
    dist_info = f"{escape_name(name)}-{file_version}.dist-info"
    files = {"demo/__init__.py": "X = 1\n", f"{dist_info}/METADATA": meta}
    return build_wheel(tmp_path, name, file_version, files)


def level_of(tmp_path: Path, ident: str, **kwargs: Any) -> tuple[str, str]:
    """(level, reason) of indicator `ident` for a wheel built with `kwargs`."""
    found = indicator(static_indicators([wheel(tmp_path, **kwargs)]), ident)
    return found.level, found.reason


def test_good_wheel_passes_every_metadata_indicator(tmp_path: Path) -> None:
    """A wheel with complete metadata passes all metadata.* indicators."""
    indicators = static_indicators([wheel(tmp_path)])
    metadata = [i for i in indicators if i.group == "metadata"]
    assert len(metadata) == 8
    assert {i.level for i in metadata} == {"pass"}, [i.reason for i in metadata]


def test_missing_required_field_fails(tmp_path: Path) -> None:
    """METADATA without Version fails required_fields and version."""
    raw = "Metadata-Version: 2.1\nName: demo\n"
    indicators = static_indicators([wheel(tmp_path, raw_metadata=raw)])
    assert indicator(indicators, "metadata.required_fields").level == "fail"
    assert indicator(indicators, "metadata.required_fields").value == ["Version"]
    assert indicator(indicators, "metadata.version").level == "fail"


@pytest.mark.parametrize(
    ("requires_python", "level"),
    [(">=3.8, !=3.9.*", "pass"), (None, "warn"), (">=3.x", "fail"), ("~=3.*", "fail")],
)
def test_requires_python(tmp_path: Path, requires_python: str | None, level: str) -> None:
    """Requires-Python: a valid specifier set passes, absent warns, malformed fails."""
    assert (
        level_of(tmp_path, "metadata.requires_python", requires_python=requires_python)[0] == level
    )


@pytest.mark.parametrize(
    ("extra", "level"),
    [
        ([("License-Expression", "Apache-2.0")], "pass"),
        ([("Classifier", "License :: OSI Approved :: BSD License")], "pass"),
        ([("License", "Some custom terms")], "warn"),
        ([("License", "UNKNOWN")], "fail"),
        ([], "fail"),
    ],
)
def test_license(tmp_path: Path, extra: list[Header], level: str) -> None:
    """An expression or classifier passes; free text warns; nothing fails."""
    assert level_of(tmp_path, "metadata.license", extra=extra)[0] == level


@pytest.mark.parametrize(
    ("content_type", "description", "level"),
    [
        ("text/markdown; variant=GFM", "# Title\n\n```py\nx = 1\n```\n", "pass"),
        ("text/markdown; variant=Fancy", "# Title\n", "fail"),
        ("text/x-rst", "Title\n=====\n\nFine *text*.\n", "pass"),
        ("text/x-rst", "Title\n=====\n\nSee :class:`Foo`.\n", "fail"),
        (None, "Plain words, valid rst.\n", "warn"),
        (None, "# Title\n\n```py\nx = 1\n```\n", "fail"),
        ("text/html", "<b>x</b>\n", "fail"),
        ("text/plain", "*anything goes\n", "pass"),
        ("text/markdown", None, "warn"),
    ],
)
def test_description(
    tmp_path: Path, content_type: str | None, description: str | None, level: str
) -> None:
    """The long description is present, its type known, and (rst) structurally sound."""
    extra = [("License-Expression", "MIT")]
    if content_type:
        extra.append(("Description-Content-Type", content_type))
    found = level_of(tmp_path, "metadata.description", extra=extra, description=description)
    assert found[0] == level, found[1]


def test_description_in_folded_header_is_read() -> None:
    """Old PKG-INFO puts the description in a folded header; it is unfolded, not lost."""
    raw = (
        b"Metadata-Version: 1.1\nName: old\nVersion: 1\n"
        b"Description: Title\n        =====\n        \n        Body *text*.\n"
    )
    md: Metadata = parse_metadata(raw, "PKG-INFO")
    assert md.description == "Title\n=====\n\nBody *text*."


@pytest.mark.parametrize(
    ("extra", "level"),
    [
        ([("Project-URL", "Docs, https://docs.example")], "pass"),
        ([("Home-page", "https://example.com")], "pass"),
        ([("Project-URL", "Docs, ftp://docs.example")], "warn"),
        ([], "warn"),
    ],
)
def test_project_urls(tmp_path: Path, extra: list[Header], level: str) -> None:
    """http(s) project URLs pass; none, or a non-http URL, warns."""
    assert level_of(tmp_path, "metadata.project_urls", extra=extra)[0] == level


@pytest.mark.parametrize(
    ("version", "file_version", "level"),
    [
        ("1.0rc1", None, "pass"),
        ("1.0-1", "1.0.post1", "warn"),
        ("1.0", "2.0", "fail"),
        ("1.0.0-final", None, "fail"),
    ],
)
def test_version(tmp_path: Path, version: str, file_version: str | None, level: str) -> None:
    """PEP 440 and normalised passes; not normalised warns; invalid or mismatched fails."""
    found = level_of(tmp_path, "metadata.version", version=version, file_version=file_version)
    assert found[0] == level, found[1]


def test_name_matches_file_names(tmp_path: Path) -> None:
    """Metadata name vs file names: escaped spelling passes, legacy warns, other fails."""
    sdist = build_sdist(tmp_path / "a", "Demo.Pkg", "1.0", {"demo_pkg/__init__.py": ""})
    assert indicator(static_indicators([sdist]), "metadata.name").level == "pass"
    legacy = sdist.rename(sdist.with_name("Demo.Pkg-1.0.tar.gz"))
    assert indicator(static_indicators([legacy]), "metadata.name").level == "warn"
    other = legacy.rename(legacy.with_name("other-1.0.tar.gz"))
    found = indicator(static_indicators([other]), "metadata.name")
    assert found.level == "fail"
    assert "other-1.0.tar.gz" in found.reason


@pytest.mark.parametrize(
    ("classifiers", "level"),
    [
        (["Topic :: Utilities", "Typing :: Typed"], "pass"),
        ([], "warn"),
        (["Made Up :: Thing"], "fail"),
        (["Topic ::  Utilities"], "fail"),
        (["Topic"], "fail"),
        (["Private :: Do Not Upload"], "fail"),
    ],
)
def test_classifiers(tmp_path: Path, classifiers: list[str], level: str) -> None:
    """Known top-level groups with ' :: ' syntax pass; none warns; invalid or Private fails."""
    extra = [("License-Expression", "MIT"), *(("Classifier", c) for c in classifiers)]
    assert level_of(tmp_path, "metadata.classifiers", extra=extra)[0] == level


def test_dependency_count(tmp_path: Path) -> None:
    """Unconditional distinct requirements count; extras do not; many warns."""
    deps = ["idna>=3", "IDNA[x]", "rich; extra == 'cli'", "attrs; python_version < '4'"]
    found = indicator(
        static_indicators([wheel(tmp_path, requires_dist=deps)]), "install.dependencies"
    )
    assert (found.value, found.level) == (2, "pass")
    many = [f"dep{n}" for n in range(30)]
    found = indicator(
        static_indicators([wheel(tmp_path / "b", requires_dist=many)]), "install.dependencies"
    )
    assert (found.value, found.level) == (30, "warn")


def test_dynamic_requires_dist_is_not_counted(tmp_path: Path) -> None:
    """An sdist whose PKG-INFO marks Requires-Dist as Dynamic warns instead of counting 0."""
    extra = [("Dynamic", "Requires-Dist")]
    sdist = build_sdist(tmp_path, "demo", "1.0", {}, metadata_version="2.2", pkg_info_extra=extra)
    found = indicator(static_indicators([sdist]), "install.dependencies")
    assert (found.value, found.level) == (None, "warn")


def test_no_metadata_fails_every_metadata_indicator(tmp_path: Path) -> None:
    """An sdist without PKG-INFO (and no wheel) fails all metadata indicators."""
    sdist = build_sdist(tmp_path, "demo", "1.0", {"demo/__init__.py": ""}, pkg_info=False)
    metadata = [i for i in static_indicators([sdist]) if i.group == "metadata"]
    assert len(metadata) == 8
    assert {i.level for i in metadata} == {"fail"}


def test_wheel_metadata_preferred_over_pkg_info(tmp_path: Path) -> None:
    """With both files, the wheel's METADATA is the one judged."""
    sdist = build_sdist(tmp_path, "demo", "1.0", {"demo/__init__.py": ""})
    indicators = static_indicators([sdist, wheel(tmp_path)])
    assert ".whl:" in indicator(indicators, "metadata.required_fields").reason
    assert indicator(indicators, "metadata.license").level == "pass"
