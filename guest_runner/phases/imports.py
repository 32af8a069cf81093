"""Import phase: each top-level module of the installed release, in its own traced process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from guest_runner.budget import Budget
from guest_runner.outcome import SEVERITY, Outcome, outcome_of
from guest_runner.phases.install import normalize
from guest_runner.workspace import Workspace


def run(ws: Workspace, budget: Budget) -> Outcome:
    """The worst module's status; ``skipped`` when the dist names no module."""
    modules = installed_modules(ws)
    if not modules:
        return Outcome("skipped", {"reason": "no top-level modules found", "modules": []})
    code = "import importlib, sys; importlib.import_module(sys.argv[1])"
    worst = Outcome("passed", {})
    results: list[dict[str, Any]] = []
    for module in modules:
        result = ws.run_as_tester(
            [ws.vpython, "-X", "faulthandler", "-c", code, module], budget, phase="import"
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
    """Top-level modules of the installed release, read from its dist-info (no code runs)."""
    site = ws.site_packages()
    if site is None:
        return []
    want = normalize(ws.job.project)
    for info in sorted(site.glob("*.dist-info")):
        name, _, _rest = info.name[: -len(".dist-info")].partition("-")
        if normalize(name) == want:
            return top_level_modules(info)
    return []


def top_level_modules(info: Path) -> list[str]:
    """Importable top-level names from top_level.txt, else from RECORD."""
    names: set[str] = set()
    top = info / "top_level.txt"
    if top.is_file():
        for line in top.read_text(errors="replace").splitlines()[:200]:
            names.add(line.strip().replace("/", "."))
    elif (info / "RECORD").is_file():
        for line in (info / "RECORD").read_text(errors="replace").splitlines()[:100_000]:
            path = line.split(",", 1)[0]
            first = path.split("/", 1)[0]
            if first.endswith((".dist-info", ".data", ".pth")) or first in ("..", "__pycache__"):
                continue
            if "/" in path:
                names.add(first)
            elif first.endswith((".py", ".so", ".pyd")):
                names.add(first.split(".", 1)[0])
    return sorted(n for n in names if n.isidentifier() and not n.startswith("_"))[:100]
