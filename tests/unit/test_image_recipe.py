"""Recipe parsing and the recipe hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from slave.image_builder.errors import RecipeError
from slave.image_builder.recipe import list_recipes, load_recipe, parse_recipe, recipe_hash


def _doc(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "demo",
        "suite": "bookworm",
        "python_version": "3.11",
        "packages": ["python3"],
        "tools": {"wheels": ["pytest"], "venv": ["ruff"]},
        "vm": {"memory_mb": 256, "cpus": 2, "disk_gib": 2},
    }
    doc.update(over)
    return doc


def test_shipped_bookworm_recipe_parses() -> None:
    """The shipped bookworm recipe is valid: Python 3.11 with pytest wheels, ruff and uv."""
    recipe = load_recipe("bookworm")
    assert recipe.python_version == "3.11"
    assert "openssh-server" in recipe.packages
    assert "pytest" in recipe.wheels
    assert recipe.venv_tools == ("ruff", "uv", "pyproject-hooks")
    assert "setuptools wheel" in recipe.build_envs and "hatchling" in recipe.build_envs
    assert "bookworm" in list_recipes()


def test_valid_document_gives_all_fields() -> None:
    """Every recipe field reaches the Recipe, with VM defaults for missing keys."""
    recipe = parse_recipe(_doc(vm={"memory_mb": 256}), "demo")
    assert recipe.vm.memory_mb == 256
    assert recipe.vm.cpus == 1
    assert recipe.vm.disk_gib == 4
    assert recipe.wheels == ("pytest",)


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"name": "other"}, "file name"),
        ({"suite": "Bookworm; rm"}, "suite"),
        ({"python_version": "3"}, "python_version"),
        ({"packages": ["ok", "--evil"]}, "packages"),
        ({"tools": {"wheels": ["https://x/y.whl"]}}, "tools.wheels"),
        ({"tools": {"other": []}}, "[tools]"),
        ({"tools": {"build_envs": ["flit-core @ https://x/f.whl"]}}, "tools.build_envs"),
        ({"tools": {"build_envs": ["setuptools  wheel"]}}, "tools.build_envs"),
        ({"tools": {"build_envs": ["--target=/ x"]}}, "tools.build_envs"),
        ({"vm": {"memory_mb": 64}}, "memory_mb"),
        ({"vm": {"cpus": True}}, "cpus"),
        ({"vm": {"ram": 1}}, "unknown"),
        ({"mirrors": ["http://x"]}, "unknown setting"),
        ({"mirror": "deb.debian.org"}, "mirror"),
    ],
)
def test_invalid_field_is_refused_by_name(override: dict[str, Any], fragment: str) -> None:
    """A malformed field raises RecipeError that names it."""
    with pytest.raises(RecipeError, match=None) as info:
        parse_recipe(_doc(**override), "demo")
    assert fragment in str(info.value)


def test_build_envs_take_names_with_specifiers() -> None:
    """Entries are requirements (names, specifiers), space-separated, kept in order."""
    envs = ["flit-core<4", "flit-core>=3.2,<4 packaging", "setuptools wheel"]
    recipe = parse_recipe(_doc(tools={"build_envs": envs}), "demo")
    assert recipe.build_envs == tuple(envs)


def test_true_where_a_number_belongs_names_file_and_key(tmp_path: Path) -> None:
    """``cpus = true`` in a recipe file is refused, naming the file and ``vm.cpus``."""
    path = tmp_path / "demo.toml"
    path.write_text(
        'name = "demo"\nsuite = "bookworm"\npython_version = "3.11"\n[vm]\ncpus = true\n'
    )
    with pytest.raises(RecipeError) as info:
        load_recipe("demo", tmp_path)
    assert f"{path}: vm.cpus has the wrong type" in str(info.value)


def test_missing_recipe_file_is_a_recipe_error(tmp_path: Path) -> None:
    """Asking for a recipe that does not exist is a clear RecipeError."""
    with pytest.raises(RecipeError, match="no recipe"):
        load_recipe("nosuch", tmp_path)


def test_broken_toml_is_a_recipe_error(tmp_path: Path) -> None:
    """A file that is not TOML is refused with RecipeError, not a parser traceback."""
    (tmp_path / "bad.toml").write_text("name = [unclosed")
    with pytest.raises(RecipeError, match="cannot read"):
        load_recipe("bad", tmp_path)


def test_recipe_hash_follows_guest_files_and_runner(tmp_path: Path) -> None:
    """The hash changes with the recipe, any guest file and the runner, and only then."""
    guest = tmp_path / "guest"
    guest.mkdir()
    (guest / "sshd_config").write_text("UsePAM no\n")
    runner = tmp_path / "guest_runner"
    (runner / "phases").mkdir(parents=True)
    (runner / "README.md").write_text("docs\n")
    recipe = parse_recipe(_doc(), "demo")
    base = recipe_hash(recipe, guest, runner)
    assert recipe_hash(recipe, guest, runner) == base
    (runner / "README.md").write_text("docs only: the runner itself is the same\n")
    assert recipe_hash(recipe, guest, runner) == base
    (runner / "phases" / "tests.py").write_text("print('v1')\n")
    with_runner = recipe_hash(recipe, guest, runner)
    assert with_runner != base
    (guest / "sshd_config").write_text("UsePAM no\nUseDNS no\n")
    with_guest = recipe_hash(recipe, guest, runner)
    assert with_guest != with_runner
    other = parse_recipe(_doc(vm={"memory_mb": 384}), "demo")
    assert recipe_hash(other, guest, runner) != with_guest
