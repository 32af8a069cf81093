"""Quality phase: ruff on the sdist (else the installed modules), untraced, as tester."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from guest_runner.budget import Budget
from guest_runner.outcome import Outcome
from guest_runner.phases.imports import installed_modules
from guest_runner.workspace import Workspace

RUFF_OUTPUT_LIMIT = 64 * 1024 * 1024


def run(ws: Workspace, budget: Budget) -> Outcome:
    """``passed`` with a ``quality`` event; ``skipped`` when ruff or sources are missing."""
    ruff = Path(ws.opts.tools_dir) / "bin" / "ruff"
    report: dict[str, Any] = {"available": ruff.exists(), "counts": {}, "files": 0}
    report["error"] = None
    paths: list[str] = []
    src = ws.sources()
    if src is not None:
        paths = [str(src)]
    else:
        site = ws.site_packages()
        if site is not None and ws.statuses.get("install") == "passed":
            modules = installed_modules(ws)
            paths = [str(site / m) for m in modules] + [str(site / f"{m}.py") for m in modules]
            paths = [p for p in paths if os.path.exists(p)]
    if not report["available"]:
        report["error"] = "ruff not installed"
    elif not paths:
        report["error"] = "no sources to check"
    else:
        report.update(check(ws, str(ruff), paths, budget))
    ws.out.emit("quality", "quality", ruff=report)
    if report["error"] is not None:
        return Outcome("skipped", {"reason": report["error"]})
    return Outcome("passed", {})


def check(ws: Workspace, ruff: str, paths: list[str], budget: Budget) -> dict[str, Any]:
    """``{counts, files}`` from ruff's JSON, or ``{error}``."""
    base = [ruff, "check", "--isolated", "--no-cache", "--select", "E,W,F,B,S"]
    run_as: dict[str, Any] = {}
    if ws.uid is not None:
        run_as = {"user": ws.uid, "group": ws.gid, "extra_groups": []}
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ws.home)}
    with tempfile.TemporaryFile() as out:
        try:
            subprocess.run(
                [*base, "--output-format=json", "--exit-zero", *paths],
                stdout=out,
                stderr=subprocess.DEVNULL,
                timeout=budget.remaining(),
                check=False,
                cwd=str(ws.scratch),
                env=env,
                **run_as,
            )
            listed = subprocess.run(
                [*base, "--show-files", *paths],
                capture_output=True,
                timeout=budget.remaining(),
                check=False,
                cwd=str(ws.scratch),
                env=env,
                **run_as,
            )
        except subprocess.TimeoutExpired:
            return {"error": "ruff timed out"}
        if out.tell() > RUFF_OUTPUT_LIMIT:
            return {"error": "ruff output too large"}
        out.seek(0)
        try:
            diagnostics = json.loads(out.read() or b"[]")
        except ValueError as exc:
            return {"error": f"ruff output is not JSON: {exc}"}
    counts: collections.Counter[str] = collections.Counter()
    for diag in diagnostics if isinstance(diagnostics, list) else []:
        code = diag.get("code") if isinstance(diag, dict) else None
        counts[str(code) if code else "syntax-error"] += 1
    files = sum(1 for ln in listed.stdout.splitlines() if ln.strip())
    return {"counts": dict(counts), "files": files}
