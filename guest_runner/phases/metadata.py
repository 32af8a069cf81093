"""Stage ``metadata`` of the install phase: a release without static metadata builds it here.

The host cannot know such a release's dependencies without running its build
backend (a dynamic ``setup.py``), which it never does. So the install phase first
asks pip for the sdist's metadata (``pip install --dry-run --no-deps --report``),
under the phase's tracer, caps and deadline like any package code (output and trace
events carry ``stage: "metadata"``); then reports it (event ``metadata``) and waits
for the host's answer: the dependencies' wheels in the job directory and
``dependencies.json`` (``{"proceed": true}``, or ``false`` with a ``reason``). The
time spent waiting for the host is added back to the phase's deadline.

A build that fails, times out or crashes ends the install phase there, as the
package's result (the install would run the same code again).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

from guest_runner.budget import Budget
from guest_runner.build import pip_build
from guest_runner.jobdoc import DEPENDENCIES_READY
from guest_runner.outcome import Outcome, outcome_of
from guest_runner.workspace import Workspace

STAGE = "metadata"
MAX_REPORT_BYTES = 8 << 20
MAX_REQUIREMENTS = 500
MAX_REQUIREMENT_CHARS = 1000
POLL_S = 0.2


def build(ws: Workspace, budget: Budget, target: str) -> Outcome | None:
    """Build, report and hand over the metadata; None when the install may go on."""
    report = ws.scratch / "tmp" / "pyti-metadata-report.json"
    with contextlib.suppress(OSError):
        report.unlink()
    argv = [*ws.pip_build_install(), "--dry-run", "--no-deps", "--ignore-installed"]
    argv += ["--report", str(report), "--find-links", str(ws.job_dir)]
    argv += ["--find-links", ws.opts.wheels_dir, target]
    outcome = outcome_of(pip_build(ws, budget, argv, stage=STAGE))
    if outcome.status != "passed":
        outcome.fields.update(stage=STAGE, reason="the release's metadata could not be built")
        return outcome
    metadata = read_report(report)
    if metadata is None:
        return Outcome("failed", {"stage": STAGE, "reason": "pip reported no metadata"})
    ws.out.emit("metadata", "install", stage=STAGE, **metadata)
    answer = wait_for_host(ws, budget)
    if answer is None:
        return Outcome("error", {"stage": STAGE, "reason": "no answer from the host"})
    if answer.get("proceed") is not True:
        reason = str(answer.get("reason") or "the host could not fetch the dependencies")
        return Outcome("error", {"stage": STAGE, "reason": reason[:1000]})
    return None


def read_report(path: Path) -> dict[str, Any] | None:
    """name, version, requires_python, requires_dist of pip's report; None if unusable.

    The file sits where package code could have replaced it: opened without following
    links or blocking, regular files only, size-capped, every value type-checked.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        data = f.read(MAX_REPORT_BYTES + 1)
    if len(data) > MAX_REPORT_BYTES:
        return None
    try:
        install = json.loads(data).get("install")
        meta = install[0]["metadata"]
    except (ValueError, AttributeError, LookupError, TypeError):
        return None
    if not isinstance(meta, dict):
        return None
    requires = meta.get("requires_dist") or []
    if not isinstance(requires, list):
        requires = []
    return {
        "name": _text(meta.get("name")),
        "version": _text(meta.get("version")),
        "requires_python": _text(meta.get("requires_python")),
        "requires_dist": [
            r[:MAX_REQUIREMENT_CHARS] for r in requires[:MAX_REQUIREMENTS] if isinstance(r, str)
        ],
        "requires_dist_total": len(requires),
    }


def _text(value: object) -> str | None:
    return value[:MAX_REQUIREMENT_CHARS] if isinstance(value, str) else None


def wait_for_host(ws: Workspace, budget: Budget) -> dict[str, Any] | None:
    """The host's answer (``dependencies.json``), or None after ``metadata_wait`` seconds."""
    path = ws.job_dir / DEPENDENCIES_READY
    started = time.monotonic()
    answer: dict[str, Any] | None = None
    while answer is None and time.monotonic() - started < ws.job.metadata_wait:
        answer = _answer(path)
        if answer is None:
            time.sleep(POLL_S)
    budget.deadline += time.monotonic() - started  # the host's time is not the package's
    return answer


def _answer(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes()[:65536])
    except (OSError, ValueError):
        return None  # not there yet, or still being written
    return data if isinstance(data, dict) else None
