"""Tests phase: pytest on the sdist's tests, in the job venv, traced.

What cannot run does not stop what can: the job's test requirements are installed
best effort (one resolution, else one by one), pytest goes on past modules it
cannot collect, and ``tests_summary`` says which modules could not be collected and
why, which failures are only the guest being offline, which pass when their module
runs as the script it is written as (``guest_runner.script_reruns``), and — when
nothing ran — the ``reason``. The installed release's compiled modules are placed next to their
sources first (``guest_runner.inplace``): the tests import the sdist's copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from guest_runner import script_reruns
from guest_runner.apart import Apart
from guest_runner.budget import Budget
from guest_runner.inplace import place_extensions
from guest_runner.junit import empty_summary, parse_junit
from guest_runner.optional_deps import missing_optional
from guest_runner.outcome import Outcome, Result, outcome_of, setup_error
from guest_runner.phases.imports import release_info, top_level_modules
from guest_runner.progress import read_progress
from guest_runner.pytest_config import configured_testpaths
from guest_runner.pytest_plugin import OPTION as PROGRESS_OPTION
from guest_runner.pytest_plugin import TIMEOUT_OPTION
from guest_runner.pytest_plugin import install as install_plugin
from guest_runner.test_requirements import install_test_requirements
from guest_runner.workspace import Workspace

NO_SDIST = "no sdist: no tests shipped"
NO_TESTS = "no tests found in the sdist"
NONE_COLLECTED = "pytest collected no tests"
NONE_COLLECTABLE = "no test module could be collected"
NO_PYTEST = "cannot install pytest"
#: Test modules named in no pytest default (crcmod's, decorator's ``test.py``).
LOOSE = ("test.py", "tests.py")


def run(ws: Workspace, budget: Budget) -> Outcome:
    """pytest's exit; ``skipped`` with a reason when there is nothing to run.

    Emits ``tests_summary`` whenever the phase gets this far, with ``reason`` set
    when no test ran.
    """
    requirements: dict[str, Any] = {"requested": list(ws.job.test_requirements)}
    requirements.update(installed=[], failed=[])

    def summary(reason: str | None, **counts: Any) -> None:
        fields = {**empty_summary(), **counts, "reason": reason}
        ws.out.emit("tests_summary", "tests", **fields, test_requirements=requirements)

    root = ws.sources()
    site = ws.site_packages()
    # the installed release's metadata, read once: its modules, its optional dependencies
    info = release_info(site, ws.job.project) if site is not None else None
    modules = top_level_modules(info) if info is not None else []
    if root is not None:
        targets = find_tests(root)
        if not targets:
            summary(NO_TESTS)
            return Outcome("skipped", {"reason": NO_TESTS})
    else:
        # No sdist (a wheel-only release): the tests some projects ship inside
        # their package (numpy/tests, pytz/tests) are its tests.
        targets = shipped_tests(site, modules) if site else []
        if site is None or not targets:
            summary(NO_SDIST)
            return Outcome("skipped", {"reason": NO_SDIST})
        root = site
    if site is None or not (site / "pytest").is_dir():
        got = ws.run_as_tester(
            [*ws.pip_install(), "--find-links", ws.opts.wheels_dir, "pytest"],
            budget,
            phase="tests",
        )
        if got.returncode != 0 or got.timed_out:
            summary(NO_PYTEST)
            return setup_error(got, NO_PYTEST)
    if ws.job.test_requirements:
        requirements.update(install_test_requirements(ws, budget, "tests"))
    if site is not None and root != site:
        placed = place_extensions(root, site, modules, uid=ws.uid, gid=ws.gid)
        if placed:
            said = f"compiled modules placed next to their sources: {', '.join(placed[:10])}"
            ws.out.log("tests", "info", said, placed=len(placed))
    junit = ws.scratch / "tmp" / "junit.xml"
    dump_after = max(1, int(ws.job.timeout("tests") * 0.8))
    grace = interrupt_grace(ws.job.timeout("tests"))
    # ``-m`` puts the sdist's root first on sys.path, as ``python -m pytest`` in
    # upstream CI does: suites import helpers as ``from tests import x`` with no
    # tests/__init__.py (jmespath). (-P was tried: it broke those suites.)
    # The cache stays on (plugins such as pytest-memray read config.cache; without it
    # urllib3's run ended in an INTERNALERROR a third of the way), kept out of the sdist.
    cache = ws.scratch / "tmp" / "pytest-cache"
    progress = ws.scratch / "tmp" / "pytest-progress"
    argv = [ws.vpython, "-X", "faulthandler", "-m", "pytest", "-o", f"cache_dir={cache}"]
    if site is not None:
        argv += ["-p", install_plugin(site), f"{PROGRESS_OPTION}={progress}"]
        argv.append(f"{TIMEOUT_OPTION}={per_test_limit(ws.job.timeout('tests'))}")
    argv += [f"--junitxml={junit}", "-o", "junit_family=xunit1", "-q"]
    argv += ["-o", f"faulthandler_timeout={dump_after}", "--continue-on-collection-errors"]
    argv += ["--rootdir", str(root), *[str(t) for t in targets]]
    result = ws.run_as_tester(argv, budget, phase="tests", cwd=str(root), interrupt_grace=grace)
    if result.returncode == 4 and not result.timed_out:
        # A usage error is nearly always the project's addopts naming a plugin we did
        # not install (--cov...): retry once without them.
        argv[-len(targets) : -len(targets)] = ["-o", "addopts="]
        result = ws.run_as_tester(argv, budget, phase="tests", cwd=str(root), interrupt_grace=grace)
    looser = iter(loose_patterns(root, targets))
    loosened = False
    while result.returncode == 5 and not result.timed_out and budget.remaining() > 0:
        # Nothing matched test_*.py / *_test.py (or the project's python_files): the
        # tests are unittest-style modules named otherwise (tests/testlex.py,
        # tests/test.py, tests/basic.py). pytest runs unittest.TestCase classes as they are.
        patterns = next(looser, None)
        if patterns is None:
            break
        option = ["-o", f"python_files={patterns}"]
        if loosened:
            argv[-len(targets) - 2 : -len(targets)] = option
        else:
            argv[-len(targets) : -len(targets)] = option
        loosened = True
        result = ws.run_as_tester(argv, budget, phase="tests", cwd=str(root), interrupt_grace=grace)
    sdist_root = root if root != site else None
    optional = {} if site is None else missing_optional(site, info)
    apart = Apart(sdist_root, modules, optional)
    counts = parse_junit(junit, apart.modules, sdist_root, apart)
    if sdist_root is not None and result.returncode == 1 and not result.timed_out and apart.real:
        # Failures no other kind explains, in modules written to run as scripts: run
        # those as their authors do (guest_runner.script_reruns).
        passed, modules = script_reruns.rerun(
            ws, budget, sdist_root, [f["test"] for f in apart.real]
        )
        if passed:
            apart.passed_as_scripts(passed, modules)
            counts.update(apart.fields())
    if result.timed_out or (result.returncode is not None and result.returncode < 0):
        # stopped at the deadline, or killed by a signal (a segfault in a test)
        counts.update(stopped_counts(counts, read_progress(progress)))
    reason = no_tests_reason(counts, result)
    summary(reason, **counts)
    outcome = outcome_of(result)
    if outcome.status == "failed" and result.returncode == 5:
        return Outcome("skipped", {"reason": NONE_COLLECTED, "exit_code": 5})
    if reason is not None and outcome.status == "failed":
        outcome.fields["reason"] = reason
    return outcome


def stopped_counts(counts: dict[str, Any], progress: dict[str, Any] | None) -> dict[str, Any]:
    """For a suite stopped at its deadline or killed by a signal: the test it was in
    (``running``), and the progress file's counts when pytest ended before writing its
    JUnit XML."""
    if progress is None:
        return {}
    running = {"running": progress["running"]}
    if counts.get("junit"):
        return running
    return {**running, **{k: v for k, v in progress.items() if k != "running"}}


def per_test_limit(timeout: float) -> int:
    """Seconds one test's set-up, call or teardown may take (`pytest_plugin.TestTimeout`):
    a quarter of the phase, at least five minutes (no test of a healthy suite takes that
    long, even emulated; a phase of 20 minutes or less keeps its one budget). A test that
    waits forever then costs a quarter of the budget, and the tests after it still run."""
    return max(300, int(timeout / 4))


def interrupt_grace(timeout: float) -> float:
    """Seconds before the phase deadline at which pytest gets SIGINT: a suite too big for
    its budget then stops and writes the JUnit XML of the tests that ran (5 % of the
    budget, 5-60 s), so its counts are known instead of nothing."""
    return min(60.0, max(5.0, timeout * 0.05))


def no_tests_reason(counts: dict[str, Any], result: Result) -> str | None:
    """Why no test ran, when none did and pytest ended on its own; else None."""
    if result.timed_out or (result.returncode is not None and result.returncode < 0):
        return None
    if counts.get("collected"):
        return None
    if counts.get("collection_error_count"):
        return NONE_COLLECTABLE
    if result.returncode == 5:
        return NONE_COLLECTED
    return None


#: the second look's names: modules whose name says "test" (testlex.py, testmock.py)
TEST_NAMED = "test*.py *_test.py *_tests.py"


def loose_patterns(root: Path, targets: list[Path]) -> list[str]:
    """``python_files`` for the next looks, in order: test-named modules, then (in a tests
    folder only) any module.

    A tests folder also holds what its tests read as input (ply's ``test/lex_*.py``
    grammars, each broken on purpose, beside ``testlex.py``): any module is taken only
    when no test-named one is there. At the sdist's root a loose ``*.py`` would import
    ``setup.py`` and the build scripts as tests, so there only test-named ones are.
    """
    if all(t != root for t in targets):
        return [TEST_NAMED, "*.py"]
    return [TEST_NAMED]


def shipped_tests(site: Path, modules: list[str]) -> list[Path]:
    """``tests``/``test`` packages inside the release's installed top-level packages."""
    found: list[Path] = []
    for module in modules:
        package = site / module.split(".", 1)[0]
        for name in ("tests", "test", "testing"):
            candidate = package / name
            if candidate.is_dir() and not candidate.is_symlink() and candidate not in found:
                found.append(candidate)
    return found[:20]


def find_tests(root: Path) -> list[Path]:
    """Where pytest should look: the ``testpaths`` of the project's pytest configuration
    when they are in the sdist (``guest_runner.pytest_config``: upstream CI runs pytest
    with no paths), else tests/ or test/ when the sdist has them, else its root when a
    test-named module is anywhere, else ``tests``/``test`` folders inside the package
    (mock's ``mock/tests/testmock.py``: pytest's default names miss them, and the
    second look takes any module of a tests folder)."""
    configured = configured_testpaths(root)
    if configured:
        return configured
    for name in ("tests", "test"):
        if (root / name).is_dir():
            return [root / name]
    folders: list[Path] = []
    for count, path in enumerate(root.rglob("*.py")):
        if count > 20_000:
            break
        name = path.name
        if name.startswith("test_") or name.endswith(("_test.py", "_tests.py")) or name in LOOSE:
            return [root]
        parent = path.parent
        depth = len(parent.relative_to(root).parts)
        if parent.name in ("tests", "test") and depth <= 3 and parent not in folders:
            folders.append(parent)
    return sorted(folders)[:5]
