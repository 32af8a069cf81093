"""Where the image builder's inputs are: package data found with ``importlib.resources``.

Recipes (``guest_image/recipes``), guest files (``guest_image/files``) and the
runner's sources (the ``guest_runner`` package) are installed with the code, so
``pyti image build`` works the same from a wheel as from a source checkout. The
recipe hash covers file contents and relative paths only, never where the files
lie, so an image built by one is current for the other.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from slave.image_builder.errors import ImageError


def package_dir(package: str, *parts: str) -> Path:
    """The directory ``parts`` of an installed ``package``, as a real path.

    Raises :class:`ImageError` when the package is not on the file system (a
    zip import): the build copies these files with ``shutil`` and hashes them.
    """
    found = resources.files(package).joinpath(*parts)
    if not isinstance(found, Path):
        where = "/".join((package, *parts))
        raise ImageError(where, f"package data is not on the file system ({found!r})")
    return found


#: Image recipes, one ``<name>.toml`` each.
RECIPES_DIR = package_dir("guest_image", "recipes")
#: Guest-side files copied into every image (``setup.sh`` and what it installs).
GUEST_FILES_DIR = package_dir("guest_image", "files")
#: The guest runner's package: its ``*.py`` files become ``/opt/pyti/runner.pyz``.
RUNNER_DIR = package_dir("guest_runner")
