"""Read hostile archives (wheels, zips, tarballs) as data, without ever extracting them.

Every release file pyti touches on the host is untrusted. This module lists and reads
members in memory, never writes them to disk, never follows links, and enforces its
limits *while* decompressing rather than trusting sizes the archive declares::

    with SafeArchive.open(path, limits=ArchiveLimits()) as ar:
        for m in ar.members():             # validated, normalised names
            ...
        text = ar.read("pkg-1.0/PKG-INFO", max_bytes=1 << 20)

It is synchronous and CPU-bound (decompression): coroutines call it through
``asyncio.to_thread``. One `SafeArchive` must not be shared between threads.

Errors (all carry ``path``)::

    SlaveError
     └── ArchiveError
          ├── UnsupportedArchive   file name suffix is not a known archive kind
          ├── CorruptArchive       the container cannot be parsed (``reason``)
          ├── UnsafeMember         traversal, absolute, drive letter, backslash,
          │                        control characters, not UTF-8 (``member``, ``reason``)
          ├── UnsafeLink           symlink/hardlink pointing out of the tree
          │                        (``member``, ``target``)
          ├── DuplicateMember      two entries with the same normalised name (``member``)
          ├── LimitExceeded        a cap of `ArchiveLimits` was hit: bombs, huge members
          │                        (``limit`` name, ``allowed``, ``actual`` so far, ``member``)
          └── MemberNotFound       no such name, or not a regular file (``member``)
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import itertools
import lzma
import posixpath
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Generator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from slave.errors import SlaveError

MiB = 1 << 20
_CHUNK = 64 * 1024
# Symlink targets are tiny; anything bigger is not a link we want to reason about.
_MAX_LINK_TARGET = 4096
# Per-member stream overhead of a tarball beyond its data: header, padding, pax header.
_TAR_OVERHEAD_PER_MEMBER = 2048


class ArchiveError(SlaveError):
    """An archive could not be read safely."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path.name}: {message}")
        self.path = path


class UnsupportedArchive(ArchiveError):
    """The file's suffix is not one of the archive kinds we read."""


class CorruptArchive(ArchiveError):
    """The container is malformed, truncated or uses features we refuse."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(path, f"corrupt archive: {reason}")
        self.reason = reason


class UnsafeMember(ArchiveError):
    """A member name that could escape or confuse a tree if it were ever extracted."""

    def __init__(self, path: Path, member: str, reason: str) -> None:
        super().__init__(path, f"unsafe member {member!r}: {reason}")
        self.member = member
        self.reason = reason


class UnsafeLink(ArchiveError):
    """A symlink or hardlink whose target lies outside the archive's tree."""

    def __init__(self, path: Path, member: str, target: str) -> None:
        super().__init__(path, f"link {member!r} points outside the archive: {target!r}")
        self.member = member
        self.target = target


class DuplicateMember(ArchiveError):
    """Two non-directory entries normalise to the same name (readers disagree on which wins)."""

    def __init__(self, path: Path, member: str) -> None:
        super().__init__(path, f"duplicate member {member!r}")
        self.member = member


class LimitExceeded(ArchiveError):
    """A cap was hit; ``limit`` is the `ArchiveLimits` field name (or ``read_max_bytes``)."""

    def __init__(
        self, path: Path, limit: str, allowed: float, actual: float, member: str | None = None
    ) -> None:
        where = f" in {member!r}" if member else ""
        super().__init__(path, f"{limit} exceeded{where}: {actual:g} > {allowed:g}")
        self.limit = limit
        self.allowed = allowed
        self.actual = actual
        self.member = member


class MemberNotFound(ArchiveError):
    """No regular file of that name (links and directories are never read)."""

    def __init__(self, path: Path, member: str) -> None:
        super().__init__(path, f"no regular file {member!r}")
        self.member = member


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """Caps applied while listing and reading. Defaults fit real wheels and sdists."""

    max_members: int = 50_000
    #: uncompressed bytes of one member
    max_member_size: int = 512 * MiB
    #: uncompressed bytes of all members (for tarballs: of the whole decompressed stream)
    max_total_size: int = 2048 * MiB
    #: uncompressed / compressed, checked once more than ``ratio_floor`` bytes came out
    max_ratio: float = 200.0
    ratio_floor: int = 1 * MiB
    max_name_length: int = 1024
    #: bytes of a zip's central directory (parsed into memory before anything else)
    max_directory_bytes: int = 16 * MiB
    #: bytes of one tar header block run (pax/GNU long names are read in one piece)
    max_header_bytes: int = 1 * MiB


class MemberKind(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    #: devices, fifos, sparse files: listed, never read
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Member:
    """One validated entry. ``name`` is relative, ``/``-separated, without ``.`` parts."""

    name: str
    kind: MemberKind
    size: int
    compressed_size: int | None = None
    link_target: str | None = None

    @property
    def is_file(self) -> bool:
        return self.kind is MemberKind.FILE

    @property
    def is_dir(self) -> bool:
        return self.kind is MemberKind.DIR

    @property
    def is_symlink(self) -> bool:
        return self.kind is MemberKind.SYMLINK

    @property
    def is_hardlink(self) -> bool:
        return self.kind is MemberKind.HARDLINK


_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_name(path: Path, raw: str, limits: ArchiveLimits) -> str:
    """The normalised form of member name ``raw``, or `UnsafeMember`."""
    if not raw or len(raw) > limits.max_name_length:
        raise UnsafeMember(path, raw[:100], "empty or too long")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeMember(path, raw, "not valid UTF-8") from None
    if _CONTROL.search(raw):
        raise UnsafeMember(path, raw, "control character")
    if "\\" in raw:
        # Windows tools (and some extractors on Linux) treat it as a separator.
        raise UnsafeMember(path, raw, "backslash")
    if raw.startswith("/"):
        raise UnsafeMember(path, raw, "absolute path")
    if _DRIVE.match(raw):
        raise UnsafeMember(path, raw, "drive letter")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeMember(path, raw, "parent directory component")
    if not parts:
        raise UnsafeMember(path, raw, "names the archive root")
    return "/".join(parts)


def _link_escapes(member: str, target: str, *, relative_to_member: bool) -> bool:
    if not target or target.startswith("/") or _DRIVE.match(target) or "\\" in target:
        return True
    base = posixpath.dirname(member) if relative_to_member else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    return resolved == ".." or resolved.startswith("../")


def _archive_kind(path: Path) -> str:
    name = path.name.lower()
    for suffix, kind in (
        (".whl", "zip"),
        (".zip", "zip"),
        (".tar.gz", "gz"),
        (".tgz", "gz"),
        (".tar.bz2", "bz2"),
        (".tar.xz", "xz"),
        (".tar", "tar"),
    ):
        if name.endswith(suffix):
            return kind
    raise UnsupportedArchive(path, "unsupported archive type")


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


class SafeArchive:
    """An open archive; use `SafeArchive.open` and close it (or use ``with``)."""

    def __init__(self, path: Path, limits: ArchiveLimits) -> None:
        self.path = path
        self.limits = limits
        self._members: dict[str, Member] = {}
        self._closed = False

    @classmethod
    def open(cls, path: Path, limits: ArchiveLimits | None = None) -> SafeArchive:
        """Open and validate every entry; raises `ArchiveError` and leaves nothing open."""
        limits = limits or ArchiveLimits()
        kind = _archive_kind(path)
        archive: SafeArchive = (
            _ZipArchive(path, limits) if kind == "zip" else _TarArchive(path, limits, kind)
        )
        try:
            archive._load()
        except ArchiveError:
            archive.close()
            raise
        except _PARSE_ERRORS as exc:
            archive.close()
            raise CorruptArchive(path, f"{type(exc).__name__}: {exc}") from exc
        return archive

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._members)} members"
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
        return list(self._members.values())

    def member(self, name: str) -> Member | None:
        """The entry called ``name`` (normalised form), if any."""
        return self._members.get(name)

    def read(self, name: str, max_bytes: int = 16 * MiB) -> bytes:
        """The content of regular file ``name``; `LimitExceeded` past ``max_bytes``."""
        if self._closed:
            raise ValueError("archive is closed")
        member = self._members.get(name)
        if member is None or not member.is_file:
            raise MemberNotFound(self.path, name)
        try:
            return self._read_member(member, max_bytes)
        except ArchiveError:
            raise
        except _PARSE_ERRORS as exc:
            raise CorruptArchive(self.path, f"{name}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Release the file; idempotent."""
        if not self._closed:
            self._closed = True
            self._close()

    # -- shared checks for the format subclasses ------------------------------------

    def _add(self, member: Member) -> None:
        existing = self._members.get(member.name)
        if existing is not None:
            if existing.is_dir and member.is_dir:
                return
            raise DuplicateMember(self.path, member.name)
        if len(self._members) >= self.limits.max_members:
            raise LimitExceeded(
                self.path, "max_members", self.limits.max_members, len(self._members) + 1
            )
        if member.link_target is not None and _link_escapes(
            member.name, member.link_target, relative_to_member=member.is_symlink
        ):
            raise UnsafeLink(self.path, member.name, member.link_target)
        self._members[member.name] = member

    def _read_member(self, member: Member, max_bytes: int) -> bytes:
        """Count what decompression really yields; never trust declared sizes."""
        total = 0
        out: list[bytes] = []
        chunks = self._raw_chunks(member)
        # closing() releases the member's file handle when a cap stops us midway.
        with contextlib.closing(chunks):
            for chunk in chunks:
                total += len(chunk)
                self._check_read(member, total, max_bytes)
                out.append(chunk)
        return b"".join(out)

    def _check_read(self, member: Member, total: int, max_bytes: int) -> None:
        limits = self.limits
        if total > max_bytes:
            raise LimitExceeded(self.path, "read_max_bytes", max_bytes, total, member.name)
        if total > limits.max_member_size:
            raise LimitExceeded(
                self.path, "max_member_size", limits.max_member_size, total, member.name
            )
        if total > member.size:
            raise CorruptArchive(self.path, f"{member.name}: more data than declared")
        compressed = member.compressed_size
        if compressed is not None and total > limits.ratio_floor:
            ratio = total / max(compressed, 1)
            if ratio > limits.max_ratio:
                raise LimitExceeded(self.path, "max_ratio", limits.max_ratio, ratio, member.name)

    def _check_declared(self, member: Member, running_total: int) -> None:
        limits = self.limits
        if member.size > limits.max_member_size:
            raise LimitExceeded(
                self.path, "max_member_size", limits.max_member_size, member.size, member.name
            )
        if running_total > limits.max_total_size:
            raise LimitExceeded(
                self.path, "max_total_size", limits.max_total_size, running_total, member.name
            )
        compressed = member.compressed_size
        if compressed is not None and member.size > limits.ratio_floor:
            ratio = member.size / max(compressed, 1)
            if ratio > limits.max_ratio:
                raise LimitExceeded(self.path, "max_ratio", limits.max_ratio, ratio, member.name)

    # -- format hooks -----------------------------------------------------------------

    def _load(self) -> None:
        raise NotImplementedError

    def _raw_chunks(self, member: Member) -> Generator[bytes, None, None]:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


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


_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
# Smallest local entry: fixed header without name; used to detect overlapping members.
_LOCAL_HEADER = 30


class _ZipArchive(SafeArchive):
    def __init__(self, path: Path, limits: ArchiveLimits) -> None:
        super().__init__(path, limits)
        self._zip: zipfile.ZipFile | None = None
        self._infos: dict[str, zipfile.ZipInfo] = {}

    def _load(self) -> None:
        # zipfile parses the whole central directory into objects before we can count
        # anything, so bound it first from the end-of-central-directory record.
        with self.path.open("rb") as fp:
            entries, directory_size = _central_directory_size(fp, self.path)
        if entries > self.limits.max_members:
            raise LimitExceeded(self.path, "max_members", self.limits.max_members, entries)
        if directory_size > self.limits.max_directory_bytes:
            raise LimitExceeded(
                self.path, "max_directory_bytes", self.limits.max_directory_bytes, directory_size
            )
        self._zip = zipfile.ZipFile(self.path)
        infos = self._zip.infolist()
        if len(infos) > self.limits.max_members:
            raise LimitExceeded(self.path, "max_members", self.limits.max_members, len(infos))
        _reject_overlaps(self.path, infos)
        total = 0
        for info in infos:
            name = validate_name(self.path, info.filename, self.limits)
            mode = info.external_attr >> 16
            if info.is_dir():
                kind = MemberKind.DIR
            elif info.create_system == 3 and stat.S_ISLNK(mode):
                kind = MemberKind.SYMLINK
            elif info.create_system == 3 and stat.S_IFMT(mode) not in (0, stat.S_IFREG):
                # Many tools store permissions only (no file-type bits): those are files.
                kind = MemberKind.OTHER
            else:
                kind = MemberKind.FILE
            member = Member(name, kind, info.file_size, info.compress_size)
            total += info.file_size
            self._check_declared(member, total)
            if kind is MemberKind.SYMLINK:
                self._infos[name] = info
                raw = self._read_member(member, _MAX_LINK_TARGET)
                target = raw.decode("utf-8", errors="replace")
                member = Member(name, kind, info.file_size, info.compress_size, target)
            self._infos[name] = info
            self._add(member)

    def _raw_chunks(self, member: Member) -> Generator[bytes, None, None]:
        assert self._zip is not None
        info = self._infos[member.name]
        if info.flag_bits & 0x1:
            raise CorruptArchive(self.path, f"{member.name}: encrypted member")
        with self._zip.open(info) as fh:
            while chunk := fh.read(_CHUNK):
                yield chunk

    def _close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _central_directory_size(fp: IO[bytes], path: Path) -> tuple[int, int]:
    """(entries, bytes) of the central directory, found the way zipfile finds it."""
    fp.seek(0, 2)
    size = fp.tell()
    if size < _EOCD.size:
        raise CorruptArchive(path, "too small to be a zip file")
    fp.seek(size - _EOCD.size)
    data = fp.read()
    if data[:4] == b"PK\x05\x06" and data[-2:] == b"\x00\x00":
        eocd_pos = size - _EOCD.size
    else:
        start = max(size - (1 << 16) - _EOCD.size, 0)
        fp.seek(start)
        data = fp.read()
        found = data.rfind(b"PK\x05\x06")
        if found < 0 or found + _EOCD.size > len(data):
            raise CorruptArchive(path, "no end of central directory record")
        eocd_pos = start + found
        data = data[found:]
    _sig, _disk, _cd_disk, _here, entries, cd_size, cd_offset, _clen = _EOCD.unpack(
        data[: _EOCD.size]
    )
    if 0xFFFF in (entries,) or 0xFFFFFFFF in (cd_size, cd_offset):
        if eocd_pos < _ZIP64_LOCATOR.size:
            raise CorruptArchive(path, "zip64 locator missing")
        fp.seek(eocd_pos - _ZIP64_LOCATOR.size)
        sig, _d, z64_offset, _n = _ZIP64_LOCATOR.unpack(fp.read(_ZIP64_LOCATOR.size))
        if sig == b"PK\x06\x07":
            fp.seek(z64_offset)
            record = fp.read(_ZIP64_EOCD.size)
            if len(record) != _ZIP64_EOCD.size or record[:4] != b"PK\x06\x06":
                raise CorruptArchive(path, "bad zip64 end of central directory")
            fields = _ZIP64_EOCD.unpack(record)
            entries, cd_size = fields[7], fields[8]
    return entries, cd_size


def _reject_overlaps(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse entries that share bytes: the "overlapping files" zip bomb, and ambiguity."""
    spans = sorted(infos, key=lambda info: info.header_offset)
    for info, other in itertools.pairwise(spans):
        # A lower bound of the entry's real end: true overlaps always cross it.
        end = info.header_offset + _LOCAL_HEADER + info.compress_size
        if other.header_offset < end:
            raise CorruptArchive(path, f"members {info.filename!r} and {other.filename!r} overlap")


class _CappedStream:
    """A seekable view of a decompressed tar stream that refuses to go past a budget.

    tarfile decompresses to skip members and reads pax/GNU long-name headers in a single
    ``read``; both are bounded here by what really came out of the decompressor.
    """

    def __init__(self, raw: io.BufferedIOBase, archive: _TarArchive) -> None:
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
        if size < 0 or size > max(limits.max_header_bytes, _CHUNK):
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


class _TarArchive(SafeArchive):
    def __init__(self, path: Path, limits: ArchiveLimits, kind: str) -> None:
        super().__init__(path, limits)
        self._kind = kind
        self.compressed_size: int | None = None
        self._stream: _CappedStream | None = None
        self._tar: tarfile.TarFile | None = None
        self._infos: dict[str, tarfile.TarInfo] = {}

    def _load(self) -> None:
        if self._kind != "tar":
            self.compressed_size = self.path.stat().st_size
        self._stream = _CappedStream(_decompressor(self.path, self._kind), self)
        # Closed by _close(), also when _load fails (SafeArchive.open closes on error).
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
            self._check_declared(member, total)
            self._add(member)
            self._infos[name] = info

    def _raw_chunks(self, member: Member) -> Generator[bytes, None, None]:
        assert self._tar is not None
        fh = self._tar.extractfile(self._infos[member.name])
        if fh is None:
            raise MemberNotFound(self.path, member.name)
        with fh:
            while chunk := fh.read(_CHUNK):
                yield chunk

    def _close(self) -> None:
        if self._tar is not None:
            self._tar.close()
        if self._stream is not None:
            self._stream.close()
