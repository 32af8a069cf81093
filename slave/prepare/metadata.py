"""Static metadata of release files, read as data through `SafeArchive` (never executed).

Dependencies come from, in order: a wheel's ``METADATA``; an sdist's ``PKG-INFO``
when its Metadata-Version is 2.2+ and ``Requires-Dist`` is not ``Dynamic`` (PEP
643); an sdist's ``pyproject.toml`` ``[project] dependencies`` when not dynamic
(PEP 621). Anything else (a ``setup.py`` computing them) can only be known by
running the build backend, which happens in the guest, never here.

Everything here is synchronous and CPU-bound: coroutines call it via ``to_thread``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.parser import Parser
from email.policy import compat32
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from slave.archive import ArchiveError, SafeArchive
from slave.prepare.errors import DependencyUnavailable, MetadataError
from slave.prepare.models import MetadataSource

#: what pip assumes for an sdist without ``[build-system]`` (PEP 518)
DEFAULT_BUILD_REQUIRES = ("setuptools>=40.8.0", "wheel")
TEST_EXTRAS = ("test", "tests", "testing")
# Long descriptions live in METADATA; a few MiB is generous, more is hostile.
_MAX_METADATA_BYTES = 8 << 20
_MAX_PYPROJECT_BYTES = 1 << 20
#: extra small files `read_sdist_metadata` reads on request (test requirement files)
MAX_EXTRA_FILES = 64
MAX_EXTRA_FILE_BYTES = 256 << 10
#: Test modules read for their imports (``tests``), apart from the files above.
MAX_TEST_MODULES = 48
#: The release's own modules whose imports are read (`SdistContents.module_imports`).
MAX_OWN_MODULES = 3000


@dataclass(frozen=True, slots=True)
class CoreMetadata:
    """The fields of a METADATA/PKG-INFO file that preparation needs."""

    name: str
    version: str
    metadata_version: tuple[int, ...]
    requires_dist: list[str]
    requires_python: str | None
    dynamic: frozenset[str]


@dataclass(frozen=True, slots=True)
class StaticMetadata:
    """What the release files say about themselves without running anything.

    ``requires_dist`` is ``None`` when no file states its dependencies statically.
    """

    name: str | None
    version: str | None
    requires_dist: list[str] | None
    requires_python: str | None
    source: MetadataSource | None
    build_requires: list[str] = field(default_factory=list)


def parse_core_metadata(text: str, filename: str) -> CoreMetadata:
    """Parse core metadata text (RFC 822 headers); `MetadataError` if Name/Version lack."""
    msg = Parser(policy=compat32).parsestr(text, headersonly=True)
    name, version = msg.get("Name"), msg.get("Version")
    if not name or not version:
        raise MetadataError(filename, "metadata without Name or Version")
    try:
        metadata_version = tuple(int(p) for p in str(msg.get("Metadata-Version", "1.0")).split("."))
    except ValueError:
        raise MetadataError(filename, "unparsable Metadata-Version") from None
    requires_dist = [str(r).strip() for r in msg.get_all("Requires-Dist") or []]
    for req in requires_dist:
        _parse_requirement(req, filename)
    return CoreMetadata(
        name=str(name).strip(),
        version=str(version).strip(),
        metadata_version=metadata_version,
        requires_dist=requires_dist,
        requires_python=_optional(msg.get("Requires-Python")),
        dynamic=frozenset(str(d).strip().lower() for d in msg.get_all("Dynamic") or []),
    )


def _optional(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _parse_requirement(text: str, filename: str) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        raise MetadataError(filename, f"invalid requirement {text!r}: {exc}") from None


def read_wheel_metadata(path: Path) -> CoreMetadata:
    """The METADATA of wheel ``path`` (its single top-level ``.dist-info`` directory)."""
    try:
        with SafeArchive.open(path) as archive:
            candidates = [
                m.name
                for m in archive.members()
                if m.is_file and m.name.count("/") == 1 and m.name.endswith(".dist-info/METADATA")
            ]
            if len(candidates) != 1:
                raise MetadataError(path.name, f"{len(candidates)} .dist-info/METADATA files")
            data = archive.read(candidates[0], max_bytes=_MAX_METADATA_BYTES)
    except ArchiveError as exc:
        raise MetadataError(path.name, str(exc)) from exc
    return parse_core_metadata(data.decode("utf-8", errors="replace"), path.name)


@dataclass(frozen=True, slots=True)
class SdistContents:
    """PKG-INFO and pyproject.toml of an sdist, each ``None`` when absent or unusable.

    ``files`` holds the extra members a caller asked for (``also``), by path relative
    to the sdist's root, and always ``setup.py``/``setup.cfg`` when present; a member
    too big to be what it claims is left out. ``modules``: the names the release's own
    code could be imported as (top-level and second-level directories and ``.py``
    files: ``pkg/``, ``src/pkg/``, ``helper.py``).
    """

    pkg_info: CoreMetadata | None
    pyproject: dict[str, Any] | None
    pyproject_error: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    modules: frozenset[str] = frozenset()
    #: test modules ``tests(relative_path)`` selected (at most `MAX_TEST_MODULES`)
    test_modules: dict[str, bytes] = field(default_factory=dict)
    #: every other ``.py`` member (at most `MAX_OWN_MODULES`) → the top-level names it
    #: imports, read as text: what a module of the release the tests import needs
    module_imports: dict[str, frozenset[str]] = field(default_factory=dict)


def read_sdist_metadata(
    path: Path,
    also: Callable[[str], bool] | None = None,
    tests: Callable[[str], bool] | None = None,
) -> SdistContents:
    """``{root}/PKG-INFO`` and ``{root}/pyproject.toml`` of sdist ``path``, plus the
    small files ``also(relative_path)`` selects (at most `MAX_EXTRA_FILES`) and the test
    modules ``tests(relative_path)`` selects (at most `MAX_TEST_MODULES`, counted apart
    so a big suite never crowds out the requirement files).

    The archive is opened once and members are read in archive order, so a big
    compressed sdist is decompressed about once. A malformed pyproject.toml is not an
    error here: the guest's build will fail on it, which is the package's outcome to
    report, not ours.
    """
    wanted = also or (lambda _name: False)
    is_test = tests or (lambda _name: False)
    test_modules: dict[str, bytes] = {}
    module_imports: dict[str, frozenset[str]] = {}
    try:
        with SafeArchive.open(path) as archive:
            members = archive.members()
            roots = {m.name.split("/", 1)[0] for m in members}
            if len(roots) != 1:
                raise MetadataError(path.name, f"{len(roots)} top-level directories")
            (root,) = roots
            prefix = root + "/"
            pkg_info_bytes: bytes | None = None
            pyproject_bytes: bytes | None = None
            files: dict[str, bytes] = {}
            modules = _own_modules(m.name[len(prefix) :] for m in members)
            for member in members:
                if not member.is_file or not member.name.startswith(prefix):
                    continue
                relative = member.name[len(prefix) :]
                if relative in _BUILD_SCRIPTS and member.size <= MAX_EXTRA_FILE_BYTES:
                    files[relative] = archive.read(member.name, MAX_EXTRA_FILE_BYTES)
                elif relative in LOCK_FILES and member.size <= MAX_LOCK_BYTES:
                    files[relative] = archive.read(member.name, MAX_LOCK_BYTES)
                elif relative == "PKG-INFO":
                    pkg_info_bytes = archive.read(member.name, max_bytes=_MAX_METADATA_BYTES)
                elif relative == "pyproject.toml":
                    pyproject_bytes = archive.read(member.name, max_bytes=_MAX_PYPROJECT_BYTES)
                elif (
                    len(files) < MAX_EXTRA_FILES
                    and member.size <= MAX_EXTRA_FILE_BYTES
                    and wanted(relative)
                ):
                    files[relative] = archive.read(member.name, MAX_EXTRA_FILE_BYTES)
                elif (
                    len(test_modules) < MAX_TEST_MODULES
                    and member.size <= MAX_EXTRA_FILE_BYTES
                    and is_test(relative)
                ):
                    test_modules[relative] = archive.read(member.name, MAX_EXTRA_FILE_BYTES)
                elif (
                    relative.endswith(".py")
                    and len(module_imports) < MAX_OWN_MODULES
                    and member.size <= MAX_EXTRA_FILE_BYTES
                    and not is_test(relative)
                ):
                    text = archive.read(member.name, MAX_EXTRA_FILE_BYTES)
                    module_imports[relative] = frozenset(imported_names(text))
    except ArchiveError as exc:
        raise MetadataError(path.name, str(exc)) from exc
    pkg_info = (
        parse_core_metadata(pkg_info_bytes.decode("utf-8", errors="replace"), path.name)
        if pkg_info_bytes is not None
        else None
    )
    if pyproject_bytes is None:
        return SdistContents(pkg_info, None, None, files, modules, test_modules, module_imports)
    try:
        pyproject = tomllib.loads(pyproject_bytes.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        error = f"pyproject.toml: {exc}"
        return SdistContents(pkg_info, None, error, files, modules, test_modules, module_imports)
    return SdistContents(
        pkg_info,
        pyproject,
        files=files,
        modules=modules,
        test_modules=test_modules,
        module_imports=module_imports,
    )


#: ``import x`` / ``from x import y`` at any indentation (inside ``try:`` too), read as text
_IMPORT_LINE = re.compile(r"^[ \t]*(?:import|from)[ \t]+([A-Za-z_]\w*)", re.MULTILINE)


def imported_names(source: bytes) -> list[str]:
    """The top-level names a module's source imports, in the order its lines name them
    (text only: nothing is compiled). The test-dependency reader reads test modules with
    it too (`slave.prepare.testdeps.test_imports`)."""
    return _IMPORT_LINE.findall(source.decode("utf-8", errors="replace"))


_BUILD_SCRIPTS = frozenset({"setup.py", "setup.cfg"})
#: Lock files at the root, read for the versions upstream's tests ran with
#: (``slave.prepare.testdeps.locks``); they are big (hashes of every wheel).
LOCK_FILES = ("uv.lock", "poetry.lock")
MAX_LOCK_BYTES = 8 << 20


def _own_modules(paths: Iterable[str]) -> frozenset[str]:
    """Importable names of the release's own top- and second-level entries."""
    names: set[str] = set()
    for path in paths:
        parts = [p for p in path.split("/") if p]
        for depth, part in enumerate(parts[:2]):
            is_dir = depth < len(parts) - 1
            if is_dir:
                names.add(part)
            elif part.endswith((".py", ".pyx")) or ".cpython-" in part or part.endswith(".so"):
                names.add(part.split(".", 1)[0])
    return frozenset(n for n in names if n.isidentifier())


def build_requirements(sdist: SdistContents) -> list[str]:
    """``[build-system] requires``, or pip's default when the table is absent (PEP 518)."""
    build_system = (sdist.pyproject or {}).get("build-system")
    if not isinstance(build_system, dict) or "requires" not in build_system:
        return list(DEFAULT_BUILD_REQUIRES)
    requires = build_system["requires"]
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise MetadataError("pyproject.toml", "[build-system] requires is not a list of strings")
    for req in requires:
        _parse_requirement(req, "pyproject.toml")
    return list(requires)


def static_metadata(wheel: CoreMetadata | None, sdist: SdistContents | None) -> StaticMetadata:
    """Pick the first static source of dependencies, in the documented order."""
    build = build_requirements(sdist) if sdist is not None else []
    if wheel is not None:
        return StaticMetadata(
            wheel.name, wheel.version, wheel.requires_dist, wheel.requires_python, "wheel", build
        )
    if sdist is None:
        return StaticMetadata(None, None, None, None, None, build)
    info = sdist.pkg_info
    name = info.name if info else None
    version = info.version if info else None
    requires_python = info.requires_python if info else None
    if info is not None and info.metadata_version >= (2, 2) and "requires-dist" not in info.dynamic:
        return StaticMetadata(name, version, info.requires_dist, requires_python, "pkg-info", build)
    project = (sdist.pyproject or {}).get("project")
    if isinstance(project, dict):
        dynamic = project.get("dynamic", [])
        if isinstance(dynamic, list) and "dependencies" not in dynamic:
            deps = project.get("dependencies", [])
            if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
                raise MetadataError("pyproject.toml", "[project] dependencies is not a list")
            for dep in deps:
                _parse_requirement(dep, "pyproject.toml")
            rp = project.get("requires-python")
            return StaticMetadata(
                name or _optional(project.get("name")),
                version or _optional(project.get("version")),
                list(deps),
                requires_python or (rp if isinstance(rp, str) else None),
                "pyproject",
                build,
            )
    return StaticMetadata(name, version, None, requires_python, None, build)


def for_guest(requirements: list[str], environment: dict[str, str], extra: str = "") -> list[str]:
    """The requirements whose markers hold in the guest (for ``extra``), as written."""
    selected = []
    for text in requirements:
        req = _parse_requirement(text, "requirements")
        marker: Marker | None = req.marker
        if marker is None or marker.evaluate({**environment, "extra": extra}):
            selected.append(text)
    return selected


def extra_only(requirements: list[str], environment: dict[str, str], extra: str) -> list[str]:
    """Requirements that apply with ``extra`` requested but not without it."""
    base = set(for_guest(requirements, environment))
    return [r for r in for_guest(requirements, environment, extra) if r not in base]


def requirements_for(
    requires_dist: list[str], environment: dict[str, str], project: str, extras: Sequence[str]
) -> list[str]:
    """What ``project[extras]`` needs in the guest (``""`` = no extra), without itself.

    A self-reference such as ``project[fast]`` in an extra is followed (its extras are
    added) rather than listed: the release's own files are not fetched by pip.
    """
    own = canonicalize_name(project)
    wanted, seen, selected = list(extras), set[str](), list[str]()
    while wanted:
        extra = wanted.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        applicable = (
            for_guest(requires_dist, environment)
            if extra == ""
            else extra_only(requires_dist, environment, extra)
        )
        for text in applicable:
            req = _parse_requirement(text, "requirements")
            if canonicalize_name(req.name) == own:
                wanted.extend(sorted(req.extras))
            elif text not in selected:
                selected.append(text)
    return selected


def pip_argument(text: str) -> str:
    """``text`` without its marker (already evaluated for the guest), for pip's argv.

    Direct references (``name @ url``) are refused: they would make the host fetch
    from wherever the package says.
    """
    req = _parse_requirement(text, "requirements")
    if req.url is not None:
        raise DependencyUnavailable([text], "direct URL references are not fetched")
    req.marker = None
    return str(req)
