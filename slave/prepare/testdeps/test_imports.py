"""Well-known test libraries the sdist's test modules import, when nothing declares them.

Older sdists often ship their tests without the file that lists what they need (the
repository's tox.ini or requirements file stayed out of the sdist): mccabe 0.7.0's
``test_mccabe.py`` imports ``hypothesis`` and ``hypothesmith``, declared nowhere in
the sdist, and cannot be collected without them. The host reads the test modules'
import lines as text (never running or even compiling them) and adds the libraries
among them that are known test tools (`TEST_LIBRARIES`, import name → distribution).

Only that list: an import name is not a distribution name, and installing whatever
PyPI project happens to carry an imported name would bring an unrelated (possibly
hostile) project into the job and blame its behaviour on the release under test.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping

#: Import name → distribution of test tools that projects import in their tests.
TEST_LIBRARIES: dict[str, str] = {
    "hypothesis": "hypothesis",
    "hypothesmith": "hypothesmith",
    "mock": "mock",
    "freezegun": "freezegun",
    "time_machine": "time-machine",
    "responses": "responses",
    "requests_mock": "requests-mock",
    "respx": "respx",
    "pretend": "pretend",
    "trustme": "trustme",
    "flaky": "flaky",
    "testfixtures": "testfixtures",
    "parameterized": "parameterized",
    "pyfakefs": "pyfakefs",
    "syrupy": "syrupy",
    "pytest_mock": "pytest-mock",
    "pytest_asyncio": "pytest-asyncio",
    "pytest_benchmark": "pytest-benchmark",
    "pytest_httpserver": "pytest-httpserver",
    "pytest_lazyfixture": "pytest-lazy-fixture",
    "pytest_subtests": "pytest-subtests",
    "pytest_timeout": "pytest-timeout",
    "hamcrest": "PyHamcrest",
    "dirty_equals": "dirty-equals",
    "inline_snapshot": "inline-snapshot",
}
_IMPORT = re.compile(r"^[ \t]*(?:import|from)[ \t]+([A-Za-z_]\w*)", re.MULTILINE)
#: Test modules read: ``tests/``, ``test/`` and ``testing/`` trees (3 levels at most),
#: and ``test_*.py`` / ``*_test.py`` / ``conftest.py`` anywhere 2 levels deep.
_TEST_DIRS = ("tests/", "test/", "testing/", "src/tests/")


def is_test_module(relative: str) -> bool:
    """Whether the sdist member ``relative`` is a test module read for its imports."""
    if not relative.endswith(".py"):
        return False
    name = posixpath.basename(relative)
    if relative.startswith(_TEST_DIRS) and relative.count("/") <= 3:
        return True
    if relative.count("/") > 2:
        return False
    return name == "conftest.py" or name.startswith("test_") or name.endswith("_test.py")


def imported_test_libraries(modules: Mapping[str, bytes]) -> list[str]:
    """Distributions of `TEST_LIBRARIES` imported by ``modules`` (path → source), in the
    order first seen."""
    found: list[str] = []
    for source in modules.values():
        for name in _imports(source.decode("utf-8", errors="replace")):
            dist = TEST_LIBRARIES.get(name)
            if dist is not None and dist not in found:
                found.append(dist)
    return found


def _imports(text: str) -> Iterable[str]:
    return (match.group(1) for match in _IMPORT.finditer(text))
