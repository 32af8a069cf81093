"""Host-side preparation of a release: its files and the wheels its guest needs.

The host never runs code from the package under test: release files come from the
JSON API (sha256 checked), dependencies from static metadata, and only binary
wheels are downloaded (``pip download --only-binary=:all:``). See
docs/contracts.md, "Host-side preparation".
"""

from slave.prepare.errors import (
    ChecksumMismatch,
    DependencyUnavailable,
    FetchFailed,
    MetadataError,
    PrepareError,
    ReleaseNotFound,
)
from slave.prepare.models import (
    GuestTarget,
    HttpTimeouts,
    PipOptions,
    PreparedRelease,
    ReleaseRequest,
)
from slave.prepare.release import prepare_release
from slave.prepare.testdeps import TestDependencies, find_test_dependencies
from slave.prepare.wheelhouse import (
    download_wheels,
    requirements_from_guest,
)

__all__ = [
    "ChecksumMismatch",
    "DependencyUnavailable",
    "FetchFailed",
    "GuestTarget",
    "HttpTimeouts",
    "MetadataError",
    "PipOptions",
    "PrepareError",
    "PreparedRelease",
    "ReleaseNotFound",
    "ReleaseRequest",
    "TestDependencies",
    "download_wheels",
    "find_test_dependencies",
    "prepare_release",
    "requirements_from_guest",
]
