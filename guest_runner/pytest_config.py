"""The sdist's own pytest configuration, read as text: which paths are its tests.

Upstream CI runs ``pytest`` with no paths, so pytest takes the ``testpaths`` of the
project's configuration. The tests phase passes paths (its own guess: ``tests/``,
``test/``, the root), and pytest then ignores ``testpaths``: voluptuous, whose
``testpaths = "voluptuous/tests"`` beside ``--doctest-glob=*.md``, had its README
collected as a doctest from the root. So the configured paths come first.

The configuration file is found as pytest finds it in the root folder: the first of
``pytest.ini``, ``.pytest.ini`` (always theirs), ``pyproject.toml`` (with a
``[tool.pytest.ini_options]`` or ``[tool.pytest]`` table), ``tox.ini`` (with a
``[pytest]`` section) and ``setup.cfg`` (with ``[tool:pytest]``). Globs in
``testpaths`` are expanded as pytest does; paths that are not in the sdist (or lead
outside it) are dropped. Stdlib only: this module ships inside the runner.
"""

from __future__ import annotations

import configparser
import glob
import tomllib
from pathlib import Path

#: Files larger than this are not read.
MAX_CONFIG_BYTES = 1024 * 1024
#: At most this many paths are taken from ``testpaths``.
MAX_PATHS = 50


def configured_testpaths(root: Path) -> list[Path]:
    """The existing paths the project's pytest configuration names in ``testpaths``, in
    its order; [] when it names none or has no configuration here."""
    for name, section in (
        ("pytest.ini", "pytest"),
        (".pytest.ini", "pytest"),
        ("pyproject.toml", None),
        ("tox.ini", "pytest"),
        ("setup.cfg", "tool:pytest"),
    ):
        text = _read(root / name)
        if text is None:
            continue
        found = _from_toml(text) if section is None else _from_ini(text, section, name)
        if found is None:
            continue
        return _existing(root, found)
    return []


def _from_toml(text: str) -> list[str] | None:
    """``testpaths`` of ``[tool.pytest.ini_options]`` or ``[tool.pytest]``; None when
    neither table is there (the file is not pytest's configuration)."""
    try:
        tool = tomllib.loads(text).get("tool")
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):
        return None
    pytest = tool.get("pytest") if isinstance(tool, dict) else None
    if not isinstance(pytest, dict):
        return None
    options = pytest.get("ini_options")
    table = options if isinstance(options, dict) else pytest
    value = table.get("testpaths")
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _from_ini(text: str, section: str, name: str) -> list[str] | None:
    """``testpaths`` of the ``section``; None when the file has no such section (for
    ``pytest.ini``, which is pytest's whatever it holds: [])."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return [] if name.endswith("pytest.ini") else None
    if not parser.has_section(section):
        return [] if name.endswith("pytest.ini") else None
    return parser.get(section, "testpaths", fallback="").split()


def _existing(root: Path, patterns: list[str]) -> list[Path]:
    """The paths (globs expanded, relative to ``root``) that exist inside ``root``."""
    base = root.resolve()
    found: list[Path] = []
    for pattern in patterns[:MAX_PATHS]:
        if Path(pattern).is_absolute():
            continue
        for match in sorted(glob.glob(pattern, root_dir=root, recursive=True)):
            path = root / match
            try:
                inside = path.resolve().is_relative_to(base)
            except (OSError, RuntimeError):
                continue
            if inside and path.exists() and path not in found and len(found) < MAX_PATHS:
                found.append(path)
    return found


def _read(path: Path) -> str | None:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_CONFIG_BYTES:
            return None
        return path.read_text(errors="replace")
    except OSError:
        return None
