"""The checks every archive format shares; ``zip_reader`` and ``tar_reader`` fill in the hooks.

A reader is owned by one `~slave.archive.safe.SafeArchive`, which opens it,
translates the standard library's parse errors and closes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from pathlib import Path

from slave.archive.errors import CorruptArchive, DuplicateMember, LimitExceeded, UnsafeLink
from slave.archive.members import ArchiveLimits, Member, link_escapes

#: bytes asked of a decompressor at a time
CHUNK = 64 * 1024
#: Symlink targets are tiny; anything bigger is not a link we want to reason about.
MAX_LINK_TARGET = 4096


class ArchiveReader:
    """Validated entries of one archive file, and their content read under the limits."""

    def __init__(self, path: Path, limits: ArchiveLimits) -> None:
        self.path = path
        self.limits = limits
        self.members: dict[str, Member] = {}

    def add(self, member: Member) -> None:
        """Record ``member``: refuses duplicates, too many members and escaping links."""
        existing = self.members.get(member.name)
        if existing is not None:
            if existing.is_dir and member.is_dir:
                return
            raise DuplicateMember(self.path, member.name)
        if len(self.members) >= self.limits.max_members:
            raise LimitExceeded(
                self.path, "max_members", self.limits.max_members, len(self.members) + 1
            )
        if member.link_target is not None and link_escapes(
            member.name, member.link_target, relative_to_member=member.is_symlink
        ):
            raise UnsafeLink(self.path, member.name, member.link_target)
        self.members[member.name] = member

    def read_member(self, member: Member, max_bytes: int) -> bytes:
        """Count what decompression really yields; never trust declared sizes."""
        total = 0
        out: list[bytes] = []
        chunks = self.raw_chunks(member)
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

    def check_declared(self, member: Member, running_total: int) -> None:
        """Refuse a member whose declared size (or the running total) is over the limits."""
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

    def load(self) -> None:
        """List and validate every entry (through `add` and `check_declared`)."""
        raise NotImplementedError

    def raw_chunks(self, member: Member) -> Generator[bytes, None, None]:
        """The decompressed bytes of regular file ``member``, a chunk at a time."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file (called once)."""
        raise NotImplementedError
