"""Failed tests counted apart: only the guest being offline, only a speed check, only
a program the guest does not have, only a file the sdist does not ship, only a module
that is not installed, an ``async def`` test that no installed plugin runs, a lint
plugin's check, or a test that passes when its module runs as the script it is
written as.

The JUnit reader (:mod:`guest_runner.junit`) and the progress-file reader
(:mod:`guest_runner.progress`) both sort a failed test by its failure texts with
:class:`Apart`: offline when every text shows only the missing network
(:func:`~guest_runner.offline.is_offline_failure`), else a speed check when every text
is one (:func:`~guest_runner.speed_checks.is_speed_failure`), else a missing program
when every text is a run of the same kind (:func:`~guest_runner.missing_programs.missing_program`),
else a file the sdist does not ship when every text is a read of one
(:func:`~guest_runner.unshipped_files.unshipped_file`; only with the sdist's ``root``),
else a module that is not installed when every text is a test's import of one
(:func:`~guest_runner.release_fault.missing_module`: none of the release's, raised
outside its code) or says one of the release's optional dependencies is not there
(:func:`~guest_runner.optional_deps.lacked_optional`: an extra's requirement the venv
lacks, named with words of absence: oauthlib's "the blinker library is not installed").
Before all of them, a lint plugin's item (`LINT_ITEMS`: pytest-ruff's ``path::ruff``,
pytest-flake8's, pytest-mypy's...): the style rules of the newest linter installed here,
not the package's behaviour (jsonpickle's ``--ruff`` checks failed on rules newer than
its release). Then pytest's own "async def functions are not natively supported"
(`NO_ASYNC_PLUGIN`): the suite's async plugin (pytest-asyncio, anyio, pytest-trio...)
was neither declared nor recognisable by its marker, fixture or setting, so the test
never ran; upstream CI has that plugin. So is pytest's "fixture 'benchmark' not found"
for a fixture only a plugin provides (`PLUGIN_FIXTURE_NAMES`).
Last, a base class's test (`Apart.base_class`): ``path::Base::test_x`` failed only on
``AttributeError: 'Base' object has no attribute 'parse'`` while ``path::Sub::test_x``
passed. The method needs what a subclass supplies; pytest collects every
``unittest.TestCase`` subclass, so the abstract base runs too, where the project's own
runner builds its suite from the subclasses (defusedxml's ``tests.py``: 11 such
failures of ``BaseTests``, whose 7 subclasses pass the same methods).
The failures set apart by none are kept (up to `MAX_REAL`) with their error line: the
first is the one the job's reason names, and the tests phase may still set some apart
as passing when their module runs as the script it is written as
(:mod:`guest_runner.script_reruns`, `Apart.passed_as_scripts`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from guest_runner.missing_programs import missing_program
from guest_runner.offline import is_offline_failure
from guest_runner.optional_deps import lacked_optional
from guest_runner.release_fault import error_of, missing_module
from guest_runner.speed_checks import is_speed_failure
from guest_runner.unshipped_files import unshipped_file

#: The items lint plugins add beside a module's tests (pytest-ruff's ``path::ruff``,
#: pytest-flake8's ``path::flake-8::FLAKE8``, pytest-mypy's ``path::mypy``...), by the end
#: of their node id (lower case), and the tool each runs.
LINT_ITEMS = {
    "ruff": "ruff", "ruff::format": "ruff", "flake-8::flake8": "flake8", "flake8": "flake8",
    "flake8-check": "flake8", "mypy": "mypy", "mypy-status": "mypy", "black": "black",
    "isort": "isort", "pylint": "pylint", "pycodestyle": "pycodestyle",
    "codestyle": "pycodestyle", "pep8-check": "pep8", "flakes": "pyflakes",
    "pydocstyle": "pydocstyle", "mccabe": "mccabe",
}  # fmt: skip
#: pytest's failure for a coroutine test no plugin took (pytest ≥ 8.4; it skipped before).
NO_ASYNC_PLUGIN = re.compile(r"async def functions are not natively supported")
#: pytest's error for a test asking for a fixture nothing provides
MISSING_FIXTURE = re.compile(r"fixture '(\w+)' not found")
#: Fixtures that only a pytest plugin provides: a test asking for one when no plugin
#: provides it never ran (xxhash's benchmarks take ``benchmark``, pytest-benchmark's or
#: pytest-codspeed's, which its sdist declares nowhere). A name outside this list may be
#: the suite's own fixture gone missing: that stays a failure.
PLUGIN_FIXTURE_NAMES = frozenset(
    {
        "benchmark", "mocker", "class_mocker", "module_mocker", "session_mocker",
        "httpserver", "httpx_mock", "requests_mock", "respx_mock", "aioresponses",
        "freezer", "time_machine", "aiohttp_client", "aiohttp_server", "aiohttp_raw_server",
        "event_loop", "unused_tcp_port", "anyio_backend", "snapshot", "celery_app",
        "celery_worker", "django_db_setup", "live_server", "admin_client", "rf", "qtbot",
        "xprocess", "httpbin", "datadir", "shared_datadir", "fs", "faker", "lazy_fixture",
    }
)  # fmt: skip
#: a test's own instance lacking an attribute: ``AttributeError: 'Base' object has no
#: attribute 'parse'`` (the class's name is compared with the test's)
_OWN_ATTRIBUTE = re.compile(r"AttributeError: '([A-Za-z_]\w*)' object has no attribute '\w+'")
#: Test ids listed per kind (the counts are complete).
MAX_LISTED = 50
#: Characters kept of a failure's error line.
ERROR_CHARS = 200
#: Failures set apart by none that are kept, in order.
MAX_REAL = 2000


class Apart:
    """Counts and lists (up to `MAX_LISTED`) the failed tests that are offline-only,
    speed-check-only, missing-program-only, unshipped-file-only or async-plugin-only,
    and keeps the first failure that is none. ``root`` is the sdist's tree the tests ran
    from (None: a wheel-only release's installed package), ``modules`` the release's
    top-level ones."""

    def __init__(
        self,
        root: Path | None = None,
        modules: Sequence[str] = (),
        optional: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.modules = tuple(modules)
        #: the release's optional dependencies the venv lacks (`missing_optional`)
        self.optional = optional or {}
        self.files: dict[str, Any] = {"count": 0, "tests": [], "files": []}
        self.offline: dict[str, Any] = {"count": 0, "tests": []}
        self.speed: dict[str, Any] = {"count": 0, "tests": []}
        self.programs: dict[str, Any] = {"count": 0, "tests": [], "programs": []}
        self.plugins: dict[str, Any] = {"count": 0, "tests": []}
        self.absent: dict[str, Any] = {"count": 0, "tests": [], "modules": []}
        self.lint: dict[str, Any] = {"count": 0, "tests": [], "tools": []}
        self.scripts: dict[str, Any] = {"count": 0, "tests": [], "modules": []}
        self.bases: dict[str, Any] = {"count": 0, "tests": [], "classes": []}
        #: (file, test name) → the classes in which it passed (`passed`)
        self._passed: dict[tuple[str, str], set[str]] = {}
        #: the failures not set apart, in order: ``{test, error}`` (its error's first line)
        self.real: list[dict[str, str]] = []

    def add(self, node: str, texts: list[str]) -> None:
        """Sort the failed test ``node`` by its failure ``texts`` (none: not set apart)."""
        if not texts:
            return
        if tool := lint_tool(node):
            kind = self.lint
            _list_new(kind["tools"], [tool])
        elif all(NO_ASYNC_PLUGIN.search(text) or plugin_fixture(text) for text in texts):
            kind = self.plugins
        elif all(is_offline_failure(text) for text in texts):
            kind = self.offline
        elif all(is_speed_failure(node, text) for text in texts):
            kind = self.speed
        elif all(missing := [missing_program(text) for text in texts]):
            kind = self.programs
            _list_new(kind["programs"], missing)
        elif all(absent := [unshipped_file(text, self.root, self.modules) for text in texts]):
            kind = self.files
            _list_new(kind["files"], absent)
        elif all(lacked := [self._lacked(text) for text in texts]):
            kind = self.absent
            _list_new(kind["modules"], lacked)
        elif base := self.base_class(node, texts):
            kind = self.bases
            _list_new(kind["classes"], [base])
        else:
            if len(self.real) < MAX_REAL:
                self.real.append({"test": node[:300], "error": error_line(texts[0])})
            return
        kind["count"] += 1
        if len(kind["tests"]) < MAX_LISTED:
            kind["tests"].append(node)

    def _lacked(self, text: str) -> str | None:
        """A module the failure only lacked: one a test imports, or one of the release's
        optional dependencies its extras name and the venv lacks."""
        return missing_module(text, self.modules, self.root) or lacked_optional(text, self.optional)

    def passed(self, node: str) -> None:
        """Note that the test ``node`` passed (before `add` sorts the failures)."""
        parts = node.split("::")
        if len(parts) >= 3:
            self._passed.setdefault((parts[0], parts[-1]), set()).add("::".join(parts[1:-1]))

    def base_class(self, node: str, texts: list[str]) -> str | None:
        """The class of the failed test ``node`` when it is a base whose test needs what
        its subclasses supply: each failure is its own instance lacking an attribute, and
        the same test of the same file passed in another class (`passed`)."""
        parts = node.split("::")
        if len(parts) < 3:
            return None
        owner = parts[-2]
        for text in texts:
            own = _OWN_ATTRIBUTE.match(error_of(text))
            if own is None or own.group(1) != owner:
                return None
        elsewhere = self._passed.get((parts[0], parts[-1]), set()) - {"::".join(parts[1:-1])}
        return f"{parts[0]}::{'::'.join(parts[1:-1])}" if elsewhere else None

    def passed_as_scripts(self, tests: Sequence[str], modules: Sequence[str]) -> None:
        """Set apart the failures ``tests`` (kept in `real`): their ``modules`` passed when
        run as the scripts they are written as."""
        gone = set(tests)
        self.real = [f for f in self.real if f["test"] not in gone]
        self.scripts["count"] += len(gone)
        self.scripts["tests"] = [*self.scripts["tests"], *tests][:MAX_LISTED]
        _list_new(self.scripts["modules"], list(modules))

    def fields(self) -> dict[str, Any]:
        """``offline_failures``, ``speed_failures``, ``program_failures``,
        ``unshipped_failures``, ``plugin_failures``, ``module_failures``,
        ``lint_failures``, ``script_failures``, ``base_failures`` and ``first_failure``
        of a ``tests_summary``."""
        return {
            "offline_failures": self.offline,
            "speed_failures": self.speed,
            "program_failures": self.programs,
            "unshipped_failures": self.files,
            "plugin_failures": self.plugins,
            "module_failures": self.absent,
            "lint_failures": self.lint,
            "script_failures": self.scripts,
            "base_failures": self.bases,
            "first_failure": self.real[0] if self.real else None,
        }


def lint_tool(node: str) -> str | None:
    """The linter whose check the item ``node`` is (`LINT_ITEMS`), else None."""
    parts = node.lower().split("::")
    for size in (2, 1):
        if len(parts) > size and "::".join(parts[-size:]) in LINT_ITEMS:
            return LINT_ITEMS["::".join(parts[-size:])]
    return LINT_ITEMS.get(node.lower()) if len(parts) == 1 else None


def plugin_fixture(text: str) -> str | None:
    """The fixture a test asked for that only a plugin provides, none being installed."""
    missing = MISSING_FIXTURE.search(text)
    return missing.group(1) if missing and missing.group(1) in PLUGIN_FIXTURE_NAMES else None


def _list_new(listed: list[str], names: list[str | None]) -> None:
    """Add the ``names`` not yet in ``listed``, up to `MAX_LISTED` in all."""
    for name in names:
        if name and name not in listed and len(listed) < MAX_LISTED:
            listed.append(name)


def error_line(text: str) -> str:
    """What a failure says in one line: pytest's message (the text's first line), else the
    first ``E`` line of its report, else the end of its last line."""
    lines = text.splitlines()
    if lines and lines[0].strip():
        return lines[0].strip()[:ERROR_CHARS]
    reported = [ln[1:].strip() for ln in lines if ln.startswith("E ") and ln[1:].strip()]
    if reported:
        return reported[0][:ERROR_CHARS]
    rest = [ln.strip() for ln in lines if ln.strip()]
    return rest[-1][-ERROR_CHARS:] if rest else ""  # its end: where the exception is named
