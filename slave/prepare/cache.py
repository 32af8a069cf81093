"""A content-addressed store of downloaded files, shared by every job of a slave.

Layout under ``cache_dir``::

    blobs/sha256/ab/abcdef...        one file per content, read-only, never rewritten
    resolutions/<key>.json           [{"filename", "sha256"}] pip picked for a requirement
                                     set + guest target, with the time it was made

Blobs are only stored after their sha256 is verified, and are put into a job's
directories by hard link (copy across file systems), so a second job needing the
same files reads neither the network nor, usually, the disk. Writers race safely:
every file appears by ``os.replace`` of a complete temporary file.

The cache is bounded (``trim``, least recently used out first, ``pyti.lru``): a
blob's modification time is its last use, set when it is stored, found (``has``)
or placed. A blob used in the last ``TRIM_MIN_AGE_S`` is never evicted, so one a
job has just found stays for it to place; a job's placed copy is a separate link
and survives the blob's eviction. A resolution whose blobs were evicted is simply
resolved again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pyti import lru

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20
#: A blob used more recently than this is never evicted by ``trim``.
TRIM_MIN_AGE_S = 3600.0


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks. Blocking: call through ``to_thread``."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def place(source: Path, dest: Path) -> None:
    """Hard-link ``source`` to ``dest`` (copy if linking is impossible); replaces ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class CachedFile:
    filename: str
    sha256: str


class BlobCache:
    """The store rooted at ``root``. Methods that touch file contents are coroutines
    that run in a worker thread; on failure or cancel no partial blob is left visible."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"<BlobCache {self.root}>"

    def blob(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / "blobs" / "sha256" / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        """True if the blob is here; marks it used (so ``trim`` keeps it a while)."""
        blob = self.blob(sha256)
        try:
            os.utime(blob)
        except OSError:
            return False
        return blob.is_file()

    def trim(self, max_bytes: int) -> lru.Trimmed:
        """Evict least recently used blobs until the cache fits ``max_bytes`` (blocking)."""
        entries = lru.scan(self.root / "blobs", lambda p: p.name.startswith(".in-"))
        return lru.trim(entries, max_bytes, min_age=TRIM_MIN_AGE_S)

    def size(self) -> int:
        """Bytes of blobs in the cache (blocking)."""
        return sum(e.size for e in lru.scan(self.root / "blobs"))

    async def store(self, path: Path, sha256: str | None = None) -> str:
        """Add ``path``'s content (hashing it when ``sha256`` is not already verified)."""
        return await asyncio.to_thread(self.store_blocking, path, sha256)

    def store_blocking(self, path: Path, sha256: str | None = None) -> str:
        """`store` for code already running in a worker thread."""
        digest = sha256 or sha256_file(path)
        blob = self.blob(digest)
        if self.has(digest):
            return digest
        blob.parent.mkdir(parents=True, exist_ok=True)
        # Copied, not linked: the blob must not share an inode with a job's file.
        tmp = blob.parent / f".in-{uuid.uuid4().hex}"
        try:
            shutil.copyfile(path, tmp)
            tmp.chmod(0o444)
            os.replace(tmp, blob)
        finally:
            tmp.unlink(missing_ok=True)
        return digest

    async def place(self, sha256: str, dest: Path) -> None:
        """Put the blob ``sha256`` at ``dest`` (hard link, else copy); marks it used."""
        blob = self.blob(sha256)
        await asyncio.to_thread(place, blob, dest)
        with contextlib.suppress(OSError):
            await asyncio.to_thread(os.utime, blob)

    def _resolution_path(self, key: str) -> Path:
        return self.root / "resolutions" / f"{key}.json"

    def load_resolution(self, key: str, ttl: float) -> list[CachedFile] | None:
        """A resolution younger than ``ttl`` seconds whose blobs are all present."""
        path = self._resolution_path(key)
        try:
            record = json.loads(path.read_text())
            if time.time() - float(record["created"]) > ttl:
                return None
            files = [CachedFile(str(f["filename"]), str(f["sha256"])) for f in record["files"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not all(self.has(f.sha256) for f in files):
            return None
        return files

    def save_resolution(self, key: str, files: list[CachedFile]) -> None:
        """Record what pip picked for ``key``; atomically replaces an older record."""
        path = self._resolution_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "created": time.time(),
            "files": [{"filename": f.filename, "sha256": f.sha256} for f in files],
        }
        tmp = path.parent / f".in-{uuid.uuid4().hex}"
        try:
            tmp.write_text(json.dumps(record))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
