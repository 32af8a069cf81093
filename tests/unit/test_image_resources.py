"""Recipes, guest files and the runner are package data, and their hash does not depend on where."""

from __future__ import annotations

import shutil
from pathlib import Path

from slave.image_builder.recipe import list_recipes, load_recipe, recipe_hash
from slave.image_builder.resources import GUEST_FILES_DIR, RECIPES_DIR, RUNNER_DIR


def test_resources_are_the_installed_packages_data() -> None:
    """The three directories resolve inside the guest_image and guest_runner packages."""
    import guest_image
    import guest_runner

    assert Path(guest_image.__file__).parent / "recipes" == RECIPES_DIR
    assert Path(guest_image.__file__).parent / "files" == GUEST_FILES_DIR
    assert Path(guest_runner.__file__).parent == RUNNER_DIR
    assert (GUEST_FILES_DIR / "setup.sh").is_file() and (RUNNER_DIR / "runner.py").is_file()
    assert {"bookworm", "trixie"} <= set(list_recipes())


def test_recipe_hash_is_the_same_from_another_location(tmp_path: Path) -> None:
    """Copies of the recipe, guest files and runner elsewhere (an installed wheel, with its
    compiled caches) hash the same as the source tree: images are reused across both."""
    recipes = shutil.copytree(RECIPES_DIR, tmp_path / "site" / "guest_image" / "recipes")
    files = shutil.copytree(GUEST_FILES_DIR, tmp_path / "site" / "guest_image" / "files")
    runner = shutil.copytree(RUNNER_DIR, tmp_path / "site" / "guest_runner")
    for where in (files, runner):
        (where / "__pycache__").mkdir(exist_ok=True)
        (where / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"compiled")
    here = load_recipe("bookworm")
    there = load_recipe("bookworm", recipes)
    assert recipe_hash(there, files, runner) == recipe_hash(here)
    (files / "sshd_config").write_text("changed\n")
    assert recipe_hash(there, files, runner) != recipe_hash(here)
