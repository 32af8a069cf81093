"""The pytest the project's lock file says its tests ran with (``uv.lock``, ``poetry.lock``).

A test requirement that names pytest or a pytest plugin without pinning it gets the
newest release, which may be newer than anything the release's tests ever ran
under: Flask 3.1.3's conftest uses ``_pytest.monkeypatch.notset``, which later pytest
releases no longer have, and every one of its 432 tests errored in its set-up. A
lock file the sdist ships records the versions upstream's CI installed; for pytest
and its plugins (``pytest-*``), whose internals test suites reach into, the locked
version is taken when it satisfies what the project declared. Everything else keeps
the newest release: the runtime dependencies are what users install today.

Read statically (TOML), for the guest's marker environment: ``uv.lock`` packages
carry ``resolution-markers`` (one entry per Python range); ``poetry.lock`` is used
only where it locks a single version of the name.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from slave.prepare.metadata import LOCK_FILES


def is_tooling(name: str) -> bool:
    """pytest or a pytest plugin (canonical name)."""
    return name == "pytest" or name.startswith("pytest-")


def locked_versions(
    files: Mapping[str, bytes], environment: Mapping[str, str]
) -> tuple[str, dict[str, str]] | None:
    """(lock file, canonical name → locked version) of pytest and its plugins, for the
    guest; None without a readable lock file."""
    for name in LOCK_FILES:
        data = files.get(name)
        if data is None:
            continue
        try:
            document = tomllib.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        packages = document.get("package")
        if isinstance(packages, list):
            return name, _versions(packages, environment)
    return None


def _versions(packages: list[object], environment: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, list[str]] = {}
    for entry in packages:
        if not isinstance(entry, dict):
            continue
        name, version = entry.get("name"), entry.get("version")
        if not isinstance(name, str) or not isinstance(version, str):
            continue
        key = canonicalize_name(name)
        if is_tooling(key) and _applies(entry.get("resolution-markers"), environment):
            found.setdefault(key, []).append(version)
    return {name: versions[0] for name, versions in found.items() if len(set(versions)) == 1}


def _applies(markers: object, environment: Mapping[str, str]) -> bool:
    """uv's ``resolution-markers``: the entry is for the guest if any of them holds (none
    given: for every environment)."""
    if not isinstance(markers, list) or not markers:
        return True
    for text in markers:
        try:
            if isinstance(text, str) and Marker(text).evaluate(dict(environment)):
                return True
        except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
            continue
    return False


def pin_to_lock(requirements: list[str], locked: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """``requirements`` with pytest and its plugins pinned to ``locked`` where the project
    left them unpinned and the locked version satisfies it; and the names pinned."""
    out: list[str] = []
    pinned: list[str] = []
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            out.append(text)
            continue
        key = canonicalize_name(req.name)
        version = locked.get(key)
        exact = any(s.operator in ("==", "===") for s in req.specifier)
        if version is None or exact or not is_tooling(key) or not _satisfies(req, version):
            out.append(text)
            continue
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        out.append(f"{req.name}{extras}=={version}")
        pinned.append(key)
    return out, pinned


def _satisfies(req: Requirement, version: str) -> bool:
    try:
        return req.specifier.contains(Version(version), prereleases=True)
    except (InvalidVersion, InvalidSpecifier):
        return False
