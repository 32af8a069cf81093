"""Stage ``metadata`` of the install phase: a release without static metadata builds it here.

The host cannot know such a release's dependencies without running its build
backend (a dynamic ``setup.py``), which it never does. So the install phase first
has pip build the sdist's wheel (``pip wheel --no-deps``), under the phase's tracer,
caps and deadline like any package code (output and trace events carry ``stage:
"metadata"``); reads the wheel's ``METADATA``, reports it (event ``metadata``) and
waits for the host's answer: the dependencies' wheels in the job directory and
``dependencies.json`` (``{"proceed": true}``, or ``false`` with a ``reason``). The
time spent waiting for the host is added back to the phase's deadline. The install
then installs that wheel: the release is built once. (Until session 7 this stage
asked ``pip install --dry-run --report`` for the metadata and the install built the
sdist again: a second isolated build environment, ``get_requires`` and metadata hook
under TCG, 50 of docopt's 116 s.)

A build that fails, times out or crashes ends the install phase there, as the
package's result (the install would run the same code again).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import os
import re
import shutil
import stat
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from guest_runner.budget import Budget
from guest_runner.build import pip_build
from guest_runner.jobdoc import DEPENDENCIES_READY
from guest_runner.outcome import Outcome, outcome_of
from guest_runner.workspace import Workspace

STAGE = "metadata"
MAX_METADATA_BYTES = 8 << 20
MAX_REQUIREMENTS = 500
MAX_REQUIREMENT_CHARS = 1000
POLL_S = 0.2


def build(
    ws: Workspace,
    budget: Budget,
    target: str,
    on_line: Callable[[str], None] | None = None,
    built: Path | None = None,
) -> Outcome | Path:
    """Build the wheel (unless ``built``: a prepared build made it already), report its
    metadata and hand over: the wheel to install when the install may go on, else the
    outcome that ends the phase."""
    wheel = built
    if wheel is None:
        out = ws.scratch / "tmp" / "pyti-built"
        _clear(out)
        argv = [ws.vpython, "-m", "pip", "wheel", "--no-index", "--no-cache-dir", "--no-deps"]
        argv += ["--progress-bar", "off", "--wheel-dir", str(out)]
        argv += ["--find-links", str(ws.job_dir), "--find-links", ws.opts.wheels_dir, target]
        outcome = outcome_of(pip_build(ws, budget, argv, stage=STAGE, on_line=on_line))
        if outcome.status != "passed":
            outcome.fields.update(stage=STAGE, reason="the release's metadata could not be built")
            return outcome
        wheel = built_wheel(out, ws.job.project)
    metadata = wheel_metadata(wheel) if wheel is not None else None
    if wheel is None or metadata is None:
        return Outcome("failed", {"stage": STAGE, "reason": "pip built no readable wheel"})
    ws.out.emit("metadata", "install", stage=STAGE, **metadata)
    answer = wait_for_host(ws, budget)
    if answer is None:
        return Outcome("error", {"stage": STAGE, "reason": "no answer from the host"})
    if answer.get("proceed") is not True:
        reason = str(answer.get("reason") or "the host could not fetch the dependencies")
        return Outcome("error", {"stage": STAGE, "reason": reason[:1000]})
    return wheel


def _clear(path: Path) -> None:
    """No leftover at ``path`` (pip makes the directory, as the tester)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def built_wheel(folder: Path, project: str) -> Path | None:
    """The release's wheel pip wrote in ``folder`` (regular files only; the project's name
    first, else the only wheel there), None when there is none."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return None
    wheels = [
        Path(e.path)
        for e in entries
        if e.name.endswith(".whl") and e.is_file(follow_symlinks=False)
    ]
    want = normalize(project)
    named = [w for w in wheels if normalize(w.name.split("-", 1)[0]) == want]
    if len(named) == 1:
        return named[0]
    return wheels[0] if len(wheels) == 1 else None


def wheel_metadata(path: Path) -> dict[str, Any] | None:
    """name, version, requires_python, requires_dist of the wheel's ``METADATA``; None if
    unusable. The build wrote the wheel: opened without following links, regular file
    only, the one top-level ``.dist-info/METADATA`` read up to a cap."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        try:
            with zipfile.ZipFile(f) as archive:
                names = [
                    n
                    for n in archive.namelist()
                    if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
                ]
                if len(names) != 1:
                    return None
                with archive.open(names[0]) as member:
                    data = member.read(MAX_METADATA_BYTES + 1)
        except (OSError, zipfile.BadZipFile, ValueError, EOFError):
            return None
    if len(data) > MAX_METADATA_BYTES:
        return None
    message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
        data, headersonly=True
    )
    requires = [str(r) for r in message.get_all("Requires-Dist") or []]
    return {
        "name": _text(_header(message.get("Name"))),
        "version": _text(_header(message.get("Version"))),
        "requires_python": _text(_header(message.get("Requires-Python"))),
        "requires_dist": [r[:MAX_REQUIREMENT_CHARS] for r in requires[:MAX_REQUIREMENTS]],
        "requires_dist_total": len(requires),
    }


def _header(value: object) -> str | None:
    return None if value is None else str(value).strip()


def normalize(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


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
