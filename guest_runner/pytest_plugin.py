"""The pytest plugin the tests phase loads into the package's pytest (``-p``).

It is not imported by the runner: its source is copied into the job venv as
``_pyti_pytest_plugin.py`` (:func:`install`) and runs in the package's pytest, with
only what that venv has (pytest; Hypothesis when the suite uses it).

**Hypothesis deadlines off.** Hypothesis fails an example that takes longer than its
``deadline`` (200 ms, or what the project's own profile says: attrs sets 400 ms). That
is a speed check, and a guest under emulation (TCG: ~10x slower) fails it for reasons
that are not in the package (attrs 26.1.0: ``DeadlineExceeded`` after 513 ms). Once
collection is over, each collected Hypothesis test gets its settings (the profile it
was decorated under, or its own ``@settings``) with ``deadline=None``, as Hypothesis's
own ``ci`` profile has it. The rest of the settings stay the project's.

**``unittest.main()`` at import hands its tests to pytest.** Some suites are scripts:
a test module calls ``unittest.main()`` with no ``__main__`` guard, or hands over to
another module's tests (crcmod's ``test/test_crcmod.py``: ``unittest.main(module=
crcmod.test)``). Collected by pytest, that call parses pytest's own command line,
exits, and the ``SystemExit`` ends the whole run in an INTERNALERROR: no test of any
module runs. Here ``unittest.main`` does not run anything: the calling module's own
``TestCase`` classes are collected by pytest as they are, and those of the module it
names are put into the calling module, so pytest collects them there. Only during
collection: a test that runs a unittest program on purpose gets the real one.

**Progress as it goes.** With ``--pyti-progress=FILE`` each test's start and end are
appended to FILE (``S nodeid``, then ``E outcome nodeid``; ``C nodeid`` for a module
that could not be collected; ``F nodeid<TAB>text`` with the end of a failure's text,
so that offline and speed-check failures can be told apart, after ``M nodeid<TAB>message``
with the first line of its exception's message), flushed line by line.
pytest writes its JUnit XML only when it ends; a suite stopped for good at its
deadline (a test that ignores SIGINT or waits on its threads) leaves no XML, and the
runner counts from this file instead (:mod:`guest_runner.progress`), naming the test
that was running.

**A time limit per test.** With ``--pyti-test-timeout=SECONDS`` each test's set-up, call
and teardown get ``SECONDS`` each (`TestTimeout`, the method pytest-timeout calls
``signal``): past it, ``SIGALRM`` fails the test with ``Timeout (>SECONDS s) from
pyti``, and the suite goes on. One test that waits forever (pexpect 4.9.0's socket
test, idle in the guest) no longer spends the whole phase and hides every test after
it. A project that sets its own pytest-timeout limit keeps it; a test that arms
``SIGALRM`` itself is left alone.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import unittest
from collections.abc import Generator
from importlib import resources
from pathlib import Path
from typing import Any

MODULE = "_pyti_pytest_plugin"
OPTION = "--pyti-progress"
TIMEOUT_OPTION = "--pyti-test-timeout"
#: A test's outcome in the progress file: the worst of its set-up, call and teardown.
_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
#: Characters of a failure's text kept (its end: the exception and its message).
FAILURE_TEXT = 2000


class Progress:
    """Appends each test's start and outcome to the progress file (module docstring)."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        self.outcomes: dict[str, str] = {}

    def line(self, kind: str, *words: str) -> None:
        text = " ".join(w.replace("\n", " ") for w in words)
        with contextlib.suppress(OSError, ValueError):
            self.file.write(f"{kind} {text}\n")
            self.file.flush()

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.line("S", nodeid)

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.passed:
            outcome = "passed"
        elif report.skipped:
            outcome = "skipped"
        else:  # a failed call is a failure; a failed set-up or teardown an error
            outcome = "failed" if report.when == "call" else "error"
        before = self.outcomes.get(report.nodeid, outcome)
        self.outcomes[report.nodeid] = max(outcome, before, key=_RANK.__getitem__)
        if outcome in ("failed", "error"):
            crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
            message = str(getattr(crash, "message", "") or "").strip().split("\n", 1)[0]
            if message:
                self.line("M", f"{report.nodeid}\t{message[:FAILURE_TEXT]}")
            text = str(getattr(report, "longreprtext", ""))[-FAILURE_TEXT:]
            self.line("F", f"{report.nodeid}\t{text}")

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self.line("E", self.outcomes.pop(nodeid, "passed"), nodeid)

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.line("C", report.nodeid)


def timeout_plugin(seconds: float) -> Any:
    """The per-test time limit (module docstring), built when pytest is importable."""
    import pytest  # noqa: PLC0415 - the runner imports this module without pytest

    def on_alarm(_signum: int, _frame: Any) -> None:
        pytest.fail(f"Timeout (>{seconds:g}s) from pyti: the test ran past its limit")

    @contextlib.contextmanager
    def limit() -> Generator[None, None, None]:
        if signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, signal.SIG_IGN, None):
            yield  # the suite uses SIGALRM itself
            return
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    class TestTimeout:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_setup(self) -> Generator[None, None, None]:
            with limit():
                yield

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_call(self) -> Generator[None, None, None]:
            with limit():
                yield

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_teardown(self) -> Generator[None, None, None]:
            with limit():
                yield

    return TestTimeout()


def _own_timeout(config: Any) -> bool:
    """Whether the project set a pytest-timeout limit (its option, ini key or variable)."""
    with contextlib.suppress(Exception):
        if config.getoption("timeout", None) is not None:
            return True
    with contextlib.suppress(Exception):
        if config.getini("timeout"):
            return True
    return bool(os.environ.get("PYTEST_TIMEOUT"))


def pytest_addoption(parser: Any) -> None:
    """``--pyti-progress=FILE``, ``--pyti-test-timeout=SECONDS`` (module docstring)."""
    parser.addoption(OPTION, dest="pyti_progress", default=None)
    parser.addoption(TIMEOUT_OPTION, dest="pyti_test_timeout", default=None, type=float)


def unittest_main_for_pytest(module: Any = "__main__", *_args: Any, **_kwargs: Any) -> None:
    """``unittest.main`` while pytest collects (module docstring): runs nothing, and
    puts the ``TestCase`` classes of the module it names into the calling module."""
    if isinstance(module, str):
        if module == "__main__":
            return
        try:
            module = importlib.import_module(module)
        except Exception:  # the suite's own import problem: pytest reports it elsewhere
            return
    caller = sys._getframe(1).f_globals  # the module calling unittest.main
    for name, value in list(vars(module).items()):
        if isinstance(value, type) and issubclass(value, unittest.TestCase):
            caller.setdefault(name, value)


_REAL_UNITTEST_MAIN = unittest.main


def pytest_sessionstart() -> None:
    """``unittest.main`` replaced for the collection (module docstring)."""
    unittest.main = unittest_main_for_pytest  # type: ignore[assignment]


def pytest_collection_finish() -> None:
    """The real ``unittest.main`` back once collection is over: a test that runs a
    unittest program on purpose gets it."""
    unittest.main = _REAL_UNITTEST_MAIN


def pytest_configure(config: Any) -> None:
    """Registers :class:`Progress` when ``--pyti-progress`` names a file, and the per-test
    time limit when ``--pyti-test-timeout`` is set and the project set none."""
    path = config.getoption("pyti_progress", None)
    if path:
        with contextlib.suppress(OSError):
            config.pluginmanager.register(Progress(path), "pyti-progress")
    seconds = config.getoption("pyti_test_timeout", None)
    if seconds and seconds > 0 and hasattr(signal, "setitimer") and not _own_timeout(config):
        config.pluginmanager.register(timeout_plugin(seconds), "pyti-test-timeout")


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Every collected Hypothesis test without its deadline (see the module docstring)."""
    hypothesis = sys.modules.get("hypothesis")
    if hypothesis is None:
        return
    for item in items:
        obj = getattr(item, "obj", None)
        test: Any = getattr(obj, "__func__", obj)  # a method's function
        current = getattr(test, "_hypothesis_internal_use_settings", None)
        if current is None or getattr(current, "deadline", None) is None:
            continue
        # @given reads its settings from this attribute when the test runs; an old or
        # unusual Hypothesis that refuses is left as it is
        with contextlib.suppress(Exception):
            test._hypothesis_internal_use_settings = hypothesis.settings(current, deadline=None)


def install(site_packages: Path) -> str:
    """Copy this plugin into ``site_packages``; returns the module name for ``-p``."""
    source = resources.files(__package__ or "guest_runner").joinpath("pytest_plugin.py")
    (site_packages / f"{MODULE}.py").write_text(source.read_text(encoding="utf-8"))
    return MODULE
