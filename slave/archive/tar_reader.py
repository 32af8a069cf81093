"""Tarballs (plain, gz, bz2, xz): every read and seek bounded by what really came out."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
from collections.abc import Generator
from pathlib import Path

from slave.archive.errors import LimitExceeded, MemberNotFound
from slave.archive.members import ArchiveLimits, Member, MemberKind, validate_name
from slave.archive.reader import CHUNK, ArchiveReader

# Per-member stream overhead of a tarball beyond its data: header, padding, pax header.
_TAR_OVERHEAD_PER_MEMBER = 2048


def _decompressor(path: Path, kind: str) -> io.BufferedIOBase:
    match kind:
        case "gz":
            return gzip.GzipFile(path, "rb")
        case "bz2":
            return bz2.open(path, "rb")
        case "xz":
            return lzma.open(path, "rb")
        case _:
            return path.open("rb")


class _CappedStream:
    """A seekable view of a decompressed tar stream that refuses to go past a budget.

    tarfile decompresses to skip members and reads pax/GNU long-name headers in a single
    ``read``; both are bounded here by what really came out of the decompressor.
    """

    def __init__(self, raw: io.BufferedIOBase, archive: TarReader) -> None:
        self._raw = raw
        self._archive = archive
        self.high_water = 0

    def _reach(self, position: int) -> None:
        archive = self._archive
        limits = archive.limits
        budget = limits.max_total_size + _TAR_OVERHEAD_PER_MEMBER * limits.max_members
        if position > budget:
            raise LimitExceeded(archive.path, "max_total_size", budget, position)
        if archive.compressed_size is not None and position > limits.ratio_floor:
            ratio = position / max(archive.compressed_size, 1)
            if ratio > limits.max_ratio:
                raise LimitExceeded(archive.path, "max_ratio", limits.max_ratio, ratio)
        self.high_water = max(self.high_water, position)

    def read(self, size: int = -1, /) -> bytes:
        limits = self._archive.limits
        if size < 0 or size > max(limits.max_header_bytes, CHUNK):
            raise LimitExceeded(
                self._archive.path,
                "max_header_bytes",
                limits.max_header_bytes,
                size if size >= 0 else float("inf"),
            )
        self._reach(self._raw.tell() + size)
        return self._raw.read(size)

    def seek(self, offset: int, whence: int = 0, /) -> int:
        target = offset if whence == 0 else self._raw.tell() + offset
        if whence not in (0, 1):
            raise ValueError("unsupported whence")
        self._reach(target)
        return self._raw.seek(target)

    def tell(self) -> int:
        return self._raw.tell()

    def write(self, data: bytes, /) -> int:
        raise io.UnsupportedOperation("read-only")

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()


class TarReader(ArchiveReader):
    def __init__(self, path: Path, limits: ArchiveLimits, kind: str) -> None:
        super().__init__(path, limits)
        self._kind = kind
        self.compressed_size: int | None = None
        self._stream: _CappedStream | None = None
        self._tar: tarfile.TarFile | None = None
        self._infos: dict[str, tarfile.TarInfo] = {}

    def load(self) -> None:
        if self._kind != "tar":
            self.compressed_size = self.path.stat().st_size
        self._stream = _CappedStream(_decompressor(self.path, self._kind), self)
        # Closed by close(), also when load fails (SafeArchive.open closes on error).
        self._tar = tarfile.open(fileobj=self._stream, mode="r:")  # noqa: SIM115
        total = 0
        while (info := self._tar.next()) is not None:
            name = validate_name(self.path, info.name, self.limits)
            if info.isdir():
                kind, target = MemberKind.DIR, None
            elif info.issym():
                kind, target = MemberKind.SYMLINK, info.linkname
            elif info.islnk():
                kind, target = MemberKind.HARDLINK, info.linkname
            elif info.isreg() and not info.issparse():
                kind, target = MemberKind.FILE, None
            else:
                kind, target = MemberKind.OTHER, None
            size = info.size if kind is MemberKind.FILE else 0
            member = Member(name, kind, size, None, target)
            total += size
            self.check_declared(member, total)
            self.add(member)
            self._infos[name] = info

    def raw_chunks(self, member: Member) -> Generator[bytes, None, None]:
        assert self._tar is not None
        fh = self._tar.extractfile(self._infos[member.name])
        if fh is None:
            raise MemberNotFound(self.path, member.name)
        with fh:
            while chunk := fh.read(CHUNK):
                yield chunk

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
        if self._stream is not None:
            self._stream.close()
