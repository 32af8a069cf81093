"""Unpacking a hostile sdist as root: regular files and directories only, inside ``dest``."""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from pathlib import Path

SDIST_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")


def safe_extract(archive: Path, dest: Path) -> int:
    """Extract regular files and dirs of a hostile sdist; return how many members were refused.

    Links, devices, absolute names and ``..`` are refused: the runner is root, and a
    link planted in the tree could make it write outside ``dest``.
    """
    refused = 0

    def target(name: str) -> Path | None:
        parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
        if not parts or name.startswith("/") or ".." in parts:
            return None
        return dest.joinpath(*parts)

    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                path = target(info.filename)
                mode = info.external_attr >> 16
                if path is None or (mode and mode & 0o170000 not in (0, 0o100000, 0o040000)):
                    refused += 1
                    continue
                if info.is_dir():
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, path.open("wb") as out:
                    shutil.copyfileobj(src, out)
        return refused
    with tarfile.open(archive) as tf:
        for member in tf:
            path = target(member.name)
            if path is None or not (member.isreg() or member.isdir()):
                refused += 1
                continue
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            data = tf.extractfile(member)
            if data is None:
                refused += 1
                continue
            with data, path.open("wb") as out:
                shutil.copyfileobj(data, out)
    return refused


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give ``root`` and everything under it (links not followed) to ``uid:gid``."""
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)
