"""pip runs that build the release: retried once without build isolation when the build
misses a module the host found ``setup.py`` importing without declaring it.

Under build isolation pip builds in a fresh environment holding only the declared
build requirements: a ``setup.py`` that starts with an undeclared ``import requests``
dies there, and the rest of it never runs. The host reads such imports statically
and puts their wheels in the job directory (``JobDocument.build_imports``); when a
build fails with ``ModuleNotFoundError``/``ImportError``, they and the build
requirements are installed into the job venv (traced, stage ``build_retry``) and the
same pip command runs again with ``--no-build-isolation``, traced like the first.
Later builds of the job (the install after the metadata stage) go straight to that.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from guest_runner.budget import Budget
from guest_runner.outcome import Result
from guest_runner.workspace import Workspace

#: pip names the missing module; the trixie image's newer pip says only that an in-tree
#: backend (``backend-path``) did not import: ``BackendUnavailable: Cannot import 'setup'``.
IMPORT_FAILURE = re.compile(
    r"\b(?:ModuleNotFoundError|ImportError): .{0,200}|\bBackendUnavailable: Cannot import .{0,200}"
)
NO_ISOLATION = "--no-build-isolation"


def pip_build(
    ws: Workspace,
    budget: Budget,
    argv: list[str],
    *,
    stage: str | None = None,
    on_line: Callable[[str], None] | None = None,
) -> Result:
    """Run pip ``argv`` (it builds the release), retried once as the module docstring says."""
    missing: list[str] = []

    def watch(line: str) -> None:
        if on_line is not None:
            on_line(line)
        if not missing:
            found = IMPORT_FAILURE.search(line)
            if found:
                missing.append(found.group(0).strip())

    isolated = ws.build_retry is None
    first = argv if isolated else [*argv, NO_ISOLATION]
    result = ws.run_as_tester(first, budget, phase="install", on_line=watch, stage=stage)
    if not isolated or not _retryable(ws, result, budget, missing):
        return result
    links = ["--find-links", str(ws.job_dir), "--find-links", ws.opts.wheels_dir]
    deps = ws.run_as_tester(
        [*ws.pip_install(), *links, *ws.job.build_requires, *ws.job.build_imports],
        budget,
        phase="install",
        stage="build_retry",
    )
    ws.build_retry = {
        "reason": missing[0],
        "stage": stage or "install",
        "installed": list(ws.job.build_imports),
        "build_requires": list(ws.job.build_requires),
        "installed_ok": deps.returncode == 0 and not deps.timed_out,
    }
    ws.out.emit("build_retry", "install", **ws.build_retry)
    if deps.timed_out:
        return deps
    return ws.run_as_tester(
        [*argv, NO_ISOLATION], budget, phase="install", on_line=on_line, stage=stage
    )


def _retryable(ws: Workspace, result: Result, budget: Budget, missing: list[str]) -> bool:
    failed = result.returncode is not None and result.returncode > 0 and not result.timed_out
    return failed and bool(missing) and bool(ws.job.build_imports) and budget.remaining() > 0
