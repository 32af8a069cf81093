"""Zip files and wheels: the central directory bounded before zipfile parses it."""

from __future__ import annotations

import itertools
import stat
import struct
import zipfile
from collections.abc import Generator
from pathlib import Path
from typing import IO

from slave.archive.errors import CorruptArchive, LimitExceeded
from slave.archive.members import ArchiveLimits, Member, MemberKind, validate_name
from slave.archive.reader import CHUNK, MAX_LINK_TARGET, ArchiveReader

_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
# Smallest local entry: fixed header without name; used to detect overlapping members.
_LOCAL_HEADER = 30


class ZipReader(ArchiveReader):
    def __init__(self, path: Path, limits: ArchiveLimits) -> None:
        super().__init__(path, limits)
        self._zip: zipfile.ZipFile | None = None
        self._infos: dict[str, zipfile.ZipInfo] = {}

    def load(self) -> None:
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
            self.check_declared(member, total)
            if kind is MemberKind.SYMLINK:
                self._infos[name] = info
                raw = self.read_member(member, MAX_LINK_TARGET)
                target = raw.decode("utf-8", errors="replace")
                member = Member(name, kind, info.file_size, info.compress_size, target)
            self._infos[name] = info
            self.add(member)

    def raw_chunks(self, member: Member) -> Generator[bytes, None, None]:
        assert self._zip is not None
        info = self._infos[member.name]
        if info.flag_bits & 0x1:
            raise CorruptArchive(self.path, f"{member.name}: encrypted member")
        with self._zip.open(info) as fh:
            while chunk := fh.read(CHUNK):
                yield chunk

    def close(self) -> None:
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
