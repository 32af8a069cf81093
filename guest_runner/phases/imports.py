"""Import phase: each top-level module of the installed release, in its own traced process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from guest_runner.budget import Budget
from guest_runner.outcome import SEVERITY, Outcome, outcome_of
from guest_runner.phases.install import normalize
from guest_runner.workspace import Workspace

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
    worst = Outcome("passed", {})
    results: list[dict[str, Any]] = []
    for module in modules:
        result = ws.run_as_tester(
            [ws.vpython, "-X", "faulthandler", "-c", IMPORT_CODE, module], budget, phase="import"
        )
        outcome = outcome_of(result)
        lines = [ln for ln in result.stderr_tail.splitlines() if ln.strip()]
        error = lines[-1][:500] if outcome.status != "passed" and lines else None
        ws.out.emit(
            "import_result",
            "import",
            module=module,
            status=outcome.status,
            error=error,
            **outcome.fields,
        )
        results.append({"module": module, "status": outcome.status})
        if SEVERITY[outcome.status] > SEVERITY[worst.status]:
            worst = outcome
        if outcome.status == "timed_out":
            break  # the phase's time is spent
    worst.fields = {**worst.fields, "modules": results}
    return worst


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
    want = normalize(project)
    for suffix in (".dist-info", ".egg-info"):
        for info in sorted(site.glob("*" + suffix)):
            name, _, _rest = info.name[: -len(suffix)].partition("-")
            if normalize(name) == want and info.is_dir():
                return top_level_modules(info)
    return []


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
