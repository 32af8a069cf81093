"""The test fakes are real enough: pip installs the wheels, archives are well formed."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

from tests.fakes.dists import (
    build_sdist,
    build_wheel,
    make_project,
    normalize_name,
    record_hash,
)


def _pip_env() -> dict[str, str]:
    return {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def test_names_are_normalised_per_pep_503_and_427(tmp_path: Path) -> None:
    """Index names use dashes, file names use underscores, both lower-cased."""
    assert normalize_name("Foo.Bar__baz") == "foo-bar-baz"
    whl = build_wheel(tmp_path, "Foo.Bar-baz", "1.0", {})
    sd = build_sdist(tmp_path, "Foo.Bar-baz", "1.0", {})
    assert whl.name == "foo_bar_baz-1.0-py3-none-any.whl"
    assert sd.name == "foo_bar_baz-1.0.tar.gz"


def test_wheel_is_installable_by_pip(tmp_path: Path) -> None:
    """pip accepts the RECORD/WHEEL/METADATA we write and installs the files."""
    whl = build_wheel(
        tmp_path / "dist", "hello-fake", "2.0", {"hello_fake/__init__.py": "ANSWER = 42\n"}
    )
    target = tmp_path / "target"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps"),
            *("--target", str(target), str(whl)),
        ],
        check=True,
        env=_pip_env(),
        capture_output=True,
    )
    assert (target / "hello_fake" / "__init__.py").read_text() == "ANSWER = 42\n"
    assert (target / "hello_fake-2.0.dist-info" / "METADATA").exists()


def test_wheel_record_lists_every_file_with_its_hash(tmp_path: Path) -> None:
    """RECORD carries the sha256 and size of each member, and itself without a hash."""
    whl = build_wheel(tmp_path, "r", "1", {"r/a.py": b"abc"}, requires_dist=["idna>=3"])
    with zipfile.ZipFile(whl) as zf:
        record = zf.read("r-1.dist-info/RECORD").decode().splitlines()
        meta = Parser().parsestr(zf.read("r-1.dist-info/METADATA").decode())
    assert f"r/a.py,{record_hash(b'abc')},3" in record
    assert "r-1.dist-info/RECORD,," in record
    assert meta.get_all("Requires-Dist") == ["idna>=3"]


def test_sdist_has_top_level_dir_and_pkg_info(tmp_path: Path) -> None:
    """Sdist members live under name-version/, with PKG-INFO holding the given fields."""
    sd = build_sdist(
        tmp_path,
        "My.Pkg",
        "0.3",
        {"my_pkg/__init__.py": ""},
        metadata_version="2.2",
        requires_dist=["idna"],
        pkg_info_extra=[("Dynamic", "Classifier")],
        pyproject="[project]\nname='my.pkg'\n",
    )
    with tarfile.open(sd) as tar:
        names = tar.getnames()
        pkg_info_file = tar.extractfile("my_pkg-0.3/PKG-INFO")
        assert pkg_info_file is not None
        pkg_info = Parser().parsestr(pkg_info_file.read().decode())
    assert all(n == "my_pkg-0.3" or n.startswith("my_pkg-0.3/") for n in names)
    assert "my_pkg-0.3/pyproject.toml" in names
    assert pkg_info["Metadata-Version"] == "2.2"
    assert pkg_info.get_all("Requires-Dist") == ["idna"]
    assert pkg_info.get_all("Dynamic") == ["Classifier"]


def test_archives_are_reproducible(tmp_path: Path) -> None:
    """The same inputs give byte-identical archives (stable sha256 for fake indexes)."""
    a = make_project(tmp_path / "a", "same", "1.0")
    b = make_project(tmp_path / "b", "same", "1.0")
    for pa, pb in zip(a.files, b.files, strict=True):
        assert hashlib.sha256(pa.read_bytes()).digest() == hashlib.sha256(pb.read_bytes()).digest()


def test_make_project_writes_package_tests_and_pyproject(tmp_path: Path) -> None:
    """A made project ships its tests in the sdist only, and a static pyproject."""
    proj = make_project(tmp_path, "Demo-Proj", "0.1", requires_dist=["idna>=3"])
    assert proj.module == "demo_proj"
    assert proj.sdist is not None and proj.wheel is not None
    with tarfile.open(proj.sdist) as tar:
        names = set(tar.getnames())
        pyproject_file = tar.extractfile("demo_proj-0.1/pyproject.toml")
        assert pyproject_file is not None
        pyproject = pyproject_file.read().decode()
    assert {"demo_proj-0.1/demo_proj/__init__.py", "demo_proj-0.1/tests/test_x.py"} <= names
    assert 'dependencies = ["idna>=3"]' in pyproject
    assert 'build-backend = "setuptools.build_meta"' in pyproject
    with zipfile.ZipFile(proj.wheel) as zf:
        assert not any(n.startswith("tests/") for n in zf.namelist())
