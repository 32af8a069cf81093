"""Image recipes: ``guest_image/recipes/<name>.toml``, parsed and validated, and their hash.

The recipe hash covers everything that ends up in the disk image: the recipe
itself (but its ``mirror``, which only says where the same packages are downloaded
from), the guest-side files in ``guest_image/files/``, the guest runner's sources
(the ``guest_runner`` package) and :data:`BUILD_FORMAT`, bumped
whenever the build code changes what it produces. An image whose manifest carries
another hash is stale and is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from guest_runner.bundle import source_digests
from pyti import settings
from pyti.settings import Int, Setting, SettingsError, Table, Text, Texts, check
from slave.image_builder.errors import RecipeError
from slave.image_builder.mirror import MIRROR_RE
from slave.image_builder.resources import GUEST_FILES_DIR, RECIPES_DIR, RUNNER_DIR

#: Bump when the build code changes what an image contains.
BUILD_FORMAT = 2

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_PYVER_RE = re.compile(r"^3\.\d{1,2}$")
_PKG_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]*$")
# Requirement names only (no URLs, no options): they are given to pip on the host.
_REQ_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*([<>=!~]=?[A-Za-z0-9.*+!-]+)?$")

# A prepared build environment: requirements (a name, optionally with specifiers such as
# ``<4`` or ``>=3.2,<4``), space-separated.
_ENV_SPEC = r"[<>=!~]=?[A-Za-z0-9.*+!-]+"
_ENV_REQ = rf"[A-Za-z0-9][A-Za-z0-9._-]*(?:{_ENV_SPEC}(?:,{_ENV_SPEC})*)?"
_ENV_RE = re.compile(rf"^{_ENV_REQ}( {_ENV_REQ})*$")


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
    #: The Debian mirror to build from; None: see ``slave.image_builder.mirror``. Not hashed.
    mirror: str | None = None
    #: Prepared PEP 517 build environments: each entry names, space-separated, the
    #: requirements one environment is made of (``/opt/pyti/build-envs/``, see
    #: ``guest_runner.prepared_build``); earlier entries are tried first.
    build_envs: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form (lists for tuples), stable for hashing."""
        d = asdict(self)
        return json.loads(json.dumps(d))  # type: ignore[no-any-return]


#: The keys of a recipe, for ``pyti.settings``.
RECIPE_SETTINGS: dict[str, Setting] = {
    "name": Text(required=True, pattern=_NAME_RE, means="the image name"),
    "suite": Text(required=True, pattern=_NAME_RE, means="a Debian suite name"),
    "python_version": Text(required=True, pattern=_PYVER_RE, means="like '3.11'"),
    "mirror": Text(pattern=MIRROR_RE, means="an http(s):// or file:// URL of a Debian mirror"),
    "packages": Texts(pattern=_PKG_RE),
    "tools": Table(
        {
            "wheels": Texts(pattern=_REQ_RE),
            "venv": Texts(pattern=_REQ_RE),
            "build_envs": Texts(pattern=_ENV_RE),
        }
    ),
    "vm": Table(
        {
            "memory_mb": Int(minimum=128, maximum=65536),
            "cpus": Int(minimum=1, maximum=64),
            "disk_gib": Int(minimum=1, maximum=1024),
            "tester_max_procs": Int(minimum=16, maximum=1 << 20),
        }
    ),
}


def parse_recipe(data: dict[str, Any], name: str, source: str = "recipe") -> Recipe:
    """Validate a parsed TOML document; raise :class:`RecipeError` naming the bad field."""
    try:
        values = check(data, RECIPE_SETTINGS, source=source)
    except SettingsError as exc:
        raise RecipeError(name, str(exc)) from None
    if values["name"] != name:
        raise RecipeError(name, f"'name' must equal the file name, got {values['name']!r}")
    tools = values.get("tools", {})
    return Recipe(
        name,
        values["suite"],
        values["python_version"],
        values.get("packages", ()),
        tools.get("wheels", ()),
        tools.get("venv", ()),
        VMSpec(**values.get("vm", {})),
        values.get("mirror"),
        tools.get("build_envs", ()),
    )


def load_recipe(name: str, recipes_dir: Path = RECIPES_DIR) -> Recipe:
    """Read and validate ``<recipes_dir>/<name>.toml``."""
    if not _NAME_RE.match(name):
        raise RecipeError(name, "image names are lowercase letters, digits, '-' and '_'")
    path = recipes_dir / f"{name}.toml"
    if not path.is_file():
        raise RecipeError(name, f"no recipe {path}")
    try:
        data = settings.read_toml(path)
    except SettingsError as exc:
        raise RecipeError(name, str(exc)) from None
    return parse_recipe(data, name, str(path))


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
    """sha256 over the recipe, the guest files, the runner and the build format.

    The recipe's ``mirror`` is left out: another copy of the same archive makes
    the same image, so a change of mirror does not make built images stale.
    """
    runner_sha = source_digests(runner)
    hashed = {k: v for k, v in recipe.to_json().items() if k != "mirror"}
    doc = {
        "build_format": BUILD_FORMAT,
        "recipe": hashed,
        "guest_files": _file_digests(guest_dir),
        "runner": runner_sha,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
