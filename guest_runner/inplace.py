"""The installed release's compiled modules, placed next to their sources in the sdist's tree.

pytest runs from the sdist's root (``python -m pytest``, as upstream CI does), so that
root is first on ``sys.path``, and in a flat layout (``multidict/`` at the root) the
tests import the source copy of the package rather than the installed one. The source
copy has no compiled modules: the C implementation is missing, and a suite that tests
both implementations fails every C case (multidict 7.2.1: 1,156 of 2,783). Upstream CI
builds in place (``pip install -e .``, ``setup.py build_ext --inplace``); here the
extension modules the install phase built (or the wheel shipped) are copied to where the
source copy would have built them. Nothing is built twice and no package code runs.

The copy is made by a forked child of the runner that has become tester: the source
tree is tester's, and whatever links the package may have planted, nothing is read or
written with root's rights.
"""

from __future__ import annotations

import importlib.machinery
import os
import shutil
from pathlib import Path, PurePosixPath

from guest_runner.executor import run_as

#: At most this many extension modules are placed (a release has a handful).
MAX_MODULES = 200
#: Where a source copy of a package can shadow the installed one.
SOURCE_BASES = ("", "src")


def extension_modules(site: Path, modules: list[str]) -> list[PurePosixPath]:
    """Paths (relative to ``site``) of the compiled modules inside the release's packages."""
    found: list[PurePosixPath] = []
    for name in sorted({m.split(".", 1)[0] for m in modules}):
        package = site / name
        if package.is_symlink() or not package.is_dir():
            continue
        for folder, dirs, files in os.walk(package):  # links to folders are not followed
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for file in sorted(files):
                if module_name(file) is not None and not os.path.islink(Path(folder, file)):
                    found.append(PurePosixPath(Path(folder, file).relative_to(site)))
                    if len(found) >= MAX_MODULES:
                        return found
    return found


def module_name(file: str) -> str | None:
    """``_speedups`` for ``_speedups.cpython-311-x86_64-linux-gnu.so``; None for a non-extension."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if file.endswith(suffix) and len(file) > len(suffix):
            return file[: -len(suffix)]
    return None


def missing_in(root: Path, site: Path, built: list[PurePosixPath]) -> list[tuple[Path, Path]]:
    """(installed file, place in the source tree) for each compiled module the tree's copy of
    its package lacks: the folder is there, and no module of that name is built in it."""
    pairs: list[tuple[Path, Path]] = []
    for base in SOURCE_BASES:
        tree = root / base if base else root
        for rel in built:
            folder = tree / rel.parent
            if not folder.is_dir():  # the tree has no copy of that package folder
                continue
            name = module_name(rel.name)
            if any(module_name(p.name) == name for p in folder.iterdir()):
                continue
            pairs.append((site / rel, folder / rel.name))
    return pairs


def place_extensions(
    root: Path, site: Path, modules: list[str], *, uid: int | None, gid: int | None
) -> list[str]:
    """Copy the missing compiled modules into the source tree (as ``uid``/``gid`` when given);
    the places now filled, relative to ``root``."""
    pairs = missing_in(root, site, extension_modules(site, modules))
    if not pairs:
        return []
    run_as(uid, gid, lambda: _copy(pairs))
    return [str(dest.relative_to(root)) for _, dest in pairs if dest.is_file()]


def _copy(pairs: list[tuple[Path, Path]]) -> None:
    for source, dest in pairs:
        try:
            shutil.copyfile(source, dest, follow_symlinks=False)
        except OSError:
            continue
