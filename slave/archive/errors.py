"""What reading a hostile archive can fail with; every error carries ``path``."""

from __future__ import annotations

from pathlib import Path

from slave.errors import SlaveError


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
