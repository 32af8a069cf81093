"""download_wheels: binary wheels for the guest's platform, cache, timeouts, cancellation."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from slave.prepare import DependencyUnavailable, PipOptions, download_wheels
from slave.prepare.models import GuestTarget
from slave.prepare.pins import UV_NEWEST_GLIBC, compile_command, parse_pins, uv_platform
from slave.prepare.wheelhouse import pip_command
from tests.fakes.dists import build_wheel
from tests.fakes.pypi import HERMETIC_PIP_ARGS, HERMETIC_PIP_ENV, FakePyPI


@pytest.fixture
async def pypi() -> AsyncIterator[FakePyPI]:
    async with FakePyPI() as fake:
        yield fake


def options(pypi: FakePyPI, **changes: object) -> PipOptions:
    base = PipOptions(
        index_url=pypi.index_url,
        args=HERMETIC_PIP_ARGS,
        env=HERMETIC_PIP_ENV,
        inherit_pip_env=False,
        timeout=120,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def processes_mentioning(text: str) -> list[int]:
    """Live pids whose command line contains ``text`` (pip's --dest is under tmp_path)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                pids.append(int(proc.name))
    return pids


def scratch_dirs(root: Path) -> list[str]:
    return [p.name for p in root.iterdir() if p.name.startswith(".pip-")]


async def fetch(
    pypi: FakePyPI, tmp_path: Path, reqs: list[str], python: str = "3.11", **changes: object
) -> list[str]:
    """The wheel names ``download_wheels`` delivers for a guest on ``python``; ``changes``
    to the pip options."""
    paths = await download_wheels(
        reqs,
        wheelhouse=tmp_path / "wh",
        cache_dir=tmp_path / "cache",
        python_version=python,
        platform="manylinux_2_36_x86_64",
        pip=options(pypi, **changes),
    )
    return sorted(p.name for p in paths)


async def test_platform_wheels_match_the_guest(pypi: FakePyPI, tmp_path: Path) -> None:
    """A cp311 manylinux_2_17 wheel is taken for a glibc 2.36 guest; a 2.39-only one is not."""
    ok = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"
    pypi.add(build_wheel(tmp_path / "i", "native", "1.0", {}, tag=ok))
    pypi.add(build_wheel(tmp_path / "i", "native", "1.1", {}, tag="cp311-cp311-win_amd64"))
    pypi.add(
        build_wheel(tmp_path / "i", "too-new", "1.0", {}, tag="cp311-cp311-manylinux_2_39_x86_64")
    )
    assert await fetch(pypi, tmp_path, ["native"]) == [f"native-1.0-{ok}.whl"]
    with pytest.raises(DependencyUnavailable) as err:
        await fetch(pypi, tmp_path, ["too-new"])
    assert err.value.requirements == ["too-new"]


async def test_dependencies_fit_the_guest_python(pypi: FakePyPI, tmp_path: Path) -> None:
    """pip picks each dependency (direct or transitive) for the guest's Python: the newest
    version whose Requires-Python accepts it, none when no version does. The guest's uv
    installs these wheels without checking Requires-Python itself."""
    where = tmp_path / "i"
    pypi.add_project(where, "dep", "1.0", requires_python=">=3.8", sdist=False)
    pypi.add_project(where, "dep", "2.0", requires_python=">=3.12", sdist=False)
    pypi.add_project(where, "top", "1.0", requires_dist=["dep"], sdist=False)
    pypi.add_project(where, "new-only", "1.0", requires_python=">=3.12", sdist=False)

    async def for_python(python: str, reqs: list[str], job: str) -> list[str]:
        paths = await download_wheels(
            reqs,
            wheelhouse=tmp_path / job / "wh",
            cache_dir=tmp_path / "cache",
            python_version=python,
            platform="manylinux_2_36_x86_64",
            pip=options(pypi),
        )
        return sorted(p.name for p in paths)

    old = ["dep-1.0-py3-none-any.whl", "top-1.0-py3-none-any.whl"]
    assert await for_python("3.11", ["top"], "a") == old
    new = ["dep-2.0-py3-none-any.whl", "top-1.0-py3-none-any.whl"]
    assert await for_python("3.12", ["top"], "b") == new
    with pytest.raises(DependencyUnavailable) as err:
        await for_python("3.11", ["new-only"], "c")
    assert err.value.requirements == ["new-only"]
    assert await for_python("3.13", ["new-only"], "d") == ["new_only-1.0-py3-none-any.whl"]


async def test_transitive_markers_are_judged_for_the_guest_python(
    pypi: FakePyPI, tmp_path: Path
) -> None:
    """A dependency's markers hold for the guest's Python, not for the host's that runs
    pip: ``top`` asks for ``dep<3`` below 3.12 and ``dep>=3`` from 3.12 on. pip alone,
    on a host Python on the other side of 3.12, picked the host's ``dep``; uv pins for
    the guest and pip downloads the pins."""
    where = tmp_path / "i"
    pypi.add_project(where, "dep", "2.0", sdist=False)
    pypi.add_project(where, "dep", "3.0", sdist=False)
    pypi.add_project(
        where,
        "top",
        "1.0",
        requires_dist=['dep<3; python_version < "3.12"', 'dep>=3; python_version >= "3.12"'],
        sdist=False,
    )
    guest, want = ("3.13", "3.0") if sys.version_info < (3, 12) else ("3.11", "2.0")
    names = await fetch(pypi, tmp_path, ["top"], python=guest)
    assert names == [f"dep-{want}-py3-none-any.whl", "top-1.0-py3-none-any.whl"]


async def test_pins_pip_refuses_fall_back_to_pip_resolving(pypi: FakePyPI, tmp_path: Path) -> None:
    """uv's pins are only a first try: when pip cannot download one of them (here a
    constraint only pip sees), pip resolves alone and still delivers the wheels."""
    where = tmp_path / "i"
    pypi.add_project(where, "dep", "1.0", sdist=False)
    pypi.add_project(where, "dep", "2.0", sdist=False)
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("dep<2\n")
    guest = "3.13" if sys.version_info < (3, 13) else "3.12"
    args = (*HERMETIC_PIP_ARGS, "--constraint", str(constraints))
    assert await fetch(pypi, tmp_path, ["dep"], python=guest, args=args) == [
        "dep-1.0-py3-none-any.whl"
    ]


async def test_nothing_applicable_runs_no_pip(pypi: FakePyPI, tmp_path: Path) -> None:
    """Requirements whose markers exclude the guest produce no pip run and no request."""
    got = await fetch(pypi, tmp_path, ['pywin32; sys_platform == "win32"', 'x; extra == "doc"'])
    assert got == []
    assert pypi.count() == 0


async def test_expired_resolution_asks_the_index_again(pypi: FakePyPI, tmp_path: Path) -> None:
    """With resolution_ttl=0 the cached resolution is ignored and pip runs again."""
    pypi.add_project(tmp_path / "i", "dep", "1.0", sdist=False)
    await fetch(pypi, tmp_path, ["dep"])
    first = pypi.count("/simple/")
    await fetch(pypi, tmp_path, ["dep"])
    assert pypi.count("/simple/") == first
    await fetch(pypi, tmp_path, ["dep"], resolution_ttl=0.0)
    assert pypi.count("/simple/") > first


async def test_pip_timeout_is_dependency_unavailable(pypi: FakePyPI, tmp_path: Path) -> None:
    """A hanging index makes pip time out: DependencyUnavailable, scratch dir removed."""
    pypi.add_project(tmp_path / "i", "dep", "1.0", sdist=False)
    pypi.faults.delay = 30.0
    with pytest.raises(DependencyUnavailable, match="timed out"):
        await fetch(pypi, tmp_path, ["dep"], timeout=3.0)
    assert scratch_dirs(tmp_path) == []


async def test_cancel_kills_pip_and_cleans_up(pypi: FakePyPI, tmp_path: Path) -> None:
    """Cancelling mid-download kills pip and removes its scratch directory."""
    pypi.add_project(tmp_path / "i", "dep", "1.0", sdist=False)
    pypi.faults.delay = 30.0
    task = asyncio.create_task(fetch(pypi, tmp_path, ["dep"]))
    await pypi.wait_for_request("/simple/")
    assert len(processes_mentioning(str(tmp_path))) == 1  # pip is running
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert processes_mentioning(str(tmp_path)) == []
    assert scratch_dirs(tmp_path) == []


def test_uv_resolves_offline_of_everything_but_the_index() -> None:
    """uv's argv: binary only, the guest's Python and glibc (capped at what uv names), no
    Python download (uv fetches one from GitHub otherwise), no config, the index given."""
    target = GuestTarget("3.13", "manylinux_2_41_x86_64")
    platform = uv_platform(target)
    assert platform == f"x86_64-manylinux_2_{UV_NEWEST_GLIBC}"
    argv = compile_command(
        "uv", target, PipOptions(index_url="http://127.0.0.1:1/simple"), platform
    )
    assert argv[argv.index("--only-binary") + 1] == ":all:"
    assert argv[argv.index("--python-version") + 1] == "3.13"
    assert "--no-python-downloads" in argv and "--no-config" in argv
    assert argv[argv.index("--index-url") + 1] == "http://127.0.0.1:1/simple"
    assert uv_platform(GuestTarget("3.11", "manylinux_2_36_x86_64")) == "x86_64-manylinux_2_36"
    assert parse_pins("a==1.0\nb-c==2.0.post1\n") == ["a==1.0", "b-c==2.0.post1"]
    assert parse_pins("a==1.0\nb @ https://x/b.whl\n") is None


def test_pip_command_is_binary_only_for_the_guest() -> None:
    """The argv pins --only-binary, the guest's interpreter/ABI and its manylinux tags."""
    argv = pip_command(
        ["a>=1"], Path("/d"), GuestTarget("3.11", "manylinux_2_36_x86_64"), PipOptions()
    )
    assert "--only-binary=:all:" in argv
    assert argv[argv.index("--python-version") + 1] == "3.11"
    assert argv[argv.index("--abi") + 1] == "cp311"
    platforms = [argv[i + 1] for i, a in enumerate(argv) if a == "--platform"]
    assert platforms[0] == "manylinux_2_36_x86_64" and "manylinux2014_x86_64" in platforms
    assert "--isolated" not in argv and "--index-url" not in argv  # machine config honoured
    assert argv[-2:] == ["--", "a>=1"]
