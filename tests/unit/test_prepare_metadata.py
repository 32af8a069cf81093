"""Static metadata: which source is trusted for dependencies, markers for the guest."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from packaging.tags import Tag

from slave.prepare import GuestTarget, MetadataError, requirements_from_guest
from slave.prepare.errors import DependencyUnavailable
from slave.prepare.metadata import (
    DEFAULT_BUILD_REQUIRES,
    extra_only,
    for_guest,
    pip_argument,
    read_sdist_metadata,
    read_wheel_metadata,
    requirements_for,
    static_metadata,
)
from tests.fakes.dists import build_sdist, build_wheel, pyproject_text

X86 = GuestTarget("3.11", "manylinux_2_36_x86_64")


def test_pkg_info_2_1_is_not_trusted_for_dependencies(tmp_path: Path) -> None:
    """Before Metadata-Version 2.2 PKG-INFO may omit dynamic deps: pyproject decides."""
    pyproject = pyproject_text("a", "1", dependencies=None, dynamic=["dependencies"])
    sd = build_sdist(tmp_path, "a", "1", {}, requires_dist=["x"], pyproject=pyproject)
    meta = static_metadata(None, read_sdist_metadata(sd))
    assert meta.requires_dist is None and meta.source is None
    assert (meta.name, meta.version) == ("a", "1")


def test_pkg_info_2_2_without_dynamic_is_trusted_even_when_empty(tmp_path: Path) -> None:
    """A 2.2 PKG-INFO that lists no Requires-Dist and no Dynamic means: no dependencies."""
    sd = build_sdist(tmp_path, "a", "1", {}, metadata_version="2.2")
    meta = static_metadata(None, read_sdist_metadata(sd))
    assert meta.requires_dist == [] and meta.source == "pkg-info"


def test_dynamic_requires_dist_falls_back_to_static_pyproject(tmp_path: Path) -> None:
    """PKG-INFO 2.2 with Dynamic: Requires-Dist defers to static [project] dependencies."""
    pyproject = pyproject_text("a", "1", dependencies=["y>=2"], requires_python=">=3.10")
    sd = build_sdist(
        tmp_path,
        "a",
        "1",
        {},
        metadata_version="2.2",
        pkg_info_extra=[("Dynamic", "Requires-Dist")],
        pyproject=pyproject,
    )
    meta = static_metadata(None, read_sdist_metadata(sd))
    assert meta.source == "pyproject" and meta.requires_dist == ["y>=2"]
    assert meta.requires_python == ">=3.10"


def test_wheel_metadata_wins_over_sdist(tmp_path: Path) -> None:
    """When both exist, the wheel's METADATA is the source."""
    whl = build_wheel(tmp_path, "a", "1", {}, requires_dist=["from-wheel"])
    sd = build_sdist(tmp_path, "a", "1", {}, metadata_version="2.2", requires_dist=["from-sdist"])
    meta = static_metadata(read_wheel_metadata(whl), read_sdist_metadata(sd))
    assert meta.source == "wheel" and meta.requires_dist == ["from-wheel"]


def test_build_requirements_default_and_declared(tmp_path: Path) -> None:
    """No [build-system] means setuptools+wheel; a declared list is taken as is."""
    bare = build_sdist(tmp_path / "a", "a", "1", {})
    assert static_metadata(None, read_sdist_metadata(bare)).build_requires == list(
        DEFAULT_BUILD_REQUIRES
    )
    pyproject = pyproject_text("b", "1", build_requires=["flit_core<4"])
    flit = build_sdist(tmp_path / "b", "b", "1", {}, pyproject=pyproject)
    assert static_metadata(None, read_sdist_metadata(flit)).build_requires == ["flit_core<4"]


def test_malformed_pyproject_is_left_to_the_guest(tmp_path: Path) -> None:
    """Broken TOML is the package's problem: no static deps, default build tools, no error."""
    sd = build_sdist(tmp_path, "a", "1", {}, pyproject="[project\nname = ")
    contents = read_sdist_metadata(sd)
    assert contents.pyproject is None and contents.pyproject_error is not None
    meta = static_metadata(None, contents)
    assert meta.requires_dist is None
    assert meta.build_requires == list(DEFAULT_BUILD_REQUIRES)


def test_invalid_requirement_is_metadata_error(tmp_path: Path) -> None:
    """A Requires-Dist that is not PEP 508 raises MetadataError naming the file."""
    whl = build_wheel(tmp_path, "a", "1", {}, requires_dist=["not a requirement !!"])
    with pytest.raises(MetadataError) as err:
        read_wheel_metadata(whl)
    assert err.value.filename == whl.name


def test_wheel_with_two_metadata_files_is_refused(tmp_path: Path) -> None:
    """Two top-level .dist-info/METADATA leave the wheel ambiguous: MetadataError."""
    whl = build_wheel(tmp_path, "a", "1", {"b-1.dist-info/METADATA": "Name: b\nVersion: 1\n"})
    with pytest.raises(MetadataError, match=r"2 \.dist-info/METADATA"):
        read_wheel_metadata(whl)


def test_hostile_sdist_is_metadata_error(tmp_path: Path) -> None:
    """An sdist with a traversal member is refused through SafeArchive."""
    path = tmp_path / "a-1.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("a-1/../../evil"))
    with pytest.raises(MetadataError, match="parent directory"):
        read_sdist_metadata(path)


def test_markers_are_evaluated_for_the_guest_not_the_host() -> None:
    """Platform and version markers use the guest target; extras only when asked."""
    reqs = [
        "always",
        'old; python_version < "3.11"',
        'arm; platform_machine == "aarch64"',
        'win; sys_platform == "win32"',
        'pytest; extra == "test"',
    ]
    assert for_guest(reqs, X86.marker_environment()) == ["always"]
    arm = GuestTarget("3.10", "manylinux_2_31_aarch64")
    assert for_guest(reqs, arm.marker_environment()) == [
        "always",
        'old; python_version < "3.11"',
        'arm; platform_machine == "aarch64"',
    ]
    assert extra_only(reqs, X86.marker_environment(), "test") == ['pytest; extra == "test"']


def test_guest_target_platforms_and_tags() -> None:
    """A glibc 2.36 guest accepts older manylinux tags, abi3 and pure wheels, not 2.38."""
    platforms = X86.platforms()
    assert platforms[0] == "manylinux_2_36_x86_64"
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(platforms)
    assert "manylinux_2_38_x86_64" not in platforms
    tags = set(X86.tags())
    assert Tag("cp311", "cp311", "manylinux_2_17_x86_64") in tags
    assert Tag("cp38", "abi3", "manylinux2014_x86_64") in tags
    assert Tag("py3", "none", "any") in tags
    assert Tag("cp312", "cp312", "manylinux_2_17_x86_64") not in tags


def test_pip_argument_strips_markers_and_refuses_urls() -> None:
    """Marker-free argv for pip; a direct URL dependency is never fetched."""
    assert pip_argument('a[x]>=1; python_version >= "3"') == "a[x]>=1"
    with pytest.raises(DependencyUnavailable):
        pip_argument("a @ https://example.invalid/a.whl")


def test_requirements_from_guest_keeps_valid_ones_for_the_guest() -> None:
    """The guest's requires_dist: invalid strings dropped, markers applied, self followed."""
    env = GuestTarget("3.11", "manylinux_2_36_x86_64").marker_environment()
    sent = ["b>=1", "not a requirement !!", 7, 'c; python_version < "3"', "A[x]", 'd; extra == "x"']
    assert requirements_from_guest(sent, env, "a") == ["b>=1", 'd; extra == "x"']
    assert requirements_from_guest("b>=1", env, "a") == []


def test_self_references_are_followed_not_fetched() -> None:
    """'app[fast]' inside app's test extra adds the fast extra's deps, not app itself."""
    reqs = [
        "base",
        'App[fast]; extra == "test"',
        'pytest; extra == "test"',
        'speedup; extra == "fast"',
        'app[test]; extra == "fast"',
    ]
    env = X86.marker_environment()
    assert requirements_for(reqs, env, "app", [""]) == ["base"]
    assert requirements_for(reqs, env, "app", ["test"]) == [
        'pytest; extra == "test"',
        'speedup; extra == "fast"',
    ]
