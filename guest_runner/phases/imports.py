"""Import phase: each top-level module of the installed release, in its own traced process.

A module that does not import only because it imports a module the release does not
declare (``ModuleNotFoundError`` naming a module outside the release) is tried again
once the job's test requirements are installed, as its upstream CI runs it
(soupsieve imports ``bs4`` and leaves beautifulsoup4 undeclared: the two depend on
each other). If it then imports, its ``import_result`` is ``passed`` with
``undeclared`` naming the missing module and ``first_error`` the first attempt's
error; the job passes with a note. A module missing from the test requirements too
is still a failed import.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from guest_runner.budget import Budget
from guest_runner.outcome import SEVERITY, Outcome, outcome_of
from guest_runner.phases.metadata import normalize
from guest_runner.test_requirements import install_test_requirements
from guest_runner.workspace import Workspace

_NOT_FOUND = re.compile(r"^ModuleNotFoundError: No module named '([A-Za-z_][\w.]*)'")

#: What imports each module (``python -c IMPORT_CODE module``). After the import it keeps
#: the interpreter up while daemon threads the import started run, 10 s at most: in a
#: real program they would go on, so a payload a thread runs seconds later must run
#: here too. Kept under strace's 256-character argv cut: the findings engine
#: (``slave.findings.rules.RUNNER_IMPORT_CODE``, a test keeps the two equal) labels the
#: process ``import MODULE`` by this exact text.
IMPORT_CODE = (
    "import importlib, sys, threading, time\n"
    "importlib.import_module(sys.argv[1])\n"
    "end = time.monotonic() + 10\n"
    "while time.monotonic() < end and any(t.daemon for t in threading.enumerate()):\n"
    "    time.sleep(0.2)\n"
)


def run(ws: Workspace, budget: Budget) -> Outcome:
    """The worst module's status; ``skipped`` when the dist names no module."""
    modules = installed_modules(ws)
    if not modules:
        return Outcome("skipped", {"reason": "no top-level modules found", "modules": []})
    tried: list[tuple[str, tuple[Outcome, str | None]]] = []
    for module in modules:
        result = import_module(ws, budget, module)
        tried.append((module, result))
        if result[0].status == "timed_out":
            break  # the phase's time is spent
    worst = Outcome("passed", {})
    results: list[dict[str, Any]] = []
    for module, first in tried:
        outcome, error, extra = with_test_requirements(ws, budget, module, modules, first)
        ws.out.emit(
            "import_result",
            "import",
            module=module,
            status=outcome.status,
            error=error,
            **outcome.fields,
            **extra,
        )
        results.append({"module": module, "status": outcome.status})
        if SEVERITY[outcome.status] > SEVERITY[worst.status]:
            worst = outcome
    worst.fields = {**worst.fields, "modules": results}
    return worst


def with_test_requirements(
    ws: Workspace,
    budget: Budget,
    module: str,
    modules: list[str],
    tried: tuple[Outcome, str | None],
) -> tuple[Outcome, str | None, dict[str, Any]]:
    """A module that failed on a module the release (``modules``) does not declare, tried
    again with the job's test requirements installed; the fields that say so when it
    then imports."""
    outcome, error = tried
    missing = undeclared(module, error, modules)
    if not missing or not ws.job.test_requirements or budget.remaining() <= 0:
        return outcome, error, {}
    install_test_requirements(ws, budget, "import")
    again, again_error = import_module(ws, budget, module)
    if again.status != "passed":
        return outcome, error, {}
    return again, again_error, {"undeclared": missing, "first_error": error}


def import_module(ws: Workspace, budget: Budget, module: str) -> tuple[Outcome, str | None]:
    """Import ``module`` in its own traced process: its outcome, and its last error line."""
    result = ws.run_as_tester(
        [ws.vpython, "-X", "faulthandler", "-c", IMPORT_CODE, module], budget, phase="import"
    )
    outcome = outcome_of(result)
    lines = [ln for ln in result.stderr_tail.splitlines() if ln.strip()]
    return outcome, (lines[-1][:500] if outcome.status != "passed" and lines else None)


def undeclared(module: str, error: str | None, own: list[str]) -> str | None:
    """The top-level module ``module`` failed to find, when it is not the release's own."""
    found = _NOT_FOUND.match(error or "")
    if found is None:
        return None
    top = found.group(1).split(".", 1)[0]
    mine = {m.split(".", 1)[0] for m in [module, *own]}
    return None if top in mine else top


def installed_modules(ws: Workspace) -> list[str]:
    """Top-level modules of the installed release, read from its metadata (no code runs)."""
    site = ws.site_packages()
    return [] if site is None else release_modules(site, ws.job.project)


def release_modules(site: Path, project: str) -> list[str]:
    """The project's modules from its ``.dist-info``, else its ``.egg-info``.

    pip before 23.1 installs an sdist without ``pyproject.toml`` the legacy way
    (``setup.py install``) when ``wheel`` is not there to build one: that leaves an
    ``.egg-info`` (``NAME-VERSION-py3.11.egg-info``) with ``installed-files.txt``.
    """
    info = release_info(site, project)
    return [] if info is None else top_level_modules(info)


def release_info(site: Path, project: str) -> Path | None:
    """The project's ``.dist-info`` in ``site``, else its ``.egg-info``, else None."""
    want = normalize(project)
    for suffix in (".dist-info", ".egg-info"):
        for info in sorted(site.glob("*" + suffix)):
            name, _, _rest = info.name[: -len(suffix)].partition("-")
            if normalize(name) == want and info.is_dir():
                return info
    return None


def top_level_modules(info: Path) -> list[str]:
    """Importable top-level names from top_level.txt, else RECORD / installed-files.txt."""
    names: set[str] = set()
    top = info / "top_level.txt"
    record = info / "RECORD"
    if not record.is_file():
        record = info / "installed-files.txt"  # egg-info: paths relative to the info dir
    if top.is_file():
        for line in top.read_text(errors="replace").splitlines()[:200]:
            names.add(line.strip().replace("/", "."))
    elif record.is_file():
        for line in record.read_text(errors="replace").splitlines()[:100_000]:
            path = line.split(",", 1)[0]
            if record.name == "installed-files.txt":
                if not path.startswith("../"):
                    continue  # the egg-info's own files
                path = path[3:]
            first = path.split("/", 1)[0]
            if first.endswith((".dist-info", ".data", ".pth")) or first in ("..", "__pycache__"):
                continue
            if "/" in path:
                names.add(first)
            elif first.endswith((".py", ".so", ".pyd")):
                names.add(first.split(".", 1)[0])
    return sorted(n for n in names if n.isidentifier() and not n.startswith("_"))[:100]
