"""The installed release's compiled modules placed next to their sources in the sdist tree."""

from __future__ import annotations

import importlib.machinery
import os
import tempfile
from pathlib import Path

import pytest

from guest_runner.inplace import extension_modules, module_name, place_extensions

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]  # .cpython-311-x86_64-linux-gnu.so
NOBODY = 65534


def write(path: Path, data: bytes = b"\x7fELF") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def installed(site: Path) -> None:
    write(site / "fastpkg" / "__init__.py", b"")
    write(site / "fastpkg" / f"_speedups{SUFFIX}", b"speedups")
    write(site / "fastpkg" / "sub" / "_inner.abi3.so", b"inner")
    write(site / "fastpkg" / "deep" / f"_nowhere{SUFFIX}")
    write(site / "other" / f"_not_ours{SUFFIX}")  # another distribution's package


def test_module_name_knows_the_extension_suffixes() -> None:
    assert module_name(f"_speedups{SUFFIX}") == "_speedups"
    assert module_name("_inner.abi3.so") == "_inner"
    assert module_name("_plain.so") == "_plain"
    assert module_name("_speedups.c") is None
    assert module_name(".so") is None


def test_flat_layout_gets_the_compiled_modules_its_folders_lack(tmp_path: Path) -> None:
    site, root = tmp_path / "site", tmp_path / "src" / "fastpkg-1.0"
    installed(site)
    write(root / "fastpkg" / "__init__.py", b"")
    write(root / "fastpkg" / "_speedups.c", b"/* source */")
    write(root / "fastpkg" / "sub" / "__init__.py", b"")
    placed = place_extensions(root, site, ["fastpkg"], uid=None, gid=None)
    assert placed == [f"fastpkg/_speedups{SUFFIX}", "fastpkg/sub/_inner.abi3.so"]
    assert (root / "fastpkg" / f"_speedups{SUFFIX}").read_bytes() == b"speedups"
    assert (root / "fastpkg" / "_speedups.c").read_bytes() == b"/* source */"
    assert not (root / "fastpkg" / "deep").exists()  # no folder made where the tree has none
    assert not (root / "other").exists()


def test_src_layout_and_modules_already_built_in_place(tmp_path: Path) -> None:
    site, root = tmp_path / "site", tmp_path / "tree"
    installed(site)
    write(root / "src" / "fastpkg" / "__init__.py", b"")
    write(root / "src" / "fastpkg" / "sub" / "_inner.so", b"built here")  # another suffix
    placed = place_extensions(root, site, ["fastpkg"], uid=None, gid=None)
    assert placed == [f"src/fastpkg/_speedups{SUFFIX}"]
    assert (root / "src" / "fastpkg" / "sub" / "_inner.so").read_bytes() == b"built here"
    assert not (root / "src" / "fastpkg" / "sub" / "_inner.abi3.so").exists()


def test_links_in_the_installed_package_are_not_taken(tmp_path: Path) -> None:
    site, root = tmp_path / "site", tmp_path / "tree"
    write(site / "fastpkg" / "__init__.py", b"")
    secret = write(tmp_path / "secret", b"root only")
    (site / "fastpkg" / f"_speedups{SUFFIX}").symlink_to(secret)
    (site / "linked").symlink_to(site / "fastpkg")
    write(root / "fastpkg" / "__init__.py", b"")
    write(root / "linked" / "__init__.py", b"")
    assert extension_modules(site, ["fastpkg", "linked"]) == []
    assert place_extensions(root, site, ["fastpkg", "linked"], uid=None, gid=None) == []


def test_a_wheel_only_release_or_no_tree_copy_places_nothing(tmp_path: Path) -> None:
    site, root = tmp_path / "site", tmp_path / "tree"
    installed(site)
    write(root / "tests" / "test_x.py", b"")
    assert place_extensions(root, site, ["fastpkg"], uid=None, gid=None) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_the_copy_is_made_with_the_testers_rights() -> None:
    """As tester: a folder tester cannot write gets nothing; what is placed is tester's."""
    with tempfile.TemporaryDirectory(dir="/tmp") as base:  # pytest's tmp_path is root's, 0700
        run_as_nobody(Path(base))


def run_as_nobody(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    site, root = tmp_path / "site", tmp_path / "tree"
    installed(site)
    write(root / "fastpkg" / "__init__.py", b"")
    write(root / "fastpkg" / "sub" / "__init__.py", b"")
    os.chown(root / "fastpkg", NOBODY, NOBODY)  # sub/ stays root's, 0755
    placed = place_extensions(root, site, ["fastpkg"], uid=NOBODY, gid=NOBODY)
    assert placed == [f"fastpkg/_speedups{SUFFIX}"]
    stat = (root / "fastpkg" / f"_speedups{SUFFIX}").stat()
    assert (stat.st_uid, stat.st_gid) == (NOBODY, NOBODY)
    assert not (root / "fastpkg" / "sub" / "_inner.abi3.so").exists()
