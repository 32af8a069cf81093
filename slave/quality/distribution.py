"""Distribution indicators: which files a release ships and what is inside them."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import Final

from slave.quality.contents import DistContents
from slave.quality.indicator import Indicator, Level, Value

# A single member this big is almost always a data blob shipped by mistake.
HUGE_MEMBER_BYTES: Final = 20 << 20
_VCS_DIRS: Final = frozenset({".git", ".hg", ".svn", ".bzr", "CVS", "_darcs"})
_NATIVE_SUFFIXES: Final = (".so", ".pyd", ".dylib", ".dll")
_TEST_DIRS: Final = frozenset({"tests", "test", "testing"})
_SHOWN: Final = 5


def _indicator(ident: str, value: Value, level: Level, reason: str) -> Indicator:
    return Indicator(f"distribution.{ident}", "distribution", value, level, reason)


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")


def distribution_indicators(
    dists: Sequence[DistContents], read_errors: Sequence[str] = ()
) -> list[Indicator]:
    """Every `distribution.*` indicator; `read_errors` are failures met reading members."""
    return [
        archives_readable(dists, read_errors),
        files_present(dists),
        wheel_kinds(dists),
        sdist_tests(dists),
        wheel_matches_sdist(dists),
        stray_files(dists),
    ]


def archives_readable(dists: Sequence[DistContents], read_errors: Sequence[str] = ()) -> Indicator:
    """Every file opened (and every member read) safely; else SafeArchive's reason.

    A listing can be sound while a member's data is not (bad CRC, a bomb inside a
    file with honest headers): `read_errors` carries what reading sources met.
    """
    errors = [d.error for d in dists if d.error is not None] + list(read_errors)
    if errors:
        return _indicator("archives_readable", errors, "fail", errors[0])
    return _indicator("archives_readable", [], "pass", f"{len(dists)} file(s) read safely as data")


def files_present(dists: Sequence[DistContents]) -> Indicator:
    """An sdist and at least one wheel."""
    kinds = {"sdist": 0, "wheel": 0, "other": 0}
    for d in dists:
        kinds[d.dist.kind] += 1
    value: dict[str, Value] = dict(kinds)
    if kinds["sdist"] and kinds["wheel"]:
        return _indicator("files", value, "pass", "sdist and wheel present")
    if kinds["wheel"]:
        return _indicator("files", value, "warn", "wheel only: no sdist to rebuild from")
    if kinds["sdist"]:
        return _indicator("files", value, "warn", "sdist only: every install builds it")
    return _indicator("files", value, "fail", "neither an sdist nor a wheel")


def wheel_kinds(dists: Sequence[DistContents]) -> Indicator:
    """Pure or platform wheels, and whether their tags are honest and uploadable."""
    wheels = [d for d in dists if d.dist.kind == "wheel"]
    pure = [d.dist.filename for d in wheels if d.dist.is_pure]
    platform = [d.dist.filename for d in wheels if not d.dist.is_pure]
    value: dict[str, Value] = {"pure": len(pure), "platform": len(platform)}
    if not wheels:
        return _indicator("wheel_kind", value, "warn", "no wheel")
    mistagged = [
        d.dist.filename
        for d in wheels
        if d.dist.is_pure and any(e.path.endswith(_NATIVE_SUFFIXES) for e in d.files())
    ]
    if mistagged:
        return _indicator(
            "wheel_kind", value, "fail", f"pure-tagged wheel ships native code: {mistagged[0]}"
        )
    bad_platform = [
        d.dist.filename
        for d in wheels
        if any(tag.startswith("linux_") for tag in d.dist.platform_tags)
    ]
    if bad_platform:
        return _indicator(
            "wheel_kind",
            value,
            "warn",
            f"plain linux_* tag (not manylinux/musllinux): {bad_platform[0]}",
        )
    if platform and not any(d.dist.kind == "sdist" for d in dists):
        return _indicator(
            "wheel_kind", value, "warn", "platform wheels only and no sdist for other platforms"
        )
    kind = "pure" if pure and not platform else "platform" if platform and not pure else "mixed"
    return _indicator("wheel_kind", value, "pass", f"{kind} wheel(s): {len(wheels)}")


def _is_test_path(path: str) -> bool:
    parts = path.split("/")
    name = parts[-1]
    return (
        any(p in _TEST_DIRS for p in parts[:-1])
        or name == "conftest.py"
        or (name.startswith("test_") and name.endswith(".py"))
        or name.endswith("_test.py")
    )


def sdist_tests(dists: Sequence[DistContents]) -> Indicator:
    """The sdist carries a test suite (what the tests phase runs)."""
    sdists = [d for d in dists if d.dist.kind == "sdist" and d.readable]
    if not sdists:
        return _indicator("sdist_tests", None, "warn", "no readable sdist")
    tests = [e.path for e in sdists[0].files() if e.path.endswith(".py") and _is_test_path(e.path)]
    if not tests:
        return _indicator("sdist_tests", 0, "warn", "sdist contains no test files")
    return _indicator(
        "sdist_tests", len(tests), "pass", f"sdist contains {len(tests)} test file(s)"
    )


def wheel_modules(wheel: DistContents) -> set[str]:
    """Python modules a wheel installs, as paths relative to site-packages."""
    modules: set[str] = set()
    for entry in wheel.files():
        path = entry.path
        top, _, rest = path.partition("/")
        if top.endswith(".dist-info"):
            continue
        if top.endswith(".data"):
            scheme, _, inner = rest.partition("/")
            if scheme not in ("purelib", "platlib"):
                continue
            path = inner
        if path.endswith(".py"):
            modules.add(path)
    return modules


def sdist_modules(sdist: DistContents, tops: set[str]) -> set[str]:
    """Python files of the sdist under the wheel's top-level names (`src/` layout too)."""
    modules: set[str] = set()
    for entry in sdist.files():
        path = entry.path
        if path.startswith("src/"):
            path = path[len("src/") :]
        if path.endswith(".py") and path.split("/", 1)[0] in tops:
            modules.add(path)
    return modules


def wheel_matches_sdist(dists: Sequence[DistContents]) -> Indicator:
    """Modules in a wheel but not in the sdist (fail), or in the sdist but no wheel (warn)."""
    sdists = [d for d in dists if d.dist.kind == "sdist" and d.readable]
    wheels = [d for d in dists if d.dist.kind == "wheel" and d.readable]
    if not sdists or not wheels:
        return _indicator(
            "wheel_matches_sdist", None, "warn", "needs a readable sdist and wheel to compare"
        )
    wheel_only: set[str] = set()
    sdist_only: set[str] = set()
    for wheel in wheels:
        in_wheel = wheel_modules(wheel)
        tops = {m.split("/", 1)[0] for m in in_wheel}
        in_sdist = sdist_modules(sdists[0], tops)
        wheel_only |= in_wheel - in_sdist
        sdist_only |= in_sdist - in_wheel - {p for p in in_sdist if _is_test_path(p)}
    value: dict[str, Value] = {
        "wheel_only": sorted(wheel_only)[:20],
        "sdist_only": sorted(sdist_only)[:20],
    }
    if wheel_only:
        return _indicator(
            "wheel_matches_sdist",
            value,
            "fail",
            f"in the wheel but not the sdist: {_listing(sorted(wheel_only))}",
        )
    if sdist_only:
        return _indicator(
            "wheel_matches_sdist",
            value,
            "warn",
            f"in the sdist but not the wheel: {_listing(sorted(sdist_only))}",
        )
    return _indicator(
        "wheel_matches_sdist", value, "pass", "wheel modules match the sdist's package files"
    )


def _is_binary(path: str) -> bool:
    """Native libraries and installed executables are big by nature, not blobs."""
    name = posixpath.basename(path)
    parts = path.split("/")
    return (
        name.endswith(_NATIVE_SUFFIXES)
        or ".so." in name
        or (len(parts) > 2 and parts[0].endswith(".data") and parts[1] == "scripts")
        or parts[0].endswith(".libs")
    )


def stray_files(dists: Sequence[DistContents]) -> Indicator:
    """No VCS directories (fail), bytecode or data blobs over `HUGE_MEMBER_BYTES` (warn)."""
    readable = [d for d in dists if d.readable and d.dist.kind != "other"]
    if not readable:
        return _indicator("stray_files", None, "warn", "no readable distribution to check")
    vcs: list[str] = []
    bytecode: list[str] = []
    huge: list[str] = []
    for dist in readable:
        for entry in dist.entries:
            parts = entry.path.split("/")
            where = f"{dist.dist.filename}:{entry.path}"
            if any(p in _VCS_DIRS for p in parts):
                vcs.append(where)
            elif "__pycache__" in parts or posixpath.splitext(entry.path)[1] in (".pyc", ".pyo"):
                bytecode.append(where)
            elif not entry.is_dir and entry.size > HUGE_MEMBER_BYTES and not _is_binary(entry.path):
                huge.append(f"{where} ({entry.size >> 20} MiB)")
    value: dict[str, Value] = {"vcs": len(vcs), "bytecode": len(bytecode), "huge": len(huge)}
    if vcs:
        return _indicator("stray_files", value, "fail", f"VCS metadata shipped: {_listing(vcs)}")
    if bytecode or huge:
        found = bytecode + huge
        return _indicator("stray_files", value, "warn", f"stray files: {_listing(found)}")
    return _indicator("stray_files", value, "pass", "no bytecode, VCS directories or huge blobs")
