"""Test dependencies of a release, read statically from where projects declare them.

Nothing here runs project code (no ``noxfile.py``, no ``setup.py``, no build
backend): the sources are data in the release files, read through `SafeArchive` by
`read_sdist_metadata` (``also=wanted_file``) in one pass over the sdist. In order:

1. extras named ``test``/``tests``/``testing``/``dev`` (wheel METADATA, PKG-INFO,
   pyproject ``[project.optional-dependencies]``) -> ``extra:<name>``;
2. PEP 735 ``[dependency-groups]`` of the same names, ``{include-group = ...}``
   followed, cycles cut -> ``dependency-groups:<name>``;
3. tox: ``tox.ini`` ``[testenv]`` ``deps``/``extras``/``dependency_groups`` ->
   ``tox.ini`` (a factor-conditional line only when its condition names a test
   factor: ``unit: pytest``, ``extras = unit: diagrams``); pyproject ``[tool.tox]``
   (``legacy_tox_ini`` or the native
   ``env_run_base``) -> ``pyproject:tool.tox``;
4. hatch: ``[tool.hatch.envs.test|tests|hatch-test|default]`` ``dependencies``,
   ``extra-dependencies``, ``features`` -> ``hatch:<env>``;
5. ``[tool.pdm.dev-dependencies]`` and poetry's ``[tool.poetry.group.<name>]`` /
   ``[tool.poetry.dev-dependencies]`` -> ``pdm:<group>``, ``poetry:<group>``;
6. requirement files named for tests (``test-requirements.txt``,
   ``requirements-test*.txt``, ``requirements*/test*.txt``, ``tests/requirements.txt``
   ...) -> their path; files named for dev (``requirements-dev.txt``,
   ``dev-requirements.txt``, ``requirements/dev*.txt``) only when no test-named
   file exists (they are often pinned lock files of every tool); with neither, a root
   ``requirements.txt`` that installs the project itself (``-e .``: a development
   environment, async-timeout) -> ``requirements.txt``. ``-r``/``-c``
   includes are followed inside the sdist only (depth `requirement_files.MAX_DEPTH`); ``-e``, URLs,
   local paths and options are skipped (``.[extra]`` means the project's own extra).

7. when none of these names ``pytest``: extras, dependency groups, hatch environments
   and poetry/pdm groups of any other name that list it (idna keeps pytest and
   hypothesis in its ``all`` extra; soupsieve its test dependencies in the hatch
   ``dev`` environment), as a dev source -> ``extra:<name>``,
   ``dependency-groups:<name>``, ``hatch:<env>``, ``poetry:<group>``, ``pdm:<group>``.

8. always, last: well-known test tools (`test_imports.TEST_LIBRARIES`: hypothesis,
   mock, freezegun, pytest plugins...) that the sdist's test modules import and no
   source above declared (mccabe 0.7.0's tests import hypothesis; its sdist declares
   nothing) -> ``imports:tests``. Only that list: an imported name is not a
   distribution name.

9. always, last: pytest plugins the tests use without importing them, by a marker,
   fixture or setting only that plugin has (``@pytest.mark.asyncio``, ``mocker``,
   ``asyncio_mode = strict``; `test_imports.plugins_used`) -> ``plugins:tests``.
10. always, last: the release's own extras (a feature each) whose requirements provide
   a module the test modules import, whole, tooling dropped (`DEV_TOOLING`); never a
   docs, lint, typing or release extra: oauthlib's tests ``import jwt``, so its
   ``signedtoken`` extra (pyjwt, and the cryptography pyjwt signs with) ->
   ``imports:extra:<name>``. Which modules a requirement provides is guessed from its
   name (`guest_runner.optional_deps.import_names`: ``pyjwt`` -> ``jwt``, ``python-dateutil`` ->
   ``dateutil``): only ever among the release's own extras. A module of the release that
   the tests import by its dotted name counts with them for what it alone imports
   (`test_imports.reached_modules`): oauthlib's tests ``from oauthlib import signals``,
   the one module importing blinker, so its ``signals`` extra too.
11. then, pytest and its plugins (``pytest-*``) left unpinned are pinned to the
   version the sdist's ``uv.lock`` (or ``poetry.lock``) locks for the guest's Python,
   when that version satisfies what was declared (`locks`) -> ``lock:uv.lock``.

Markers are evaluated for the guest. The project itself is dropped and its own
extras (``pkg[test]``, ``.[test]``) expanded. Each project name appears once, with
the first source's specifier (sources in the order above), so sources never
conflict with each other; names the release needs at runtime are left to the
runtime requirement. ``pytest`` is added when nothing names it.

Sources named ``dev`` are broad: tooling that never affects test results is dropped
from them (`DEV_TOOLING`); test-named sources are taken whole (a sphinx extension's
tests need sphinx).

Modules: ``requirement_files`` (which files, their lines and includes), ``pyproject``
(tables, PEP 735 groups, poetry versions), ``tox`` (``[testenv]`` values),
``collector`` (`Collector`: names once, markers, own extras, `DEV_TOOLING`), and
``sources`` (`find_test_dependencies`: every source in the order above).
"""

from slave.prepare.testdeps.collector import DEV_TOOLING
from slave.prepare.testdeps.requirement_files import wanted_file
from slave.prepare.testdeps.sources import (
    DEV_NAMES,
    TEST_NAMES,
    TestDependencies,
    find_test_dependencies,
)
from slave.prepare.testdeps.test_imports import is_test_module

__all__ = [
    "DEV_NAMES",
    "DEV_TOOLING",
    "TEST_NAMES",
    "TestDependencies",
    "find_test_dependencies",
    "is_test_module",
    "wanted_file",
]
