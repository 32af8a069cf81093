"""Image recipes: ``images/<name>.toml``, parsed and validated, and their hash.

The recipe hash covers everything that ends up in the disk image: the recipe
itself, the guest-side files in ``images/guest/``, the guest runner's sources
(the ``guest_runner`` package) and :data:`BUILD_FORMAT`, bumped
whenever the build code changes what it produces. An image whose manifest carries
another hash is stale and is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from guest_runner.bundle import PACKAGE_DIR as RUNNER_DIR
from guest_runner.bundle import source_digests
from slave.images.errors import RecipeError

#: Bump when the build code changes what an image contains.
BUILD_FORMAT = 2

#: The repository's ``images/`` directory (recipes, guest files).
RECIPES_DIR = Path(__file__).resolve().parents[2] / "images"
GUEST_FILES_DIR = RECIPES_DIR / "guest"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_PYVER_RE = re.compile(r"^3\.\d{1,2}$")
_PKG_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]*$")
# Requirement names only (no URLs, no options): they are given to pip on the host.
_REQ_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*([<>=!~]=?[A-Za-z0-9.*+!-]+)?$")


@dataclass(frozen=True, slots=True)
class VMSpec:
    """The guest's hardware as the recipe asks for it."""

    memory_mb: int = 512
    cpus: int = 1
    disk_gib: int = 4
    tester_max_procs: int = 512


@dataclass(frozen=True, slots=True)
class Recipe:
    """A validated image recipe."""

    name: str
    suite: str
    python_version: str
    packages: tuple[str, ...]
    wheels: tuple[str, ...]
    venv_tools: tuple[str, ...]
    vm: VMSpec

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form (lists for tuples), stable for hashing."""
        d = asdict(self)
        return json.loads(json.dumps(d))  # type: ignore[no-any-return]


def _str_list(raw: object, what: str, pattern: re.Pattern[str], name: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise RecipeError(name, f"{what} must be a list of strings")
    for item in raw:
        if not pattern.match(item):
            raise RecipeError(name, f"{what}: invalid entry {item!r}")
    return tuple(raw)


def _int(table: dict[str, Any], key: str, default: int, lo: int, hi: int, name: str) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise RecipeError(name, f"vm.{key} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def parse_recipe(data: dict[str, Any], name: str) -> Recipe:
    """Validate a parsed TOML document; raise :class:`RecipeError` naming the bad field."""
    known = {"name", "suite", "python_version", "packages", "tools", "vm"}
    if unknown := set(data) - known:
        raise RecipeError(name, f"unknown keys: {sorted(unknown)}")
    if data.get("name") != name:
        raise RecipeError(name, f"'name' must equal the file name, got {data.get('name')!r}")
    suite = data.get("suite")
    if not isinstance(suite, str) or not _NAME_RE.match(suite):
        raise RecipeError(name, f"'suite' must be a Debian suite name, got {suite!r}")
    pyver = data.get("python_version")
    if not isinstance(pyver, str) or not _PYVER_RE.match(pyver):
        raise RecipeError(name, f"'python_version' must look like '3.11', got {pyver!r}")
    packages = _str_list(data.get("packages", []), "packages", _PKG_RE, name)
    tools = data.get("tools", {})
    if not isinstance(tools, dict) or set(tools) - {"wheels", "venv"}:
        raise RecipeError(name, "[tools] takes only 'wheels' and 'venv'")
    wheels = _str_list(tools.get("wheels", []), "tools.wheels", _REQ_RE, name)
    venv = _str_list(tools.get("venv", []), "tools.venv", _REQ_RE, name)
    vm = data.get("vm", {})
    if not isinstance(vm, dict) or (bad := set(vm) - set(VMSpec.__dataclass_fields__)):
        raise RecipeError(name, f"[vm] has unknown keys: {sorted(bad) if vm else vm!r}")
    d = VMSpec()
    spec = VMSpec(
        memory_mb=_int(vm, "memory_mb", d.memory_mb, 128, 65536, name),
        cpus=_int(vm, "cpus", d.cpus, 1, 64, name),
        disk_gib=_int(vm, "disk_gib", d.disk_gib, 1, 1024, name),
        tester_max_procs=_int(vm, "tester_max_procs", d.tester_max_procs, 16, 1 << 20, name),
    )
    return Recipe(name, suite, pyver, packages, wheels, venv, spec)


def load_recipe(name: str, recipes_dir: Path = RECIPES_DIR) -> Recipe:
    """Read and validate ``<recipes_dir>/<name>.toml``."""
    if not _NAME_RE.match(name):
        raise RecipeError(name, "image names are lowercase letters, digits, '-' and '_'")
    path = recipes_dir / f"{name}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(name, f"no recipe {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RecipeError(name, f"cannot read {path}: {exc}") from exc
    return parse_recipe(data, name)


def list_recipes(recipes_dir: Path = RECIPES_DIR) -> list[str]:
    """Names of the recipes shipped in ``recipes_dir``."""
    return sorted(p.stem for p in recipes_dir.glob("*.toml") if _NAME_RE.match(p.stem))


def _file_digests(root: Path) -> dict[str, str]:
    if not root.is_dir():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def recipe_hash(
    recipe: Recipe, guest_dir: Path = GUEST_FILES_DIR, runner: Path = RUNNER_DIR
) -> str:
    """sha256 over the recipe, the guest files, the runner's sources and the build format."""
    runner_sha = source_digests(runner)
    doc = {
        "build_format": BUILD_FORMAT,
        "recipe": recipe.to_json(),
        "guest_files": _file_digests(guest_dir),
        "runner": runner_sha,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
