"""Preparation errors say whose fault they are: the job's outcome and its one-line reason."""

from __future__ import annotations

from protocol.vocabulary import Outcome
from slave.prepare.errors import (
    ChecksumMismatch,
    DependencyUnavailable,
    FetchFailed,
    MetadataError,
    ReleaseNotFound,
)


def test_malformed_metadata_is_the_packages_failure() -> None:
    """A release whose metadata cannot be read is failed (never retried), with the reason."""
    exc = MetadataError("demo-1.0.tar.gz", "metadata without Name or Version")
    assert exc.outcome is Outcome.FAILED
    assert exc.reason_line() == (
        "the release's files are malformed: demo-1.0.tar.gz: metadata without Name or Version"
    )


def test_nothing_to_test_is_incomplete() -> None:
    """No file for the guest, all yanked, no wheel for a dependency: could not test."""
    assert ReleaseNotFound("demo", "1.0", "wheel not for x86_64").outcome is Outcome.INCOMPLETE
    assert ReleaseNotFound("demo", "1.0", "yanked").outcome is Outcome.INCOMPLETE
    missing = DependencyUnavailable(["numpy<1"], "No matching distribution found for numpy<1")
    assert missing.outcome is Outcome.INCOMPLETE
    assert missing.reason_line().startswith("could not test: dependencies unavailable (numpy<1)")


def test_the_index_or_our_machinery_is_infra_error() -> None:
    """Fetch failures, checksum mismatches, an index that lags, a pip that hangs: retried."""
    for exc in (
        FetchFailed("https://pypi.example/x", "HTTP 503"),
        ChecksumMismatch("a.whl", "0" * 64, "1" * 64),
        ReleaseNotFound("demo", "1.0", "not on the index"),
        DependencyUnavailable(["x"], "pip timed out after 300s"),
    ):
        assert exc.outcome is Outcome.INFRA_ERROR, exc
        assert exc.reason_line().startswith("pyti could not prepare the job: ")
