"""`SafeArchive`: the one way in: opens the right reader, translates parse errors, closes."""

from __future__ import annotations

import lzma
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path
from types import TracebackType
from typing import Self

from slave.archive.errors import ArchiveError, CorruptArchive, MemberNotFound, UnsupportedArchive
from slave.archive.members import ArchiveLimits, Member, MiB
from slave.archive.reader import ArchiveReader
from slave.archive.tar_reader import TarReader
from slave.archive.zip_reader import ZipReader

# Everything the stdlib readers raise on bad input; translated to CorruptArchive.
_PARSE_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    struct.error,
    NotImplementedError,
    RuntimeError,
    OverflowError,
)


def _reader(path: Path, limits: ArchiveLimits) -> ArchiveReader:
    """The reader for the archive kind ``path``'s suffix names."""
    name = path.name.lower()
    if name.endswith((".whl", ".zip")):
        return ZipReader(path, limits)
    for suffix, kind in (
        (".tar.gz", "gz"),
        (".tgz", "gz"),
        (".tar.bz2", "bz2"),
        (".tar.xz", "xz"),
        (".tar", "tar"),
    ):
        if name.endswith(suffix):
            return TarReader(path, limits, kind)
    raise UnsupportedArchive(path, "unsupported archive type")


class SafeArchive:
    """An open archive; use `SafeArchive.open` and close it (or use ``with``)."""

    def __init__(self, reader: ArchiveReader) -> None:
        self._reader = reader
        self.path = reader.path
        self.limits = reader.limits
        self._closed = False

    @classmethod
    def open(cls, path: Path, limits: ArchiveLimits | None = None) -> SafeArchive:
        """Open and validate every entry; raises `ArchiveError` and leaves nothing open."""
        archive = cls(_reader(path, limits or ArchiveLimits()))
        try:
            archive._reader.load()
        except ArchiveError:
            archive.close()
            raise
        except _PARSE_ERRORS as exc:
            archive.close()
            raise CorruptArchive(path, f"{type(exc).__name__}: {exc}") from exc
        return archive

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._reader.members)} members"
        return f"<{type(self).__name__} {self.path.name} {state}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def members(self) -> list[Member]:
        """Every entry, in archive order."""
        return list(self._reader.members.values())

    def member(self, name: str) -> Member | None:
        """The entry called ``name`` (normalised form), if any."""
        return self._reader.members.get(name)

    def read(self, name: str, max_bytes: int = 16 * MiB) -> bytes:
        """The content of regular file ``name``; `LimitExceeded` past ``max_bytes``."""
        if self._closed:
            raise ValueError("archive is closed")
        member = self._reader.members.get(name)
        if member is None or not member.is_file:
            raise MemberNotFound(self.path, name)
        try:
            return self._reader.read_member(member, max_bytes)
        except ArchiveError:
            raise
        except _PARSE_ERRORS as exc:
            raise CorruptArchive(self.path, f"{name}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Release the file; idempotent."""
        if not self._closed:
            self._closed = True
            self._reader.close()
