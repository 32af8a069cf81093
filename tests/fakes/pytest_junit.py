"""A real pytest run on a small sdist-like tree, writing JUnit XML as the guest's tests
phase asks for it (``-o junit_family=xunit1 --continue-on-collection-errors``), for the
tests of the runner's JUnit readers. The tree is the test's own code, never a package's.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def junit_of(root: Path, files: Mapping[str, str]) -> Path:
    """Write ``files`` (path in the tree → text) under ``root``, run pytest on its
    ``tests`` folder from ``root``, and return the JUnit XML it wrote."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    out = root / "junit.xml"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={out}"]
    subprocess.run(
        [*argv, "-o", "junit_family=xunit1", "--continue-on-collection-errors", "tests"],
        cwd=root,
        capture_output=True,
        check=False,
        timeout=120,
    )
    return out
