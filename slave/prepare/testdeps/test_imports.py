"""Well-known test libraries and pytest plugins the sdist's tests use, when nothing
declares them.

Older sdists often ship their tests without the file that lists what they need (the
repository's tox.ini or requirements file stayed out of the sdist): mccabe 0.7.0's
``test_mccabe.py`` imports ``hypothesis`` and ``hypothesmith``, declared nowhere in
the sdist, and cannot be collected without them. The host reads the test modules'
import lines as text (never running or even compiling them) and adds the libraries
among them that are known test tools (`TEST_LIBRARIES`, import name → distribution).

A pytest plugin is often used without an import: its marker (``@pytest.mark.asyncio``),
its fixture (a test taking ``mocker``), its configuration key (``asyncio_mode =
strict`` in setup.cfg, pytest.ini, tox.ini or ``[tool.pytest.ini_options]``), or
``pytest_plugins = ["pytest_asyncio"]`` in a conftest. async-timeout 5.0.1 declares
pytest-asyncio only in a root requirements.txt; without the plugin pytest skips every
``async def`` test as "not natively supported" and fails it. Those signs are read
the same way (`plugins_used`), each mapped to the one plugin that defines it.

Only these lists: an import name is not a distribution name, and installing whatever
PyPI project happens to carry an imported name would bring an unrelated (possibly
hostile) project into the job and blame its behaviour on the release under test.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping

from slave.prepare.metadata import imported_names

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
#: Markers (``@pytest.mark.NAME``) that only one plugin defines.
PLUGIN_MARKERS: dict[str, str] = {
    "asyncio": "pytest-asyncio",
    "trio": "pytest-trio",
    "django_db": "pytest-django",
    "httpx_mock": "pytest-httpx",
    "anyio": "anyio",
}
#: Fixtures (a test or fixture function's parameter) that only one plugin provides. Not
#: ``benchmark`` (pytest-benchmark and pytest-codspeed), ``httpserver`` (pytest-httpserver
#: and pytest-localserver), ``freezer`` or ``aiohttp_client`` (aiohttp's own plugin):
#: adding the wrong one beside the declared one would change the suite.
PLUGIN_FIXTURES: dict[str, str] = {
    "mocker": "pytest-mock",
    "httpx_mock": "pytest-httpx",
    "requests_mock": "requests-mock",
    "anyio_backend": "anyio",
}
#: pytest configuration keys that only one plugin reads.
PLUGIN_INI_KEYS: dict[str, str] = {
    "asyncio_mode": "pytest-asyncio",
    "asyncio_default_fixture_loop_scope": "pytest-asyncio",
    "trio_mode": "pytest-trio",
    "mock_use_standalone_module": "pytest-mock",
    "DJANGO_SETTINGS_MODULE": "pytest-django",
    "django_find_project": "pytest-django",
}
_MARKER = re.compile(r"\bmark\.([A-Za-z_]\w*)")
_SIGNATURE = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+\w+[ \t]*\(([^)]*)\)", re.MULTILINE)
_INI_KEY = re.compile(r"^[ \t]*([A-Za-z_]\w*)[ \t]*[=:]", re.MULTILINE)
_PYTEST_PLUGINS = re.compile(r"^pytest_plugins[ \t]*=([^\n]*(?:\n[ \t]+[^\n]*)*)", re.MULTILINE)
_QUOTED = re.compile(r"""["']([A-Za-z_][\w.]*)["']""")
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
        for name in imported_names(source):
            dist = TEST_LIBRARIES.get(name)
            if dist is not None and dist not in found:
                found.append(dist)
    return found


def imported_modules(modules: Mapping[str, bytes]) -> set[str]:
    """The top-level names ``modules`` (path → source) import, read as text."""
    return {name for source in modules.values() for name in imported_names(source)}


#: ``from a.b import c, d`` (names up to the line's end or a closing parenthesis) and
#: ``import a.b.c``: dotted imports, which name a module inside a package
_FROM_DOTTED = re.compile(
    r"^[ \t]*from[ \t]+([A-Za-z_][\w.]*)[ \t]+import[ \t]+\(?([\w \t,]+)", re.MULTILINE
)
_IMPORT_DOTTED = re.compile(r"^[ \t]*import[ \t]+([A-Za-z_]\w*(?:\.\w+)+)", re.MULTILINE)


def reached_modules(
    modules: Mapping[str, bytes], module_imports: Mapping[str, frozenset[str]]
) -> set[str]:
    """The top-level names imported by the release's own modules that ``modules`` (the
    tests, path → source) import by a dotted name, each by that one module alone:
    ``from oauthlib import signals`` and ``from oauthlib.signals import x`` reach
    ``oauthlib/signals.py``, the one module that imports ``blinker``: a feature's own
    dependency. A name more modules import is not taken (requests' ``help.py``,
    ``__init__.py`` and ``packages.py`` all try ``chardet``, an alternative requests
    prefers when present, which its CI does not install). ``module_imports`` is
    `SdistContents.module_imports` (sdist path → names); a package's ``__init__.py`` is
    never reached (it imports what every user of the package gets)."""
    dotted: set[str] = set()
    for source in modules.values():
        text = source.decode("utf-8", errors="replace")
        for package, names in _FROM_DOTTED.findall(text):
            dotted.add(package)
            dotted.update(f"{package}.{n.strip()}" for n in names.split(",") if n.strip())
        dotted.update(_IMPORT_DOTTED.findall(text))
    importers: dict[str, int] = {}
    for names in module_imports.values():
        for imported in names:
            importers[imported] = importers.get(imported, 0) + 1
    reached: set[str] = set()
    for name in dotted:
        if "." not in name:
            continue
        path = name.replace(".", "/") + ".py"
        for candidate in (path, f"src/{path}"):
            reached |= {n for n in module_imports.get(candidate, ()) if importers[n] == 1}
    return reached


def plugins_used(modules: Mapping[str, bytes], configs: Iterable[str] = ()) -> list[str]:
    """Plugins the tests use without importing them: `PLUGIN_MARKERS` and
    `PLUGIN_FIXTURES` in ``modules`` (path → source), `PLUGIN_INI_KEYS` in ``configs``
    (the texts of setup.cfg, pytest.ini, tox.ini; pyproject's keys as ``key =`` lines),
    and `TEST_LIBRARIES` named by a conftest's ``pytest_plugins``; in the order first seen."""
    found: list[str] = []

    def take(dist: str | None) -> None:
        if dist is not None and dist not in found:
            found.append(dist)

    for source in modules.values():
        text = source.decode("utf-8", errors="replace")
        for marker in _MARKER.findall(text):
            take(PLUGIN_MARKERS.get(marker))
        for parameters in _SIGNATURE.findall(text):
            for parameter in parameters.split(","):
                take(PLUGIN_FIXTURES.get(re.split(r"[:=]", parameter)[0].strip()))
        for listed in _PYTEST_PLUGINS.findall(text):
            for name in _QUOTED.findall(listed):
                take(TEST_LIBRARIES.get(name.split(".", 1)[0]))
    for config in configs:
        for key in _INI_KEY.findall(config):
            take(PLUGIN_INI_KEYS.get(key))
    return found
