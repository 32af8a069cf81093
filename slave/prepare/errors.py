"""Errors of host-side preparation. All of them make the job an ``infra_error``.

::

    SlaveError
     └── PrepareError
          ├── ReleaseNotFound        no such project/version, or nothing usable
          │                          (all yanked, no file for the guest) (``project``,
          │                          ``version``, ``reason``)
          ├── FetchFailed            the index or a file could not be fetched: network
          │                          error, timeout, HTTP error (``url``, ``reason``)
          ├── ChecksumMismatch       a file's sha256 is not the advertised one
          │                          (``filename``, ``expected``, ``actual``)
          ├── DependencyUnavailable  pip could not get a dependency as a wheel for
          │                          the guest (``requirements``, ``reason`` = pip's message)
          └── MetadataError          a release file's metadata is unreadable or unsafe
                                     (``filename``, ``reason``)
"""

from __future__ import annotations

from collections.abc import Sequence

from slave.errors import SlaveError


class PrepareError(SlaveError):
    """Root of host-side preparation errors."""


class ReleaseNotFound(PrepareError):
    """The release does not exist, or none of its files can be used."""

    def __init__(self, project: str, version: str | None, reason: str) -> None:
        label = f"{project}=={version}" if version else project
        super().__init__(f"{label}: {reason}")
        self.project = project
        self.version = version
        self.reason = reason


class FetchFailed(PrepareError):
    """A request to the index or a file host failed (after its timeout, if any)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class ChecksumMismatch(PrepareError):
    """A downloaded or uploaded file does not have the expected sha256."""

    def __init__(self, filename: str, expected: str, actual: str) -> None:
        super().__init__(f"{filename}: sha256 {actual} does not match expected {expected}")
        self.filename = filename
        self.expected = expected
        self.actual = actual


class DependencyUnavailable(PrepareError):
    """Some requirement cannot be had as a binary wheel for the guest."""

    def __init__(self, requirements: Sequence[str], reason: str) -> None:
        super().__init__(f"dependencies unavailable ({', '.join(requirements)}): {reason}")
        self.requirements = list(requirements)
        self.reason = reason

    @property
    def unsatisfiable(self) -> bool:
        """The release asks for what nobody can give (no such distribution, a URL), as
        opposed to the host failing to fetch it (network, index, timeout)."""
        return any(words in self.reason for words in _UNSATISFIABLE)


_UNSATISFIABLE = ("No matching distribution found for", "direct URL references are not fetched")


class MetadataError(PrepareError):
    """A release file's metadata cannot be read safely."""

    def __init__(self, filename: str, reason: str) -> None:
        super().__init__(f"{filename}: {reason}")
        self.filename = filename
        self.reason = reason
