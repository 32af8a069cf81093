"""The JSON API describes releases; odd answers are refused, 404 means "not yet"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from master.feed.errors import ResolveError
from master.feed.fetch import HttpClient, make_session
from master.feed.resolve import Resolver
from master.pypi import Release, ReleaseFile
from tests.fakes.pypi import FakePyPI, default_files

T = 1_763_740_800.0


@pytest.fixture
async def srv() -> AsyncIterator[FakePyPI]:
    async with FakePyPI() as feeds:
        yield feeds


@pytest.fixture
async def resolver(srv: FakePyPI) -> AsyncIterator[Resolver]:
    async with make_session(5.0) as session:
        yield Resolver(HttpClient(session, timeout=5.0), srv.base_url, max_bytes=1 << 20)


async def test_release_lists_files_with_digests(srv: FakePyPI, resolver: Resolver) -> None:
    """sha256, size, packagetype and url of every file come through; the name is PyPI's."""
    srv.add_release("Foo.Bar", "1.0", file_size=4096)
    release = await resolver.release("foo-bar", "1.0")
    assert release is not None
    assert release.name == "Foo.Bar"
    assert release.requires_python == ">=3.8"
    assert not release.yanked
    assert [f.to_dict() for f in release.files] == [
        {k: f[k] for k in ("filename", "size", "packagetype", "url")}
        | {"sha256": f["digests"]["sha256"]}
        for f in default_files(srv.base_url, "Foo.Bar", "1.0", 4096)
    ]
    assert release.largest_file == 4096


async def test_missing_release_is_none_until_it_appears(srv: FakePyPI, resolver: Resolver) -> None:
    """A 404 (JSON API lagging the upload) is None, not an error; later it resolves."""
    srv.add_release("demo", "1.0")
    srv.faults.hide("demo", "1.0", times=1)
    assert await resolver.release("demo", "1.0") is None
    assert await resolver.release("demo", "1.0") is not None


async def test_release_without_files_yet_is_none(srv: FakePyPI, resolver: Resolver) -> None:
    """A release whose file list is still empty is treated like a 404: retry later."""
    srv.add_release("demo", "1.0", files=[])
    assert await resolver.release("demo", "1.0") is None


async def test_yanked_release_says_so(srv: FakePyPI, resolver: Resolver) -> None:
    """info.yanked is carried so the watcher can filter it."""
    srv.add_release("demo", "1.0", yanked=True)
    release = await resolver.release("demo", "1.0")
    assert release is not None and release.yanked


async def test_eggs_are_left_out(srv: FakePyPI, resolver: Resolver) -> None:
    """Only sdists and wheels are kept; an egg-only release ends up with no files."""
    egg = {**default_files(srv.base_url, "old", "0.1")[0], "packagetype": "bdist_egg"}
    srv.add_release("old", "0.1", files=[egg])
    release = await resolver.release("old", "0.1")
    assert release is not None and release.files == ()


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"digests": {"sha256": "abc"}}, "sha256"),
        ({"digests": {}}, "sha256"),
        ({"size": -1}, "size"),
        ({"size": "12"}, "size"),
        ({"filename": "../../etc/passwd"}, "filename"),
        ({"url": "file:///etc/passwd"}, "url"),
        ({"packagetype": None}, "packagetype"),
    ],
)
async def test_malformed_file_entries_are_refused(
    srv: FakePyPI, resolver: Resolver, change: dict[str, object], detail: str
) -> None:
    """A file entry with a bad digest, size, name, URL or type makes the answer unusable."""
    files = default_files(srv.base_url, "demo", "1.0")
    files[0] = {**files[0], **change}
    srv.add_release("demo", "1.0", files=files)
    with pytest.raises(ResolveError) as info:
        await resolver.release("demo", "1.0")
    assert detail in info.value.detail


@pytest.mark.parametrize(
    ("doc", "detail"),
    [
        ({"info": {"name": "demo", "version": "2.0"}, "urls": []}, "version '2.0'"),
        ({"info": {"name": "other", "version": "1.0"}, "urls": []}, "project 'other'"),
        ({"info": "x", "urls": []}, "no 'info' object"),
        ({"info": {"name": "demo", "version": "1.0"}}, "no 'info' object"),
        ([1, 2, 3], "no 'info' object"),
    ],
)
async def test_answers_that_are_not_this_release_are_refused(
    srv: FakePyPI, resolver: Resolver, doc: object, detail: str
) -> None:
    """JSON of another project or version, or of the wrong shape, is a ResolveError."""
    srv.set_json("demo", "1.0", doc)
    with pytest.raises(ResolveError) as info:
        await resolver.release("demo", "1.0")
    assert detail in info.value.detail


async def test_look_alike_unicode_name_is_refused(srv: FakePyPI, resolver: Resolver) -> None:
    """A name with a Kelvin sign lower-cases to 'keras' but is not PyPI's ASCII name: refused."""
    srv.set_json("keras", "1.0", {"info": {"name": "\u212aeras", "version": "1.0"}, "urls": []})
    with pytest.raises(ResolveError, match="describes project"):
        await resolver.release("keras", "1.0")


async def test_project_without_a_valid_newest_version_is_refused(
    srv: FakePyPI, resolver: Resolver
) -> None:
    """A project JSON whose info.version is missing or unsafe is a ResolveError."""
    srv.set_json("demo", None, {"info": {"version": "1.0/../../x"}, "releases": {}})
    with pytest.raises(ResolveError, match=r"info\.version"):
        await resolver.project("demo")


async def test_project_gives_newest_version_and_upload_times(
    srv: FakePyPI, resolver: Resolver
) -> None:
    """The project JSON yields info.version and each release's first upload time."""
    srv.add_release("demo", "1.0", uploaded=T)
    srv.add_release("demo", "1.1", uploaded=T + 60)
    srv.add_release("demo", "2.0")
    found = await resolver.project("demo")
    assert found is not None
    assert found.newest == "2.0"
    assert found.uploaded == {"1.0": T, "1.1": T + 60, "2.0": None}
    assert await resolver.project("unknown") is None


async def test_fake_pypi_releases_resolve_too(tmp_path: Path) -> None:
    """The shared FakePyPI's JSON (built from real sdists and wheels) resolves the same way."""
    async with FakePyPI() as pypi, make_session(5.0) as session:
        project = pypi.add_project(tmp_path, "Demo_Pkg", "0.3")
        resolver = Resolver(HttpClient(session, timeout=5.0), pypi.base_url, max_bytes=1 << 20)
        release = await resolver.release("demo-pkg", "0.3")
        newest = await resolver.project("demo-pkg")
    assert isinstance(release, Release)
    assert sorted(f.filename for f in release.files) == sorted(p.name for p in project.files)
    assert all(isinstance(f, ReleaseFile) and len(f.sha256) == 64 for f in release.files)
    assert newest is not None and newest.newest == "0.3"


async def test_release_from_the_project_document_when_versioned_urls_404(
    srv: FakePyPI, resolver: Resolver
) -> None:
    """An index that serves only project documents still resolves any listed version."""
    srv.add_release("demo", "1.0", requires_python=">=3.9")
    srv.add_release("demo", "2.0")
    srv.versioned_urls = False
    release = await resolver.release("demo", "1.0")
    assert release is not None
    assert release.version == "1.0" and release.name == "demo"
    assert release.files and all("1.0" in f.filename for f in release.files)
    assert await resolver.release("demo", "3.0") is None
