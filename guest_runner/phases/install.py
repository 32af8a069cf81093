"""Install phase: the release into the job venv, offline, from the job dir and the wheelhouse.

A release without static metadata first goes through stage ``metadata``
(`guest_runner.phases.metadata`), which builds its wheel: its dependencies come from
the host after that, and the install installs that wheel (no second build).
Builds go through `guest_runner.build.pip_build` (retried without isolation when
``setup.py`` misses an undeclared import).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from guest_runner import prepared_build
from guest_runner.budget import Budget
from guest_runner.build import pip_build
from guest_runner.outcome import Outcome, outcome_of, setup_error
from guest_runner.phases import metadata
from guest_runner.phases.metadata import normalize
from guest_runner.workspace import Workspace

#: A wheel built from an sdist: pip's "Created wheel for NAME: ...", uv's "Built NAME @ file://..."
#: or "Built NAME==VERSION" (uv builds nothing here today: ``--only-binary :all:``).
BUILT_WHEEL = re.compile(r"\s*(?:Created wheel for ([^:\s]+)|Built ([A-Za-z0-9._-]+)(?: @ |==))")


#: Marks the image's pre-built job venv (see the image builder's JOB_VENV).
VENV_TEMPLATE_MARKER = ".pyti-template"


def run(ws: Workspace, budget: Budget) -> Outcome:
    """pip's exit; ``error`` when the venv cannot be made."""
    if (ws.venv / VENV_TEMPLATE_MARKER).is_file():
        # The image's pristine job venv (pytest included): every job restores
        # the snapshot disk, so it is as fresh as one made now, ~100 s sooner.
        return install_into_venv(ws, budget)
    if ws.venv.exists():
        shutil.rmtree(ws.venv)
    made = ws.run_as_tester(
        [ws.opts.python, "-m", "venv", str(ws.venv)],
        budget,
        phase="install",
        cwd=str(ws.scratch),
        traced=False,
    )
    if made.returncode != 0 or made.timed_out:
        return setup_error(made, "cannot create the venv")
    return install_into_venv(ws, budget)


def install_into_venv(ws: Workspace, budget: Budget) -> Outcome:
    target, kind = install_target(ws)
    pth_before = pth_files(ws.site_packages())
    built: list[str] = []

    def watch(line: str) -> None:
        found = BUILT_WHEEL.match(line)
        if found:
            built.append(normalize(found.group(1) or found.group(2)))

    metadata_built = ws.job.build_metadata and kind == "sdist"
    installs = kind
    prebuilt = None
    if kind == "sdist":
        # In the image's prepared build environment, one interpreter; else pip builds it.
        out = ws.scratch / prepared_build.WORK_DIR / "wheel"
        prebuilt = prepared_build.build(ws, budget, Path(target), out, watch)
        if prebuilt is not None:
            built.append(normalize(ws.job.project))
    if metadata_built:
        # The metadata stage builds the wheel once; the install installs that wheel.
        wheel = metadata.build(ws, budget, target, on_line=watch, built=prebuilt)
        if isinstance(wheel, Outcome):
            if ws.build_retry is not None:
                wheel.fields["build_retry"] = ws.build_retry
            return wheel
        target, installs = str(wheel), "wheel"
    elif prebuilt is not None:
        target, installs = str(prebuilt), "wheel"

    # A wheel (and its wheel dependencies) is installed by uv when the image has it; an
    # sdist is built by pip, whose build runs with the job venv as sys.prefix (uv builds in
    # a throw-away environment a setup.py could write past). uv does not check a local
    # wheel's Requires-Python: the host checked it before the job reached the guest
    # (slave.prepare.python_check), and picked the dependency wheels for this Python.
    links = ["--find-links", str(ws.job_dir), "--find-links", ws.opts.wheels_dir]
    if installs == "wheel":
        argv = [*ws.pip_install(), *links, target]
        result = ws.run_as_tester(argv, budget, phase="install", on_line=watch)
    else:
        result = pip_build(ws, budget, [*ws.pip_build_install(), *links, target], on_line=watch)
    ws.out.emit(
        "install_summary",
        "install",
        target=os.path.basename(target),
        kind=kind,
        built_wheel=normalize(ws.job.project) in built,
        built=built[:50],
        metadata_built=metadata_built,
        # {reason, stage, installed...} when a build was retried without isolation
        build_retry=ws.build_retry,
    )
    # site.py runs every "import" line of a .pth at each interpreter start: the
    # classic way to keep running code after install. The trace cannot see content.
    after = pth_files(ws.site_packages())
    changed = [info for name, info in sorted(after.items()) if pth_before.get(name) != info]
    ws.out.emit("pth_files", "install", files=changed[:50])
    return outcome_of(result)


def install_target(ws: Workspace) -> tuple[str, str]:
    """The wheel, else the sdist, else ``project==version`` from the wheelhouse."""
    wheels = [f for f in ws.job.files if f.endswith(".whl")]
    if wheels:
        return str(ws.job_dir / wheels[0]), "wheel"
    sdist = ws.sdist()
    if sdist is not None:
        return str(sdist), "sdist"
    project, version = ws.job.project, ws.job.version
    return (f"{project}=={version}" if version else project), "requirement"


def pth_files(site: Path | None) -> dict[str, dict[str, Any]]:
    """.pth files of a site-packages: name → {name, size, imports, lines (the import lines)}."""
    found: dict[str, dict[str, Any]] = {}
    if site is None:
        return found
    for path in sorted(site.glob("*.pth"))[:200]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as f:
                data = f.read(64 * 1024)
        except OSError:
            continue
        lines = data.decode("utf-8", "replace").splitlines()
        code = [ln[:300] for ln in lines if ln.startswith(("import ", "import\t"))]
        found[path.name] = {
            "name": path.name,
            "size": len(data),
            "imports": bool(code),
            "lines": code[:5],
        }
    return found
