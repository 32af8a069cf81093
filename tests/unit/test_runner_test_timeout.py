"""The tests phase's per-test time limit (``--pyti-test-timeout``), in a real pytest run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from guest_runner.junit import parse_junit
from guest_runner.phases.tests import per_test_limit
from guest_runner.pytest_plugin import TIMEOUT_OPTION, install
from guest_runner.speed_checks import is_speed_failure
from tests.fakes.dists import dedent

SUITE = dedent(
    """
    import time


    def test_waits_forever():
        time.sleep(30)


    def test_after_it():
        pass
    """
)


def run_pytest(root: Path, *options: str) -> dict[str, object]:
    """pytest on ``root/tests`` with the tests phase's plugin loaded, as the runner runs it."""
    site = root / "site"
    site.mkdir()
    plugin = install(site)
    junit = root / "junit.xml"
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("PYTEST_TIMEOUT", None)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", plugin]
    argv += [f"--junitxml={junit}", "-o", "junit_family=xunit1", *options, "tests"]
    subprocess.run(argv, cwd=root, env=env, capture_output=True, check=False, timeout=120)
    return parse_junit(junit)


def test_a_test_past_its_limit_fails_as_a_speed_check_and_the_suite_goes_on(
    tmp_path: Path,
) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_wait.py").write_text(SUITE)
    started = time.monotonic()
    summary = run_pytest(tmp_path, f"{TIMEOUT_OPTION}=1")
    assert time.monotonic() - started < 25
    assert (summary["passed"], summary["failed"]) == (1, 1), summary
    assert summary["speed_failures"] == {
        "count": 1,
        "tests": ["tests/test_wait.py::test_waits_forever"],
    }
    text = "Failed: Timeout (>1s) from pyti: the test ran past its limit"
    assert is_speed_failure("tests/test_wait.py::test_waits_forever", text)


def test_a_projects_own_timeout_and_a_suite_that_arms_sigalrm_are_left_alone(
    tmp_path: Path,
) -> None:
    """The project's pytest-timeout limit (100 s) stands: its 2 s test passes under a 1 s
    limit of ours; a test that arms SIGALRM itself keeps its handler."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "pytest.ini").write_text("[pytest]\ntimeout = 100\n")
    own = dedent(
        """
        import signal
        import time


        def test_slow():
            time.sleep(2)


        def test_own_alarm():
            fired = []
            signal.signal(signal.SIGALRM, lambda *_: fired.append(1))
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            time.sleep(1.5)
            assert fired == [1]
        """
    )
    (tmp_path / "tests" / "test_own.py").write_text(own)
    summary = run_pytest(tmp_path, f"{TIMEOUT_OPTION}=1")
    assert (summary["passed"], summary["failed"]) == (2, 0), summary


def test_a_suite_with_its_own_sigalrm_handler_gets_no_limit(tmp_path: Path) -> None:
    """A conftest that installs a SIGALRM handler for the whole session: no limit is armed
    over it (its 2 s test passes under a 1 s limit), and the handler is still its own."""
    (tmp_path / "tests").mkdir()
    conftest = "import signal\n\nsignal.signal(signal.SIGALRM, lambda *_: None)\n"
    (tmp_path / "tests" / "conftest.py").write_text(conftest)
    body = dedent(
        """
        import signal
        import time


        def test_slow():
            time.sleep(2)
            assert signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, signal.SIG_IGN)
        """
    )
    (tmp_path / "tests" / "test_alarm.py").write_text(body)
    summary = run_pytest(tmp_path, f"{TIMEOUT_OPTION}=1")
    assert (summary["passed"], summary["failed"]) == (1, 0), summary


def test_the_limit_is_a_quarter_of_the_phase_and_at_least_five_minutes() -> None:
    assert per_test_limit(1800) == 450
    assert per_test_limit(900) == 300
    assert per_test_limit(120) == 300  # past the phase's own budget: no limit of its own
