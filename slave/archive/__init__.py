"""Read hostile archives (wheels, zips, tarballs) as data, without ever extracting them.

Every release file pyti touches on the host is untrusted. This package lists and reads
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

Modules: ``errors`` (the classes above), ``members`` (`ArchiveLimits`, `Member`,
name and link checks), ``reader`` (the checks every format shares), ``zip_reader`` and
``tar_reader`` (one reader per container format), ``safe`` (`SafeArchive`, the one way in).
"""

from slave.archive.errors import (
    ArchiveError,
    CorruptArchive,
    DuplicateMember,
    LimitExceeded,
    MemberNotFound,
    UnsafeLink,
    UnsafeMember,
    UnsupportedArchive,
)
from slave.archive.members import ArchiveLimits, Member, MemberKind, MiB, validate_name
from slave.archive.safe import SafeArchive

__all__ = [
    "ArchiveError",
    "ArchiveLimits",
    "CorruptArchive",
    "DuplicateMember",
    "LimitExceeded",
    "Member",
    "MemberKind",
    "MemberNotFound",
    "MiB",
    "SafeArchive",
    "UnsafeLink",
    "UnsafeMember",
    "UnsupportedArchive",
    "validate_name",
]
