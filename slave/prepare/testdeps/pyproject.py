"""Readers of pyproject tables: typed access, PEP 735 groups, poetry's version syntax."""

from __future__ import annotations

import re
from typing import Any

from packaging.utils import canonicalize_name


def strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def table(value: object, *keys: str) -> dict[str, Any]:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else {}


def dependency_group(groups: dict[str, Any], name: str, stack: tuple[str, ...] = ()) -> list[str]:
    """PEP 735 group ``name`` with its includes expanded; a cycle is cut, not followed."""
    key = canonicalize_name(name)
    if key in stack or len(stack) > 16:
        return []
    entries = next(
        (v for k, v in groups.items() if canonicalize_name(k) == key and isinstance(v, list)), []
    )
    found: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            found.append(entry)
        elif isinstance(entry, dict) and isinstance(entry.get("include-group"), str):
            found.extend(dependency_group(groups, entry["include-group"], (*stack, key)))
    return found


def poetry_requirement(name: str, spec: object) -> str | None:
    """A PEP 508 string for a poetry dependency entry; ``None`` for paths, URLs, git."""
    if canonicalize_name(name) == "python":
        return None
    version: object = spec
    if isinstance(spec, dict):
        if any(k in spec for k in ("path", "git", "url", "file")):
            return None
        version = spec.get("version", "*")
    if not isinstance(version, str):
        return name
    return name + _poetry_specifier(version)


def _poetry_specifier(version: str) -> str:
    version = version.strip()
    caret = re.fullmatch(r"\^(\d+(?:\.\d+){0,2})", version)
    tilde = re.fullmatch(r"~(\d+)(?:\.(\d+))?(?:\.\d+)?", version)
    if version in ("", "*"):
        return ""
    if caret:
        parts = [int(p) for p in caret.group(1).split(".")]
        first = next((i for i, p in enumerate(parts) if p), len(parts) - 1)
        upper = [*parts[:first], parts[first] + 1]
        return f">={caret.group(1)},<{'.'.join(map(str, upper))}"
    if tilde:
        major, minor = int(tilde.group(1)), tilde.group(2)
        bound = f"{major}.{int(minor) + 1}" if minor is not None else f"{major + 1}"
        return f">={version[1:]},<{bound}"
    if re.fullmatch(r"\d+(\.\d+)*", version):
        return f"=={version}"
    return version if re.match(r"^[<>=!~]", version) else ""
