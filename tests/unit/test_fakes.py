"""The test fakes are real enough: pip installs the wheels, archives are well formed."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import aiohttp
import pytest

from tests.fakes.dists import (
    FAILING_TEST,
    NETWORK_CALL,
    PERSIST_IN_BASHRC,
    READ_SSH_KEY,
    SEGFAULT_ON_IMPORT,
    SPAWN_PROCESS,
    build_sdist,
    build_wheel,
    make_project,
    normalize_name,
    record_hash,
)
from tests.fakes.pypi import HERMETIC_PIP_ARGS, FakePyPI, hermetic_pip_env


def _pip_env() -> dict[str, str]:
    return hermetic_pip_env()


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


async def _get_json(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        if resp.status != 200:
            return resp.status, None
        return resp.status, await resp.json()


async def test_fake_pypi_json_api_has_pypi_shape(tmp_path: Path) -> None:
    """The project and release endpoints describe files with digests, type, size, yanked."""
    async with FakePyPI() as pypi:
        proj = pypi.add_project(tmp_path / "a", "Demo.Pkg", "1.0", requires_dist=["idna>=3"])
        pypi.add_project(tmp_path / "b", "Demo.Pkg", "2.0", yanked="bad")
        status, body = await _get_json(f"{pypi.base_url}/pypi/demo-pkg/json")
        assert status == 200
        # 2.0 is yanked, so the project's "latest" is 1.0
        assert body["info"]["version"] == "1.0"
        assert body["info"]["requires_dist"] == ["idna>=3"]
        assert sorted(body["releases"]) == ["1.0", "2.0"]
        assert all(f["yanked"] for f in body["releases"]["2.0"])
        by_type = {f["packagetype"]: f for f in body["urls"]}
        assert proj.wheel is not None
        wheel_bytes = proj.wheel.read_bytes()
        assert (
            by_type["bdist_wheel"]["digests"]["sha256"] == hashlib.sha256(wheel_bytes).hexdigest()
        )
        assert by_type["bdist_wheel"]["size"] == len(wheel_bytes)
        assert set(by_type) == {"sdist", "bdist_wheel"}
        status, release = await _get_json(f"{pypi.base_url}/pypi/Demo_Pkg/2.0/json")
        assert status == 200 and release["info"]["version"] == "2.0"
        url = by_type["bdist_wheel"]["url"]
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert await resp.read() == wheel_bytes


async def test_fake_pypi_injects_missing_and_wrong_digest(tmp_path: Path) -> None:
    """A project marked missing answers 404; a wrong_sha256 file advertises another digest."""
    async with FakePyPI() as pypi:
        proj = pypi.add_project(tmp_path, "demo", "1.0")
        assert proj.wheel is not None
        pypi.faults.wrong_sha256.add(proj.wheel.name)
        _, body = await _get_json(f"{pypi.base_url}/pypi/demo/1.0/json")
        whl = next(f for f in body["urls"] if f["packagetype"] == "bdist_wheel")
        assert whl["digests"]["sha256"] != hashlib.sha256(proj.wheel.read_bytes()).hexdigest()
        pypi.faults.missing.add("demo")
        assert (await _get_json(f"{pypi.base_url}/pypi/demo/json"))[0] == 404
        assert (await _get_json(f"{pypi.base_url}/simple/demo/"))[0] == 404
        assert pypi.count("/pypi/") == 2


async def test_fake_pypi_delay_slows_every_answer(tmp_path: Path) -> None:
    """With faults.delay set, an answer does not arrive within a shorter client timeout."""
    async with FakePyPI() as pypi:
        pypi.add_project(tmp_path, "demo", "1.0")
        pypi.faults.delay = 1.0
        timeout = aiohttp.ClientTimeout(total=0.2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            with pytest.raises(TimeoutError):
                async with session.get(f"{pypi.base_url}/pypi/demo/json") as resp:
                    await resp.read()


async def test_pip_downloads_from_fake_simple_index(tmp_path: Path) -> None:
    """pip resolves and fetches a wheel and its dependency from the simple index."""
    async with FakePyPI() as pypi:
        pypi.add_project(tmp_path / "d", "dep-one", "1.0", sdist=False)
        pypi.add_project(tmp_path / "t", "top", "1.0", requires_dist=["dep-one"], sdist=False)
        out = tmp_path / "out"
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:"),
            *("--index-url", pypi.index_url, *HERMETIC_PIP_ARGS, "-d", str(out), "top"),
            env=_pip_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
    assert sorted(p.name for p in out.iterdir()) == [
        "dep_one-1.0-py3-none-any.whl",
        "top-1.0-py3-none-any.whl",
    ]


async def test_fake_pypi_rss_feeds_list_new_releases(tmp_path: Path) -> None:
    """updates.xml has one item per new release, newest first; packages.xml per project."""
    async with FakePyPI() as pypi:
        pypi.add_project(tmp_path / "a", "alpha", "1.0", published=1_000_000.0)
        pypi.add_project(tmp_path / "b", "alpha", "1.1", published=2_000_000.0)
        pypi.add_project(tmp_path / "c", "beta", "0.1", published=1_500_000.0)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{pypi.base_url}/rss/updates.xml") as resp:
                updates = ElementTree.fromstring(await resp.read())  # noqa: S314 (our fake)
            async with session.get(f"{pypi.base_url}/rss/packages.xml") as resp:
                packages = ElementTree.fromstring(await resp.read())  # noqa: S314
            pypi.faults.status["/rss/updates.xml"] = 503
            async with session.get(f"{pypi.base_url}/rss/updates.xml") as resp:
                assert resp.status == 503
    titles = [item.findtext("title") for item in updates.iter("item")]
    assert titles == ["alpha 1.1", "beta 0.1", "alpha 1.0"]
    links = [item.findtext("link") for item in updates.iter("item")]
    assert links[0] == f"{pypi.base_url}/project/alpha/1.1/"
    assert [i.findtext("title") for i in packages.iter("item")] == [
        "beta added to PyPI",
        "alpha added to PyPI",
    ]


@pytest.mark.parametrize(
    "body",
    [
        FAILING_TEST,
        SEGFAULT_ON_IMPORT,
        NETWORK_CALL,
        READ_SSH_KEY,
        PERSIST_IN_BASHRC,
        SPAWN_PROCESS,
    ],
)
def test_behaviour_recipes_are_valid_python_and_format_safe(body: str) -> None:
    """Each recipe compiles (never runs here) and survives make_project's str.format."""
    formatted = body.format(module="m", version="1")
    assert formatted == body
    compile(formatted, "<recipe>", "exec")


async def test_fake_pypi_serves_relative_file_urls_like_a_mirror(tmp_path: Path) -> None:
    """relative_urls makes JSON file URLs relative to the document; redirect_json moves it."""
    async with FakePyPI() as pypi:
        proj = pypi.add_project(tmp_path, "demo", "1.0", sdist=False)
        assert proj.wheel is not None
        pypi.relative_urls = True
        _, project = await _get_json(f"{pypi.base_url}/pypi/demo/json")
        _, release = await _get_json(f"{pypi.base_url}/pypi/demo/1.0/json")
        assert project["urls"][0]["url"] == f"../../files/{proj.wheel.name}"
        assert release["urls"][0]["url"] == f"../../../files/{proj.wheel.name}"
        pypi.redirect_json = True
        url = f"{pypi.base_url}/pypi/demo/json"
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            moved = await resp.json()
            assert resp.url.path == "/json/demo"
        assert moved["urls"][0]["url"] == f"../files/{proj.wheel.name}"
