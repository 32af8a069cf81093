"""What a release's distribution files contain, read as data through `SafeArchive`.

This is the only module of the quality engine that opens archives. A file that
cannot be read safely (path traversal, links out of the tree, bomb, corrupt) becomes a
`DistContents` with `error` set, never an exception: the archive is hostile input
and its failure is a finding about the release, not about pyti.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import structlog

from slave.archive import ArchiveError, ArchiveLimits, SafeArchive
from slave.quality.metadata import Metadata, parse_metadata
from slave.quality.naming import DistName, parse_filename

log = structlog.get_logger(__name__)

MAX_METADATA_BYTES: Final = 1 << 20
# Annotation coverage is a sample, not an audit: bounded work per release.
MAX_SOURCE_FILES: Final = 400
MAX_SOURCE_FILE_BYTES: Final = 512 << 10
MAX_SOURCE_TOTAL_BYTES: Final = 8 << 20


@dataclass(frozen=True, slots=True)
class Entry:
    """One member: `path` relative to the distribution root (sdist prefix removed)."""

    path: str
    size: int
    is_dir: bool


@dataclass(frozen=True, slots=True)
class DistContents:
    """A distribution file's listing and metadata, or why it could not be read."""

    file: Path
    dist: DistName
    entries: tuple[Entry, ...] = ()
    metadata: Metadata | None = None
    error: str | None = None
    # The archive member name of each entry (the sdist keeps its top directory).
    member_names: dict[str, str] = field(default_factory=dict)

    @property
    def readable(self) -> bool:
        """False when the archive was refused."""
        return self.error is None

    def files(self) -> list[Entry]:
        """Non-directory entries."""
        return [e for e in self.entries if not e.is_dir]


@dataclass(frozen=True, slots=True)
class Sources:
    """Python sources read for static analysis, with what was left out and why."""

    files: dict[str, bytes]
    skipped: int
    error: str | None = None


def read_contents(path: Path, expected_name: str | None = None) -> DistContents:
    """List `path` and parse its metadata; hostile or corrupt archives set `error`."""
    dist = parse_filename(path.name, expected_name)
    if dist.kind == "other":
        # Eggs, installers: nothing the indicators read, and not hostile by themselves.
        return DistContents(path, dist)
    try:
        with SafeArchive.open(path, limits=ArchiveLimits()) as archive:
            members = archive.members()
            prefix = _sdist_prefix([m.name for m in members]) if dist.kind == "sdist" else ""
            entries: list[Entry] = []
            member_names: dict[str, str] = {}
            for member in members:
                rel = member.name[len(prefix) :].strip("/")
                if not rel:
                    continue
                entries.append(Entry(rel, member.size, member.is_dir))
                member_names[rel] = member.name
            metadata_path = _metadata_path(dist, entries)
            metadata = None
            if metadata_path is not None:
                raw = archive.read(member_names[metadata_path], max_bytes=MAX_METADATA_BYTES)
                metadata = parse_metadata(raw, f"{path.name}:{metadata_path}")
    except ArchiveError as exc:
        return DistContents(path, dist, error=str(exc))
    except Exception as exc:
        # SafeArchive translates what it knows; hostile input must still never escape
        # as an exception, so this is the last line of defence (and worth a log line).
        log.warning("quality_archive_unexpected_error", file=path.name, error=repr(exc))
        return DistContents(path, dist, error=f"{path.name}: {type(exc).__name__}: {exc}")
    return DistContents(path, dist, tuple(entries), metadata, error=None, member_names=member_names)


def read_sources(contents: DistContents, paths: Sequence[str]) -> Sources:
    """Read the given `.py` entries of `contents`, within the module's size caps."""
    sizes = {e.path: e.size for e in contents.files()}
    # Archive order: a tarball is one compressed stream, and seeking back re-inflates it.
    order = {e.path: i for i, e in enumerate(contents.entries)}
    paths = sorted(paths, key=lambda p: order.get(p, len(order)))
    files: dict[str, bytes] = {}
    skipped = 0
    total = 0
    try:
        with SafeArchive.open(contents.file, limits=ArchiveLimits()) as archive:
            for rel in paths:
                size = sizes.get(rel)
                if (
                    size is None
                    or size > MAX_SOURCE_FILE_BYTES
                    or len(files) >= MAX_SOURCE_FILES
                    or total + size > MAX_SOURCE_TOTAL_BYTES
                ):
                    skipped += 1
                    continue
                data = archive.read(contents.member_names[rel], max_bytes=MAX_SOURCE_FILE_BYTES)
                files[rel] = data
                total += len(data)
    except ArchiveError as exc:
        return Sources(files, skipped, error=str(exc))
    except Exception as exc:  # see read_contents
        log.warning("quality_archive_unexpected_error", file=contents.file.name, error=repr(exc))
        return Sources(files, skipped, error=f"{contents.file.name}: {type(exc).__name__}")
    return Sources(files, skipped)


def _sdist_prefix(names: Sequence[str]) -> str:
    """The single top-level directory every sdist member lives under, with its slash."""
    tops = {name.split("/", 1)[0] for name in names}
    if len(tops) == 1 and all("/" in n or n == next(iter(tops)) for n in names):
        return next(iter(tops)) + "/"
    return ""


def _metadata_path(dist: DistName, entries: Sequence[Entry]) -> str | None:
    files = {e.path for e in entries if not e.is_dir}
    if dist.kind == "sdist":
        return "PKG-INFO" if "PKG-INFO" in files else None
    candidates = sorted(
        p for p in files if posixpath.dirname(p).endswith(".dist-info") and p.count("/") == 1
    )
    # A wheel has exactly one dist-info; prefer the one that matches the file name.
    wanted = f"{dist.name}-{dist.version}.dist-info/METADATA"
    if wanted in candidates:
        return wanted
    return next((p for p in candidates if p.endswith("/METADATA")), None)
