"""The job's test requirements, installed into the job venv once per job.

The tests phase installs them before pytest. The import phase installs them first
when a module of the release does not import only because it imports a module the
release does not declare (soupsieve imports ``bs4``, which it leaves undeclared to
avoid a cycle with beautifulsoup4, and its upstream CI installs): the import is
tried again with them (:mod:`guest_runner.phases.imports`). Whichever phase comes
first installs; the other reuses the result.
"""

from __future__ import annotations

from typing import Any

from guest_runner.budget import Budget
from guest_runner.outcome import Result
from guest_runner.workspace import Workspace


def install_test_requirements(ws: Workspace, budget: Budget, phase: str) -> dict[str, Any]:
    """Install the job's test requirements: together, else each alone; never raises.

    Returns ``{installed: [...], failed: [{requirement, error}]}``; a second call in the
    same job returns the first call's result without installing again.
    """
    if ws.test_requirements is not None:
        return ws.test_requirements
    wanted = list(ws.job.test_requirements)
    pip = [*ws.pip_install(), "--find-links", str(ws.job_dir), "--find-links", ws.opts.wheels_dir]
    together = ws.run_as_tester([*pip, *wanted], budget, phase=phase)
    if together.returncode == 0 and not together.timed_out:
        ws.test_requirements = {"installed": wanted, "failed": []}
        return ws.test_requirements
    installed: list[str] = []
    failed: list[dict[str, str]] = []
    for requirement in wanted:
        if budget.remaining() <= 0:
            failed.append({"requirement": requirement, "error": "no time left in the phase"})
            continue
        alone = ws.run_as_tester([*pip, requirement], budget, phase=phase)
        if alone.returncode == 0 and not alone.timed_out:
            installed.append(requirement)
        else:
            failed.append({"requirement": requirement, "error": pip_error(alone)})
    ws.out.log(
        phase,
        "warning",
        f"{len(failed)} of {len(wanted)} test requirements could not be installed",
    )
    ws.test_requirements = {"installed": installed, "failed": failed}
    return ws.test_requirements


def pip_error(result: Result) -> str:
    """The installer's first error line (pip's or uv's; else its last line), for the summary."""
    if result.timed_out:
        return "timed out"
    lines = [ln.strip() for ln in result.stderr_tail.splitlines() if ln.strip()]
    # pip says "ERROR: ..."; uv "error: ..." (or "× ...") then "cause: why" (or "╰─▶ why").
    errors = [ln for ln in lines if ln.startswith(("ERROR:", "error:", "×", "╰─▶", "cause:"))]
    if len(errors) > 1 and errors[1].startswith(("╰─▶", "cause:")):
        errors = [f"{errors[0]} {errors[1]}"]  # uv's header, then why ("Because trio was…")
    picked = errors[0] if errors else (lines[-1] if lines else f"exit {result.returncode}")
    return picked[:300]
