"""Errors of host-side preparation, and the outcome each one gives the job.

``PrepareError.outcome`` says whose fault it is: ``infra_error`` (ours or the
index's: retried by the master), ``failed`` (the package's own fault: never
retried) or ``incomplete`` (nothing pyti could test: never retried).
``reason_line()`` is the job's one-line ``summary.reason``.

::

    SlaveError
     └── PrepareError
          ├── ReleaseNotFound        no such project/version (infra_error: the index may
          │                          lag), or nothing usable: all yanked, no file for the
          │                          guest (incomplete) (``project``, ``version``, ``reason``)
          ├── FetchFailed            the index or a file could not be fetched: network
          │                          error, timeout, HTTP error (infra_error) (``url``, ``reason``)
          ├── ChecksumMismatch       a file's sha256 is not the advertised one
          │                          (infra_error) (``filename``, ``expected``, ``actual``)
          ├── DependencyUnavailable  pip could not get a dependency as a wheel for the
          │                          guest (incomplete; a pip timeout is infra_error)
          │                          (``requirements``, ``reason`` = pip's message)
          └── MetadataError          a release file's metadata is unreadable or unsafe:
                                     the package's fault (failed) (``filename``, ``reason``)
"""

from __future__ import annotations

from collections.abc import Sequence

from protocol.vocabulary import Outcome
from slave.errors import SlaveError

#: ``ReleaseNotFound`` reasons that are the index's answer, not the release's state.
_INDEX_REASONS = frozenset({"not on the index"})
_PIP_TIMEOUT = "pip timed out"


class PrepareError(SlaveError):
    """Root of host-side preparation errors; ``outcome`` is the job's (module docstring)."""

    outcome: Outcome = Outcome.INFRA_ERROR

    def reason_line(self) -> str:
        """The job's ``summary.reason``: what went wrong, in one line."""
        text = " ".join(str(self).split())
        match self.outcome:
            case Outcome.FAILED:
                text = f"the release's files are malformed: {text}"
            case Outcome.INCOMPLETE:
                text = f"could not test: {text}"
            case _:
                text = f"pyti could not prepare the job: {text}"
        return text[:300]


class ReleaseNotFound(PrepareError):
    """The release does not exist, or none of its files can be used."""

    def __init__(self, project: str, version: str | None, reason: str) -> None:
        label = f"{project}=={version}" if version else project
        super().__init__(f"{label}: {reason}")
        self.project = project
        self.version = version
        self.reason = reason
        self.outcome = Outcome.INFRA_ERROR if reason in _INDEX_REASONS else Outcome.INCOMPLETE


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
        # No wheel for the guest is the release's situation; a pip that hung is ours.
        transient = reason.startswith(_PIP_TIMEOUT)
        self.outcome = Outcome.INFRA_ERROR if transient else Outcome.INCOMPLETE

    @property
    def unsatisfiable(self) -> bool:
        """The release asks for what nobody can give (no such distribution, a URL), as
        opposed to the host failing to fetch it (network, index, timeout)."""
        return any(words in self.reason for words in _UNSATISFIABLE)


_UNSATISFIABLE = ("No matching distribution found for", "direct URL references are not fetched")


class MetadataError(PrepareError):
    """A release file's metadata cannot be read safely: the package's own fault."""

    outcome = Outcome.FAILED

    def __init__(self, filename: str, reason: str) -> None:
        super().__init__(f"{filename}: {reason}")
        self.filename = filename
        self.reason = reason
