"""Unpacking a hostile sdist as root: files, folders and in-tree symlinks, inside ``dest``."""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import IO

SDIST_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")


def safe_extract(archive: Path, dest: Path) -> int:
    """Extract a hostile sdist's files, dirs and in-tree symlinks; return how many
    members were refused.

    As pip's unpacking does (and tarfile's ``data`` filter), a file the archive marks
    executable by its owner stays executable (0755, else 0644): test suites run the
    scripts they ship (distro's fake ``lsb_release`` binaries). Absolute names, ``..``,
    hard links and devices are refused: the runner is root. A symlink is made only
    after every file and folder is written (so nothing is ever written through one),
    only where no folder on its way is itself a link, and is removed again unless its
    target, resolved once the tree is complete, lies inside ``dest``.
    """
    refused = 0
    links: list[tuple[Path, str]] = []

    def target(name: str) -> Path | None:
        parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
        if not parts or name.startswith("/") or ".." in parts:
            return None
        return dest.joinpath(*parts)

    def write(path: Path, src: IO[bytes], mode: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with src, path.open("wb") as out:
            shutil.copyfileobj(src, out)
        path.chmod(0o755 if mode & 0o100 else 0o644)

    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                path = target(info.filename)
                mode = info.external_attr >> 16
                kind = stat.S_IFMT(mode)
                if path is not None and kind == stat.S_IFLNK and info.file_size <= _LINK_MAX:
                    links.append((path, zf.read(info).decode("utf-8", "replace")))
                elif path is None or kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                    refused += 1
                elif info.is_dir():
                    path.mkdir(parents=True, exist_ok=True)
                else:
                    write(path, zf.open(info), mode)
    else:
        with tarfile.open(archive) as tf:
            for member in tf:
                path = target(member.name)
                if path is not None and member.issym():
                    links.append((path, member.linkname))
                elif path is None or not (member.isreg() or member.isdir()):
                    refused += 1
                elif member.isdir():
                    path.mkdir(parents=True, exist_ok=True)
                elif (data := tf.extractfile(member)) is None:
                    refused += 1
                else:
                    write(path, data, member.mode)
    made = [path for path, link in links if _make_link(dest, path, link)]
    refused += len(links) - len(made)
    return refused + _drop_escaping(dest, made)


_LINK_MAX = 4096  # a zip symlink's target is its content


def _make_link(dest: Path, path: Path, link: str) -> bool:
    """Make ``path`` → ``link`` unless the target is absolute, ``path`` exists, or a
    folder on its way from ``dest`` is a link."""
    if not link or link.startswith("/") or "\0" in link or os.path.lexists(path):
        return False
    folder = dest
    for part in path.relative_to(dest).parts[:-1]:
        folder = folder / part
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(link, path)
    return True


def _drop_escaping(dest: Path, made: list[Path]) -> int:
    """Remove the links whose target, resolved in the finished tree, is outside
    ``dest`` (a link can lead out through another: ``p -> q/../r`` with ``q -> .``);
    again until none does. Returns how many were removed."""
    base = os.path.realpath(dest)
    removed = 0
    while True:
        escaping = [
            p
            for p in made
            if os.path.lexists(p) and os.path.commonpath([base, os.path.realpath(p)]) != base
        ]
        if not escaping:
            return removed
        for path in escaping:
            path.unlink()
            removed += 1


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give ``root`` and everything under it (links not followed) to ``uid:gid``."""
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)
