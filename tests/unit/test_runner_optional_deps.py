"""Failures that only lacked one of the release's optional dependencies (an extra not installed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from guest_runner.apart import Apart
from guest_runner.junit import parse_junit
from guest_runner.optional_deps import lacked_optional, missing_optional
from tests.fakes.pytest_junit import junit_of

METADATA = """\
Metadata-Version: 2.1
Name: oauthlib
Version: 4.0.1
Requires-Dist: requests>=2
Provides-Extra: rsa
Requires-Dist: cryptography>=3.0.0; extra == "rsa"
Provides-Extra: signedtoken
Requires-Dist: cryptography>=3.0.0; extra == "signedtoken"
Requires-Dist: PyJWT<3,>=2.0.0; extra == 'signedtoken'
Provides-Extra: signals
Requires-Dist: blinker>=1.4.0; extra == "signals"
Provides-Extra: http
Requires-Dist: requests[socks]; extra == "http"

the description, which may quote a header:
Requires-Dist: nothing-real; extra == "x"
"""


def site_with(tmp_path: Path, *installed: str) -> tuple[Path, Path]:
    site = tmp_path / "site-packages"
    info = site / "oauthlib-4.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(METADATA)
    for name in installed:
        (site / f"{name}-1.0.dist-info").mkdir()
    return site, info


def test_the_extras_requirements_the_venv_lacks_by_the_names_they_are_imported_as(
    tmp_path: Path,
) -> None:
    site, info = site_with(tmp_path, "cryptography", "requests")
    optional = missing_optional(site, info)
    # PyJWT by its names (jwt among them); blinker; never a base requirement (requests),
    # nor one installed (cryptography)
    assert optional["jwt"] == "PyJWT"
    assert optional["blinker"] == "blinker"
    assert "requests" not in optional
    assert "cryptography" not in optional
    assert "nothing_real" not in optional
    assert missing_optional(site, None) == {}
    site, info = site_with(tmp_path / "all", "cryptography", "PyJWT", "blinker")
    assert missing_optional(site, info) == {}


@pytest.mark.parametrize(
    ("error", "lacked"),
    [
        ("E   RuntimeError: signalling support is unavailable because the blinker library is"
         " not installed.", "blinker"),
        ("E   ModuleNotFoundError: No module named 'jwt'", "PyJWT"),
        ("E   ImportError: PyJWT is required to sign tokens", "PyJWT"),
        # the name without words of absence, a module that is not optional, a real failure
        ("E   AssertionError: blinker sent 2 signals, expected 1", None),
        ("E   ModuleNotFoundError: No module named 'numpy'", None),
        ("E   AssertionError: assert 1 == 2", None),
    ],
)  # fmt: skip
def test_an_error_that_says_an_optional_dependency_is_not_there(
    error: str, lacked: str | None
) -> None:
    optional = {"blinker": "blinker", "jwt": "PyJWT", "pyjwt": "PyJWT"}
    assert lacked_optional(f"def test_x():\n>   sign()\n{error}", optional) == lacked
    assert lacked_optional(error, {}) is None


def test_a_real_pytest_run_counts_them_with_the_modules_not_installed(tmp_path: Path) -> None:
    """A real pytest run: a test whose release code says blinker is not installed counts in
    ``module_failures`` (named blinker) when blinker is an optional dependency the venv
    lacks; without that knowledge, or beside a real failure, it stays the release's."""
    module = (
        "def test_signal():\n"
        "    raise RuntimeError('signalling support is unavailable because the blinker'\n"
        "                       ' library is not installed.')\n\n"
        "def test_ok():\n    pass\n"
    )
    junit = junit_of(tmp_path, {"tests/test_signals.py": module})
    summary = parse_junit(junit, apart=Apart(optional={"blinker": "blinker"}))
    assert summary["module_failures"] == {
        "count": 1,
        "tests": ["tests/test_signals.py::test_signal"],
        "modules": ["blinker"],
    }
    assert summary["first_failure"] is None
    plain = parse_junit(junit)
    assert plain["module_failures"]["count"] == 0
    assert plain["first_failure"]["test"] == "tests/test_signals.py::test_signal"
