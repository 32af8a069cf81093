"""Tests phase: pytest on the sdist's tests, in the job venv, traced."""

from __future__ import annotations

from pathlib import Path

from guest_runner.budget import Budget
from guest_runner.junit import parse_junit
from guest_runner.outcome import Outcome, outcome_of, setup_error
from guest_runner.workspace import Workspace


def run(ws: Workspace, budget: Budget) -> Outcome:
    """pytest's exit; ``skipped`` with a reason when there is nothing to run."""
    root = ws.sources()
    if root is None:
        return Outcome("skipped", {"reason": "no sdist: no tests to run"})
    targets = find_tests(root)
    if not targets:
        return Outcome("skipped", {"reason": "no tests found in the sdist"})
    site = ws.site_packages()
    if site is None or not (site / "pytest").is_dir():
        got = ws.run_as_tester(
            [*ws.pip_install(), "--find-links", ws.opts.wheels_dir, "pytest"],
            budget,
            phase="tests",
        )
        if got.returncode != 0 or got.timed_out:
            return setup_error(got, "cannot install pytest")
    junit = ws.scratch / "tmp" / "junit.xml"
    dump_after = max(1, int(ws.job.timeout("tests") * 0.8))
    argv = [ws.vpython, "-X", "faulthandler", "-m", "pytest", "-p", "no:cacheprovider"]
    argv += [f"--junitxml={junit}", "-q", "-o", f"faulthandler_timeout={dump_after}"]
    argv += ["--rootdir", str(root), *[str(t) for t in targets]]
    result = ws.run_as_tester(argv, budget, phase="tests", cwd=str(root))
    if result.returncode == 4 and not result.timed_out:
        # A usage error is nearly always the project's addopts naming a plugin we did
        # not install (--cov...): retry once without them.
        argv[-len(targets) : -len(targets)] = ["-o", "addopts="]
        result = ws.run_as_tester(argv, budget, phase="tests", cwd=str(root))
    summary = parse_junit(junit)
    ws.out.emit("tests_summary", "tests", **summary)
    outcome = outcome_of(result)
    if outcome.status == "failed" and result.returncode == 5:
        return Outcome("skipped", {"reason": "pytest collected no tests", "exit_code": 5})
    return outcome


def find_tests(root: Path) -> list[Path]:
    """Where pytest should look: tests/ or test/ when the sdist has them, else its root."""
    for name in ("tests", "test"):
        if (root / name).is_dir():
            return [root / name]
    for count, path in enumerate(root.rglob("*.py")):
        if count > 20_000:
            break
        if path.name.startswith("test_") or path.name.endswith("_test.py"):
            return [root]
    return []
