"""``pyti --version`` names the installed distribution, pyti-infra, and its version."""

from __future__ import annotations

import importlib.metadata

import pytest

from pyti.cli import DISTRIBUTION, main


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints `pyti VERSION (pyti-infra)` from the package metadata and exits 0."""
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    version = importlib.metadata.version(DISTRIBUTION)
    assert capsys.readouterr().out == f"pyti {version} (pyti-infra)\n"
