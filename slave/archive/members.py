"""The caps of `ArchiveLimits`, the validated `Member` entries, and name and link checks."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from slave.archive.errors import UnsafeMember

MiB = 1 << 20


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


def link_escapes(member: str, target: str, *, relative_to_member: bool) -> bool:
    if not target or target.startswith("/") or _DRIVE.match(target) or "\\" in target:
        return True
    base = posixpath.dirname(member) if relative_to_member else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    return resolved == ".." or resolved.startswith("../")
