"""Distribution and code indicators, and hostile archives (slave.quality.static)."""

from __future__ import annotations

import io
import random
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from slave.quality import Indicator, static_indicators
from tests.fakes.dists import build_sdist, build_wheel, make_project


def indicator(indicators: Sequence[Indicator], ident: str) -> Indicator:
    """The one indicator called `ident`."""
    found = [i for i in indicators if i.id == ident]
    assert len(found) == 1, [i.id for i in indicators]
    return found[0]


def level(files: Sequence[Path], ident: str) -> str:
    """The level of indicator `ident` for `files`."""
    return indicator(static_indicators(list(files)), ident).level


def test_files_present(tmp_path: Path) -> None:
    """sdist + wheel passes; only one of them warns; none fails."""
    both = make_project(tmp_path / "both", "demo", "1.0")
    assert level(both.files, "distribution.files") == "pass"
    only_sdist = make_project(tmp_path / "s", "demo", "1.0", wheel=False)
    assert level(only_sdist.files, "distribution.files") == "warn"
    only_wheel = make_project(tmp_path / "w", "demo", "1.0", sdist=False)
    assert level(only_wheel.files, "distribution.files") == "warn"
    assert level([], "distribution.files") == "fail"


def test_wheel_kind(tmp_path: Path) -> None:
    """Pure and manylinux wheels pass; native code in a pure wheel fails; linux_* warns."""
    files = {"demo/__init__.py": ""}
    pure = build_wheel(tmp_path / "a", "demo", "1.0", files)
    assert level([pure], "distribution.wheel_kind") == "pass"
    sdist = build_sdist(tmp_path / "b", "demo", "1.0", files)
    many = build_wheel(
        tmp_path / "b", "demo", "1.0", files, tag="cp311-cp311-manylinux_2_17_x86_64"
    )
    assert level([sdist, many], "distribution.wheel_kind") == "pass"
    assert level([many], "distribution.wheel_kind") == "warn"  # platform-only, no sdist
    native = build_wheel(tmp_path / "c", "demo", "1.0", {**files, "demo/_x.so": b"\x7fELF"})
    found = indicator(static_indicators([native]), "distribution.wheel_kind")
    assert found.level == "fail"
    assert "native code" in found.reason
    linux = build_wheel(tmp_path / "d", "demo", "1.0", files, tag="cp311-cp311-linux_x86_64")
    assert level([sdist, linux], "distribution.wheel_kind") == "warn"


def test_sdist_tests(tmp_path: Path) -> None:
    """An sdist with tests/ passes; without any test file it warns."""
    proj = make_project(tmp_path / "a", "demo", "1.0")
    assert level(proj.files, "distribution.sdist_tests") == "pass"
    bare = build_sdist(tmp_path / "b", "demo", "1.0", {"demo/__init__.py": ""})
    assert level([bare], "distribution.sdist_tests") == "warn"


def test_wheel_matches_sdist(tmp_path: Path) -> None:
    """Same modules pass; a wheel-only module fails; an sdist-only package module warns."""
    proj = make_project(tmp_path / "a", "demo", "1.0", extra_files={"demo/util.py": ""})
    assert level(proj.files, "distribution.wheel_matches_sdist") == "pass"

    sdist = build_sdist(tmp_path / "b", "demo", "1.0", {"src/demo/__init__.py": ""})
    extra = build_wheel(tmp_path / "b", "demo", "1.0", {"demo/__init__.py": "", "demo/x.py": ""})
    found = indicator(static_indicators([sdist, extra]), "distribution.wheel_matches_sdist")
    assert found.level == "fail"
    assert found.value == {"wheel_only": ["demo/x.py"], "sdist_only": []}

    sdist = build_sdist(tmp_path / "c", "demo", "1.0", {"demo/__init__.py": "", "demo/y.py": ""})
    lean = build_wheel(tmp_path / "c", "demo", "1.0", {"demo/__init__.py": ""})
    assert level([sdist, lean], "distribution.wheel_matches_sdist") == "warn"


# Random, so it is big compressed too: zeros would be refused as a bomb.
BIG = random.Random(0).randbytes(21 << 20)


@pytest.mark.parametrize(
    ("path", "content", "expected"),
    [
        ("demo/__pycache__/x.cpython-311.pyc", b"\0", "warn"),
        ("demo/.git/config", b"[core]", "fail"),
        ("data/blob.bin", BIG, "warn"),
        ("demo/data.txt", b"fine", "pass"),
    ],
)
def test_stray_files(tmp_path: Path, path: str, content: bytes, expected: str) -> None:
    """Bytecode and huge blobs warn; VCS directories fail; ordinary files pass."""
    sdist = build_sdist(tmp_path, "demo", "1.0", {"demo/__init__.py": "", path: content})
    assert level([sdist], "distribution.stray_files") == expected


def test_big_native_libraries_are_not_stray(tmp_path: Path) -> None:
    """A huge extension module or vendored .libs library in a wheel is not a blob."""
    files: dict[str, str | bytes] = {
        "demo/__init__.py": "",
        "demo/_core.cpython-311-x86_64-linux-gnu.so": BIG,
        "demo.libs/libblas-1a2b.so.3": b"\x7fELF",
    }
    whl = build_wheel(tmp_path, "demo", "1.0", files, tag="cp311-cp311-manylinux_2_17_x86_64")
    assert level([whl], "distribution.stray_files") == "pass"


def test_py_typed(tmp_path: Path) -> None:
    """A py.typed marker in the package passes; its absence warns."""
    typed = build_wheel(
        tmp_path / "a", "demo", "1.0", {"demo/__init__.py": "", "demo/py.typed": ""}
    )
    assert level([typed], "code.py_typed") == "pass"
    untyped = build_wheel(tmp_path / "b", "demo", "1.0", {"demo/__init__.py": ""})
    assert level([untyped], "code.py_typed") == "warn"


TYPED = """\
def public(a: int, *args: str, b: int = 1, **kw: object) -> int:
    return a


def _private(a):
    return a


class Thing:
    def method(self, x: int) -> None:
        def inner(y):
            return y

    @staticmethod
    def make(x: int) -> "Thing":
        return Thing()

    def _hidden(self, z):
        pass
"""
UNTYPED = "def f(a):\n    return a\n\n\nasync def g(b, c: int) -> None:\n    pass\n"


@pytest.mark.parametrize(
    ("body", "expected", "share"),
    [(TYPED, "pass", 1.0), (TYPED + UNTYPED, "warn", 0.6), (UNTYPED, "fail", 0.0)],
)
def test_annotations(tmp_path: Path, body: str, expected: str, share: float) -> None:
    """The share of fully annotated public functions and methods sets the level."""
    whl = build_wheel(tmp_path, "demo", "1.0", {"demo/__init__.py": body})
    found = indicator(static_indicators([whl]), "code.annotations")
    assert found.level == expected, found.reason
    assert isinstance(found.value, dict)
    assert found.value["share"] == share


def test_annotations_prefer_stub_files(tmp_path: Path) -> None:
    """When x.pyi sits next to x.py, the stub's annotations are the ones measured."""
    stub = "def f(a: int) -> int: ...\n"
    files = {"demo/__init__.py": UNTYPED, "demo/__init__.pyi": stub}
    whl = build_wheel(tmp_path, "demo", "1.0", files)
    found = indicator(static_indicators([whl]), "code.annotations")
    assert found.level == "pass"
    assert isinstance(found.value, dict)
    assert (found.value["public"], found.value["files"]) == (1, 1)


def test_annotations_count_unparsable_files_without_raising(tmp_path: Path) -> None:
    """Syntax errors and NUL bytes are counted; parsable files are still measured."""
    files: dict[str, str | bytes] = {
        "demo/__init__.py": TYPED,
        "demo/broken.py": "def f(:\n",
        "demo/nul.py": b"x = 1\0\n",
        "demo/deep.py": "x = " + "(" * 5000 + ")" * 5000 + "\n",
    }
    whl = build_wheel(tmp_path, "demo", "1.0", files)
    found = indicator(static_indicators([whl]), "code.annotations")
    assert isinstance(found.value, dict)
    assert found.value["unparsable"] == 3
    assert found.value["files"] == 1
    assert "not parsable" in found.reason


def test_annotations_use_sdist_package_sources_without_wheel(tmp_path: Path) -> None:
    """Without a wheel, the sdist's package files (not its tests) are measured."""
    files = {"src/demo/__init__.py": UNTYPED, "tests/test_x.py": TYPED, "setup.py": TYPED}
    sdist = build_sdist(tmp_path, "demo", "1.0", files)
    found = indicator(static_indicators([sdist]), "code.annotations")
    assert isinstance(found.value, dict)
    assert (found.value["public"], found.value["annotated"]) == (2, 0)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar_with_symlink(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("demo-1.0/PKG-INFO")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../../etc/passwd"
        tar.addfile(info)
        data = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
        info = tarfile.TarInfo("demo-1.0/setup.cfg")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def _hostile(kind: str, tmp_path: Path) -> Path:
    match kind:
        case "traversal":
            return _zip(tmp_path / "demo-1.0-py3-none-any.whl", {"../../evil.py": b"x"})
        case "zip_bomb":
            return _zip(tmp_path / "demo-1.0-py3-none-any.whl", {"demo/bomb": b"\0" * (8 << 20)})
        case "corrupt":
            good = make_project(tmp_path / "src", "demo", "1.0", sdist=False).wheel
            assert good is not None
            target = tmp_path / good.name
            target.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
            return target
        case "garbage_tar":
            target = tmp_path / "demo-1.0.tar.gz"
            target.write_bytes(b"\x1f\x8b" + b"not gzip at all" * 100)
            return target
        case "symlink_out":
            return _tar_with_symlink(tmp_path / "demo-1.0.tar.gz")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["traversal", "zip_bomb", "corrupt", "garbage_tar", "symlink_out"])
def test_hostile_archive_gives_fail_indicator_not_exception(tmp_path: Path, kind: str) -> None:
    """A hostile or corrupt file fails archives_readable with SafeArchive's reason."""
    hostile = _hostile(kind, tmp_path)
    indicators = static_indicators([hostile])
    found = indicator(indicators, "distribution.archives_readable")
    assert found.level == "fail"
    assert hostile.name in found.reason
    # Nothing could be read from it, so metadata fails too; the rest still reports.
    assert indicator(indicators, "metadata.required_fields").level == "fail"
    assert indicator(indicators, "code.annotations").level == "warn"


def test_corrupt_member_data_fails_archives_readable(tmp_path: Path) -> None:
    """A sound listing with a module whose compressed bytes are damaged still fails."""
    body = "def f(x: int) -> int:\n    return x\n" * 50
    whl = build_wheel(tmp_path, "demo", "1.0", {"demo/__init__.py": body})
    with zipfile.ZipFile(whl) as zf:
        info = zf.getinfo("demo/__init__.py")
    blob = bytearray(whl.read_bytes())
    data_start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    blob[data_start + info.compress_size // 2] ^= 0xFF
    whl.write_bytes(bytes(blob))
    indicators = static_indicators([whl])
    found = indicator(indicators, "distribution.archives_readable")
    assert found.level == "fail"
    assert "corrupt" in found.reason
    assert indicator(indicators, "code.annotations").level == "fail"
    # The listing and METADATA were fine, so metadata is still judged.
    assert indicator(indicators, "metadata.required_fields").level == "pass"


def test_hostile_file_does_not_hide_the_good_one(tmp_path: Path) -> None:
    """Next to a hostile wheel, the good sdist's metadata and tests are still judged."""
    good = make_project(tmp_path, "demo", "1.0", wheel=False).sdist
    assert good is not None
    bomb = _hostile("zip_bomb", tmp_path)
    indicators = static_indicators([good, bomb])
    assert indicator(indicators, "distribution.archives_readable").level == "fail"
    assert indicator(indicators, "metadata.required_fields").level == "pass"
    assert indicator(indicators, "distribution.sdist_tests").level == "pass"


def test_unavailable_dependencies(tmp_path: Path) -> None:
    """Known-unavailable dependency wheels fail; none pass; unknown leaves the indicator out."""
    proj = make_project(tmp_path, "demo", "1.0")
    ident = "install.dependencies_unavailable"
    assert level_with(proj.files, ident, []) == "pass"
    assert level_with(proj.files, ident, ["numpy==1.0"]) == "fail"
    assert ident not in {i.id for i in static_indicators(proj.files)}


def level_with(files: Sequence[Path], ident: str, unavailable: list[str]) -> str:
    """The level of `ident` when the caller passes `unavailable`."""
    return indicator(static_indicators(list(files), unavailable=unavailable), ident).level
