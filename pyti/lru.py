"""Keep a directory of files under a size bound, least recently used out first.

Used by the master for its uploads and by the slave for its download cache.
"Used" is the file's modification time: the owners touch a file when they use it
(the slave's cache when it places a blob, the master's uploads when one arrives).
Blocking file system work: call these through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Entry:
    """One file of the directory."""

    path: Path
    size: int
    used: float


@dataclass(frozen=True, slots=True)
class Trimmed:
    """What ``trim`` did: files removed, their bytes, and the bytes left."""

    files: int
    bytes: int
    left: int


def scan(root: Path, skip: Callable[[Path], bool] = lambda _: False) -> list[Entry]:
    """Every regular file under ``root`` (none if it does not exist), except those ``skip``s."""
    entries: list[Entry] = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if skip(path):
                continue
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue  # removed meanwhile
            if not path.is_symlink() and path.is_file():
                entries.append(Entry(path, st.st_size, st.st_mtime))
    return entries


def trim(
    entries: Iterable[Entry],
    max_bytes: int,
    *,
    keep: Callable[[Entry], bool] = lambda _: False,
    min_age: float = 0.0,
    now: float | None = None,
) -> Trimmed:
    """Remove the least recently used entries until the rest fit in ``max_bytes``.

    Never removes an entry ``keep`` says is in use, nor one used less than
    ``min_age`` seconds ago (it may be about to be referenced); so the bound is a
    target, not a guarantee. An emptied parent directory is removed too.
    """
    listed = sorted(entries, key=lambda e: e.used)
    total = sum(e.size for e in listed)
    now = time.time() if now is None else now
    files = removed = 0
    for entry in listed:
        if total <= max_bytes:
            break
        if keep(entry) or now - entry.used < min_age or _used_since(entry, now - min_age):
            continue
        with contextlib.suppress(FileNotFoundError):
            entry.path.unlink()
        total -= entry.size
        files += 1
        removed += entry.size
        with contextlib.suppress(OSError):
            entry.path.parent.rmdir()  # only if empty
    return Trimmed(files, removed, total)


def _used_since(entry: Entry, since: float) -> bool:
    """True if the file was used (touched) after ``since``, e.g. since it was scanned."""
    try:
        return entry.path.lstat().st_mtime > max(since, entry.used)
    except FileNotFoundError:
        return False
