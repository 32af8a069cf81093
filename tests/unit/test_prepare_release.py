"""prepare_release against a loopback fake PyPI: files, static deps, wheels, no package code."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from slave.prepare import (
    ChecksumMismatch,
    DependencyUnavailable,
    PipOptions,
    PreparedRelease,
    ReleaseNotFound,
    ReleaseRequest,
    prepare_release,
)
from tests.fakes.dists import build_sdist, build_wheel, dedent, pyproject_text
from tests.fakes.pypi import HERMETIC_PIP_ARGS, HERMETIC_PIP_ENV, FakePyPI

PYTHON, PLATFORM = "3.11", "manylinux_2_36_x86_64"
PYTEST_WHEEL = "pytest-8.0-py3-none-any.whl"


@pytest.fixture
async def pypi() -> AsyncIterator[FakePyPI]:
    async with FakePyPI() as fake:
        yield fake


def hermetic_pip(pypi: FakePyPI) -> PipOptions:
    """pip talking only to the fake index, ignoring the machine's configuration."""
    return PipOptions(
        index_url=pypi.index_url,
        args=HERMETIC_PIP_ARGS,
        env=HERMETIC_PIP_ENV,
        inherit_pip_env=False,
        timeout=120,
    )


async def prepare(
    pypi: FakePyPI,
    tmp_path: Path,
    request: ReleaseRequest,
    job: str = "job",
    python: str = PYTHON,
    guest_python: str | None = None,
) -> PreparedRelease:
    return await prepare_release(
        request,
        pypi_url=pypi.base_url,
        cache_dir=tmp_path / "cache",
        work_dir=tmp_path / job,
        pip=hermetic_pip(pypi),
        python_version=python,
        platform=PLATFORM,
        guest_python=guest_python,
    )


def wheel_names(prepared: PreparedRelease) -> list[str]:
    """The wheelhouse, without pytest (every release's test dependency, served by serve_deps)."""
    return sorted(
        p.name
        for p in prepared.wheelhouse.iterdir()
        if p.name.endswith(".whl") and p.name != PYTEST_WHEEL
    )


def serve_deps(pypi: FakePyPI, where: Path) -> None:
    """A small dependency tree, fake build tools and pytest (always a test dep), as wheels."""
    pypi.add_project(where, "dep-a", "1.0", requires_dist=["dep-b>=2"], sdist=False)
    pypi.add_project(where, "dep-b", "2.1", sdist=False)
    pypi.add_project(where, "dep-win", "1.0", sdist=False)
    pypi.add_project(where, "setuptools", "68.0", sdist=False)
    pypi.add_project(where, "wheel", "0.42", sdist=False)
    pypi.add_project(where, "pytest", "8.0", sdist=False)


async def test_wheel_only_release_gets_its_dependency_tree(pypi: FakePyPI, tmp_path: Path) -> None:
    """A wheel's METADATA drives the download; markers are evaluated for the guest."""
    serve_deps(pypi, tmp_path / "idx")
    pypi.add_project(
        tmp_path / "idx",
        "app",
        "1.0",
        sdist=False,
        requires_dist=["dep-a", 'dep-win; sys_platform == "win32"', 'dep-b; extra == "fast"'],
        requires_python=">=3.9",
    )
    prepared = await prepare(pypi, tmp_path, ReleaseRequest("app"))
    assert prepared.metadata_source == "wheel"
    assert not prepared.needs_guest_metadata
    assert prepared.requirements == ["dep-a"]
    assert prepared.requires_python == ">=3.9"
    assert [p.name for p in prepared.files] == ["app-1.0-py3-none-any.whl"]
    assert wheel_names(prepared) == ["dep_a-1.0-py3-none-any.whl", "dep_b-2.1-py3-none-any.whl"]
    assert prepared.build_requires == []  # a wheel fits the guest: nothing to build


async def test_wheel_refusing_the_guest_python_is_refused_before_any_fetch(
    pypi: FakePyPI, tmp_path: Path
) -> None:
    """The wheel the guest installs (with uv, which would not check) excludes the guest's
    full Python: python_refused in pip's words, no dependency asked of the index; a guest
    whose Python it accepts gets the release prepared as usual."""
    serve_deps(pypi, tmp_path / "idx")
    pypi.add_project(tmp_path / "idx", "app", "1.0", requires_dist=["dep-a"],
                     requires_python=">=3.11.4")  # fmt: skip
    prepared = await prepare(pypi, tmp_path, ReleaseRequest("app"), guest_python="3.11.2")
    assert prepared.python_refused == (
        "app 1.0 requires a different Python: 3.11.2 not in '>=3.11.4'"
    )
    assert prepared.requirements == ["dep-a"]  # what it needs, as the summary shows it
    assert wheel_names(prepared) == []
    assert pypi.count("/simple/") == 0
    assert sorted(p.name for p in prepared.files) == ["app-1.0-py3-none-any.whl", "app-1.0.tar.gz"]

    fits = await prepare(pypi, tmp_path, ReleaseRequest("app"), "job2", guest_python="3.11.9")
    assert fits.python_refused is None
    assert wheel_names(fits) == ["dep_a-1.0-py3-none-any.whl", "dep_b-2.1-py3-none-any.whl"]


async def test_sdist_refusing_the_guest_python_is_refused_as_a_wheel_is(
    pypi: FakePyPI, tmp_path: Path
) -> None:
    """An sdist whose static Requires-Python excludes the guest's Python is refused on the
    host, in pip's words: the guest's prepared build and uv's install of the wheel it
    builds would not check (an upload, which the master cannot route by it, was built and
    installed on 3.13 against ``==3.11.*``). One it accepts is prepared as usual."""
    serve_deps(pypi, tmp_path / "idx")
    pypi.add_project(tmp_path / "idx", "old", "1.0", requires_python="<3", wheel=False)
    prepared = await prepare(pypi, tmp_path, ReleaseRequest("old"), guest_python="3.11.2")
    assert prepared.python_refused == "old 1.0 requires a different Python: 3.11.2 not in '<3'"
    assert prepared.requires_python == "<3"
    assert [p.name for p in prepared.files] == ["old-1.0.tar.gz"]
    assert pypi.count("/simple/") == 0
    pypi.add_project(tmp_path / "idx", "new", "1.0", requires_python=">=3.9", wheel=False)
    fits = await prepare(pypi, tmp_path, ReleaseRequest("new"), "job2", guest_python="3.11.2")
    assert fits.python_refused is None


@pytest.mark.parametrize(
    ("redirect", "versioned"), [(False, True), (True, True), (False, False), (True, False)]
)
async def test_mirror_with_relative_file_urls_is_prepared(
    pypi: FakePyPI, tmp_path: Path, redirect: bool, versioned: bool
) -> None:
    """Relative file URLs (as mirrors serve them) are fetched from where the document came
    from, after redirects, from the versioned or the project document."""
    serve_deps(pypi, tmp_path / "idx")
    pypi.add_project(tmp_path / "idx", "app", "1.0", sdist=False, requires_dist=["dep-a"])
    pypi.relative_urls, pypi.redirect_json, pypi.versioned_urls = True, redirect, versioned
    prepared = await prepare(pypi, tmp_path, ReleaseRequest("app", "1.0"))
    assert [p.name for p in prepared.files] == ["app-1.0-py3-none-any.whl"]
    assert wheel_names(prepared) == ["dep_a-1.0-py3-none-any.whl", "dep_b-2.1-py3-none-any.whl"]
    assert pypi.count("/files/app-1.0") == 1


async def test_sdist_with_pkg_info_2_2_is_static(pypi: FakePyPI, tmp_path: Path) -> None:
    """An sdist-only release with Metadata-Version 2.2 gives deps and build requirements."""
    serve_deps(pypi, tmp_path / "idx")
    sdist = build_sdist(
        tmp_path / "d",
        "pkginfo-app",
        "0.5",
        {"setup.py": "raise SystemExit('not static')\n"},
        metadata_version="2.2",
        requires_dist=["dep-b"],
    )
    pypi.add(sdist)
    prepared = await prepare(pypi, tmp_path, ReleaseRequest("pkginfo-app", "0.5"))
    assert prepared.metadata_source == "pkg-info"
    assert prepared.requirements == ["dep-b"]
    # No pyproject.toml: pip's default build requirements, as wheels for the guest.
    assert prepared.build_requires == ["setuptools>=40.8.0", "wheel"]
    assert wheel_names(prepared) == [
        "dep_b-2.1-py3-none-any.whl",
        "setuptools-68.0-py3-none-any.whl",
        "wheel-0.42-py3-none-any.whl",
    ]
    assert prepared.sdist is not None and prepared.sdist.name == "pkginfo_app-0.5.tar.gz"


async def test_pyproject_dependencies_when_pkg_info_is_old(pypi: FakePyPI, tmp_path: Path) -> None:
    """With PKG-INFO 2.1, static [project] dependencies and [build-system] requires are used."""
    serve_deps(pypi, tmp_path / "idx")
    pyproject = pyproject_text(
        "pp-app", "1.0", dependencies=["dep-a"], build_requires=["setuptools>=61"]
    )
    pypi.add(build_sdist(tmp_path / "d", "pp-app", "1.0", {}, pyproject=pyproject))
    prepared = await prepare(pypi, tmp_path, ReleaseRequest("pp-app"))
    assert prepared.metadata_source == "pyproject"
    assert prepared.requirements == ["dep-a"]
    assert prepared.build_requires == ["setuptools>=61"]
    assert "dep_b-2.1-py3-none-any.whl" in wheel_names(prepared)
    # what setuptools < 70.1 asks for at build time, there for the offline guest
    assert "wheel-0.42-py3-none-any.whl" in wheel_names(prepared)


async def test_what_build_backends_ask_for_is_fetched_best_effort(
    pypi: FakePyPI, tmp_path: Path
) -> None:
    """scikit-build-core asks for cmake and ninja when the system has none: their wheels are
    fetched for the guest; one the index lacks (here ninja) is no error."""
    serve_deps(pypi, tmp_path / "idx")
    for name in ("scikit-build-core", "cmake"):
        pypi.add_project(tmp_path / "idx", name, "1.0", sdist=False)
    pyproject = pyproject_text("cxx-app", "1.0", build_requires=["scikit-build-core>=0.9"])
    pypi.add(build_sdist(tmp_path / "d", "cxx-app", "1.0", {}, pyproject=pyproject))
    prepared = await prepare(pypi, tmp_path, ReleaseRequest("cxx-app"))
    assert prepared.build_requires == ["scikit-build-core>=0.9"]
    assert wheel_names(prepared) == [
        "cmake-1.0-py3-none-any.whl",
        "scikit_build_core-1.0-py3-none-any.whl",
    ]


async def test_undeclared_setup_py_imports_are_listed_and_fetched(
    pypi: FakePyPI, tmp_path: Path
) -> None:
    """setup.py's undeclared imports (syntax tree only): listed, wheels fetched best effort."""
    serve_deps(pypi, tmp_path / "idx")
    setup = dedent(
        """
        import os
        import dep_a
        import nowhere_to_be_found
        import dynapp
        from setuptools import setup
        raise SystemExit("never run on the host")
        """
    )
    files = {"setup.py": setup, "dynapp/__init__.py": ""}
    pypi.add(build_sdist(tmp_path / "d", "dyn-app", "1.0", files, metadata_version="2.1"))
    prepared = await prepare(pypi, tmp_path, ReleaseRequest("dyn-app"))
    assert [b.module for b in prepared.build_imports] == ["dep_a", "nowhere_to_be_found"]
    assert prepared.build_import_wheels == ["dep_a"]
    assert "dep_b-2.1-py3-none-any.whl" in wheel_names(prepared)
    assert prepared.summary().build_imports == ("dep_a", "nowhere_to_be_found")


async def test_dynamic_setup_py_needs_guest_metadata(pypi: FakePyPI, tmp_path: Path) -> None:
    """Dependencies computed by setup.py are left to the guest; build tools are fetched."""
    serve_deps(pypi, tmp_path / "idx")
    pypi.add(
        build_sdist(
            tmp_path / "d",
            "dyn-app",
            "1.0",
            {"setup.py": "from setuptools import setup\nsetup(install_requires=['dep-a'])\n"},
            metadata_version="2.2",
            pkg_info_extra=[("Dynamic", "Requires-Dist")],
        )
    )
    prepared = await prepare(pypi, tmp_path, ReleaseRequest("dyn-app"))
    assert prepared.needs_guest_metadata
    assert prepared.metadata_source is None
    assert prepared.requirements == []
    assert wheel_names(prepared) == [
        "setuptools-68.0-py3-none-any.whl",
        "wheel-0.42-py3-none-any.whl",
    ]


def _marker_code(markers: list[Path]) -> str:
    return "".join(f"open({str(m)!r}, 'w').write('ran')\n" for m in markers)


async def test_host_runs_no_package_code(pypi: FakePyPI, tmp_path: Path) -> None:
    """setup.py, an in-tree build backend and a dependency's sdist never run on the host."""
    serve_deps(pypi, tmp_path / "idx")
    token = uuid.uuid4().hex
    markers = [
        tmp_path / f"marker-{token}",
        Path.home() / f"pyti-marker-{token}",
        Path("/tmp") / f"pyti-marker-{token}",
    ]
    code = "import os\n" + _marker_code(markers) + f"open('cwd-marker-{token}', 'w')\n"
    evil_pyproject = dedent(
        """
        [build-system]
        requires = []
        build-backend = "evil_backend"
        backend-path = ["."]

        [project]
        name = "evil-app"
        version = "1.0"
        dynamic = ["dependencies"]
        """
    )
    pypi.add(
        build_sdist(
            tmp_path / "d",
            "evil-app",
            "1.0",
            {"setup.py": code, "evil_backend.py": code},
            pyproject=evil_pyproject,
        )
    )
    # A dependency that exists only as an sdist: pip must refuse it, not build it.
    pypi.add(build_sdist(tmp_path / "d", "evil-dep", "1.0", {"setup.py": code}))
    pypi.add_project(tmp_path / "idx", "victim", "1.0", requires_dist=["evil-dep"], sdist=False)

    prepared = await prepare(pypi, tmp_path, ReleaseRequest("evil-app"))
    assert prepared.needs_guest_metadata
    with pytest.raises(DependencyUnavailable) as err:
        await prepare(pypi, tmp_path, ReleaseRequest("victim"), job="job2")
    assert "evil-dep" in err.value.reason

    for marker in markers:
        assert not marker.exists(), marker
    found = [p for root in (tmp_path, Path.cwd()) for p in root.rglob(f"*marker-{token}*")]
    assert found == []


async def test_checksum_mismatch_is_refused(pypi: FakePyPI, tmp_path: Path) -> None:
    """A file whose bytes do not match the advertised sha256 fails and leaves nothing."""
    project = pypi.add_project(tmp_path / "idx", "app", "1.0", sdist=False)
    assert project.wheel is not None
    pypi.faults.wrong_sha256.add(project.wheel.name)
    with pytest.raises(ChecksumMismatch) as err:
        await prepare(pypi, tmp_path, ReleaseRequest("app"))
    assert err.value.filename == project.wheel.name
    assert list((tmp_path / "job" / "files").iterdir()) == []
    assert not (tmp_path / "cache" / "blobs").exists()


async def test_missing_dependency_is_dependency_unavailable(pypi: FakePyPI, tmp_path: Path) -> None:
    """A dependency the index lacks raises DependencyUnavailable with pip's reason."""
    pypi.add_project(tmp_path / "idx", "app", "1.0", requires_dist=["nowhere>=1"], sdist=False)
    with pytest.raises(DependencyUnavailable) as err:
        await prepare(pypi, tmp_path, ReleaseRequest("app"))
    assert err.value.requirements == ["nowhere>=1"]
    assert "No matching distribution found for nowhere>=1" in err.value.reason


async def test_second_prepare_hits_the_cache(pypi: FakePyPI, tmp_path: Path) -> None:
    """Same release and deps again: no file download and no index request for the deps."""
    serve_deps(pypi, tmp_path / "idx")
    pypi.add_project(tmp_path / "idx", "app", "1.0", requires_dist=["dep-a"], sdist=False)
    first = await prepare(pypi, tmp_path, ReleaseRequest("app", "1.0"), job="job1")
    files, simple = pypi.count("/files/"), pypi.count("/simple/")
    assert files == 4 and simple >= 2  # app, dep-a, dep-b, pytest
    second = await prepare(pypi, tmp_path, ReleaseRequest("app", "1.0"), job="job2")
    assert pypi.count("/files/") == files
    assert pypi.count("/simple/") == simple
    assert wheel_names(second) == wheel_names(first)
    assert second.files[0].read_bytes() == first.files[0].read_bytes()


async def test_yanked_release_is_skipped_unless_asked(pypi: FakePyPI, tmp_path: Path) -> None:
    """Latest skips a yanked 2.0; an explicit yanked version needs allow_yanked."""
    pypi.add_project(tmp_path / "a", "app", "1.0", sdist=False)
    pypi.add_project(tmp_path / "b", "app", "2.0", sdist=False, yanked="broken")
    latest = await prepare(pypi, tmp_path, ReleaseRequest("app"), job="j1")
    assert latest.version == "1.0"
    with pytest.raises(ReleaseNotFound) as err:
        await prepare(pypi, tmp_path, ReleaseRequest("app", "2.0"), job="j2")
    assert err.value.reason == "yanked"
    allowed = await prepare(pypi, tmp_path, ReleaseRequest("app", "2.0", allow_yanked=True))
    assert allowed.version == "2.0"


async def test_unknown_project_is_release_not_found(pypi: FakePyPI, tmp_path: Path) -> None:
    """A 404 from the JSON API raises ReleaseNotFound."""
    with pytest.raises(ReleaseNotFound):
        await prepare(pypi, tmp_path, ReleaseRequest("does-not-exist"))


async def test_uploaded_wheel_is_checked_and_used(pypi: FakePyPI, tmp_path: Path) -> None:
    """An uploaded file is sha256-checked and its own METADATA names the release."""
    serve_deps(pypi, tmp_path / "idx")
    whl = build_wheel(tmp_path / "up", "uploaded", "3.0", {}, requires_dist=["dep-b"])
    digest = hashlib.sha256(whl.read_bytes()).hexdigest()
    with pytest.raises(ChecksumMismatch):
        await prepare(
            pypi, tmp_path, ReleaseRequest("uploaded", uploaded=whl, uploaded_sha256="0" * 64)
        )
    prepared = await prepare(
        pypi, tmp_path, ReleaseRequest("uploaded", uploaded=whl, uploaded_sha256=digest), job="j2"
    )
    assert (prepared.project, prepared.version) == ("uploaded", "3.0")
    assert prepared.sha256 == {whl.name: digest}
    assert wheel_names(prepared) == ["dep_b-2.1-py3-none-any.whl"]
    assert pypi.count("/pypi/") == 0


async def test_test_extras_are_fetched_best_effort(pypi: FakePyPI, tmp_path: Path) -> None:
    """Deps of the test extras are fetched when possible; missing ones are only recorded."""
    serve_deps(pypi, tmp_path / "idx")
    pypi.add_project(tmp_path / "idx", "pytest-fake", "1.0", sdist=False)
    reqs = ["dep-b", 'pytest-fake; extra == "test"', 'dep-a; extra == "testing"']
    pypi.add_project(tmp_path / "idx", "good", "1.0", requires_dist=reqs, sdist=False)
    good = await prepare(pypi, tmp_path, ReleaseRequest("good"), job="j1")
    assert good.requirements == ["dep-b"]
    assert good.test_requirements == ["pytest-fake", "dep-a", "pytest"]
    assert good.test_sources == ["extra:test", "extra:testing"]
    assert good.test_unavailable == []
    assert "pytest_fake-1.0-py3-none-any.whl" in wheel_names(good)
    assert good.summary().test_sources == ("extra:test", "extra:testing")

    missing = ["dep-b", 'no-such-test-tool; extra == "tests"', 'dep-a; extra == "tests"']
    pypi.add_project(tmp_path / "idx", "partial", "1.0", requires_dist=missing, sdist=False)
    partial = await prepare(pypi, tmp_path, ReleaseRequest("partial"), job="j2")
    assert partial.test_unavailable == ["no-such-test-tool"]
    assert wheel_names(partial) == ["dep_a-1.0-py3-none-any.whl", "dep_b-2.1-py3-none-any.whl"]
    assert (partial.wheelhouse / PYTEST_WHEEL).is_file()


async def test_conflicting_test_pins_fall_back_one_by_one(pypi: FakePyPI, tmp_path: Path) -> None:
    """A test pin that conflicts with the runtime deps is unavailable; the others still come."""
    serve_deps(pypi, tmp_path / "idx")
    pypi.add_project(tmp_path / "idx", "needs-old-b", "1.0", requires_dist=["dep-b<2"], sdist=False)
    pyproject = pyproject_text("app", "1.0", dependencies=["dep-a"]) + dedent("""
        [dependency-groups]
        tests = ["needs-old-b", "pytest"]
    """)
    sdist = build_sdist(tmp_path / "idx", "app", "1.0", {}, pyproject=pyproject)
    pypi.add(sdist)
    prepared = await prepare(pypi, tmp_path, ReleaseRequest("app"))
    assert prepared.metadata_source == "pyproject"
    assert prepared.test_requirements == ["needs-old-b", "pytest"]
    assert prepared.test_sources == ["dependency-groups:tests"]
    assert prepared.test_unavailable == ["needs-old-b"]
    assert (prepared.wheelhouse / PYTEST_WHEEL).is_file()
