"""An sdist's wheel built in the image's prepared build environment: one interpreter.

pip spends most of an sdist install under emulation before the backend even starts:
its own start-up, a second pip that installs the backend (setuptools: thousands of
files) into a fresh isolated environment, then one interpreter per hook
(``get_requires_for_build_wheel``, ``prepare_metadata_for_build_wheel``,
``build_wheel``), each importing the backend again. Measured on a three-file
setuptools sdist under TCG: 12 s to pip's first line, 25 s installing setuptools,
5 + 6 + 6 s of hooks, of a 60 s install.

The image carries prepared build environments for the common backends
(``/opt/pyti/build-envs/NAME``, from the recipe's ``build_envs``; each folder holds
its packages, byte-compiled, and ``pyti-env.json`` naming what it provides). When the
sdist's ``[build-system]`` requirements name only what one of them provides, the
runner builds the wheel with ``build_hooks.py``: one interpreter of the *job venv*
(``sys.prefix`` is the job venv, as under pip: a ``setup.py`` writing into
site-packages writes where it would under pip), isolated exactly as pip's build
environment is (its ``sitecustomize`` drops the job venv's site-packages and adds the
prepared one), traced like any package code. The backend is called through
pyproject-hooks' ``_in_process`` (what pip runs). Versions, extras and what
``get_requires_for_build_wheel`` asks for are checked there first.

This only ever saves time: a build it cannot do (a requirement not met, no prepared
environment, a build that fails for any reason) falls back to pip's build, as before,
whose result is the release's; the failed attempt's trace stays in the job's record.
"""

from __future__ import annotations

import json
import os
import pkgutil
import re
import shutil
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeGuard

from guest_runner.archive import chown_tree, safe_extract
from guest_runner.budget import Budget
from guest_runner.outcome import Result
from guest_runner.phases.metadata import normalize
from guest_runner.workspace import Workspace

STAGE = "prepared_build"
#: under the job's scratch dir; the findings treat it as pip's build dirs (exec_from_temp)
WORK_DIR = "pyti-build"
ENV_FILE = "pyti-env.json"
#: pip's defaults (PEP 517/518) for an sdist without ``[build-system]``
DEFAULT_REQUIRES = ("setuptools>=40.8.0",)
LEGACY_BACKEND = "setuptools.build_meta:__legacy__"
#: build_hooks.py's exit status when a requirement is not met
UNMET = 3
#: at most this many prepared environments are tried for one sdist
MAX_CANDIDATES = 3
_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")

#: pip's build-environment ``sitecustomize`` (pip/_internal/build_env.py), with the
#: prepared environment as its one lib dir.
SITECUSTOMIZE = """\
import os, site, sys, sysconfig

# First, drop system-sites related paths.
original_sys_path = sys.path[:]
known_paths = set()
for path in {{sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}}:
    site.addsitedir(path, known_paths=known_paths)
system_paths = set(
    os.path.normcase(path)
    for path in sys.path[len(original_sys_path):]
)
original_sys_path = [
    path for path in original_sys_path
    if os.path.normcase(path) not in system_paths
]
sys.path = original_sys_path

# Second, add lib directories, ensuring .pth files are processed.
site.addsitedir({lib!r})
"""


class BuildSystem:
    """What an sdist's ``pyproject.toml`` says about its build (PEP 517/518 defaults)."""

    def __init__(self, requires: list[str], backend: str, backend_path: list[str]) -> None:
        self.requires = requires
        self.backend = backend
        self.backend_path = backend_path


def build_system(root: Path) -> BuildSystem | None:
    """The build system of the tree at ``root``; None when pip would refuse it or it
    needs what this path does not do (an unreadable table, a backend-path outside)."""
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))
    except FileNotFoundError:
        return BuildSystem(list(DEFAULT_REQUIRES), LEGACY_BACKEND, [])
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    table = data.get("build-system")
    if table is None:
        return BuildSystem(list(DEFAULT_REQUIRES), LEGACY_BACKEND, [])
    if not isinstance(table, dict):
        return None
    requires = table.get("requires")
    backend = table.get("build-backend", LEGACY_BACKEND)
    paths = table.get("backend-path", [])
    if not _strings(requires) or not isinstance(backend, str) or not _strings(paths):
        return None
    inside = []
    for entry in paths:
        path = os.path.normpath(root / entry)
        if os.path.commonpath([path, str(root)]) != str(root):
            return None
        inside.append(path)
    return BuildSystem(list(requires), backend, inside)


def _strings(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def candidate_envs(envs_dir: Path, requires: list[str]) -> list[Path]:
    """The prepared environments providing every name ``requires`` names, smallest first
    (then in the recipe's order, the newest line first as pip would pick it): versions
    are checked in the build's interpreter, and the next candidate is tried when one
    does not meet them (``flit-core``, then ``flit-core<4`` for ``flit_core>=3.2,<4``)."""
    wanted = set()
    for text in requires:
        found = _NAME.match(text)
        if found is None:
            return []
        wanted.add(normalize(found.group(1)))
    ranked: list[tuple[int, int, str, Path]] = []
    try:
        folders = sorted(p for p in envs_dir.iterdir() if p.is_dir())
    except OSError:
        return []
    for folder in folders:
        try:
            data = json.loads((folder / ENV_FILE).read_text("utf-8"))
            names = {normalize(str(n)) for n in data["provides"]}
            order = int(data.get("order", 0))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if wanted <= names:
            ranked.append((len(names), order, folder.name, folder))
    return [folder for *_, folder in sorted(ranked)][:MAX_CANDIDATES]


def in_process_script(tools_dir: Path) -> Path | None:
    """pyproject-hooks' ``_in_process.py`` in the tools venv, if the image has it."""
    found = sorted(
        tools_dir.glob("lib/python3*/site-packages/pyproject_hooks/_in_process/_in_process.py")
    )
    return found[0] if found else None


def build(
    ws: Workspace,
    budget: Budget,
    sdist: Path,
    out: Path,
    on_line: Callable[[str], None] | None = None,
) -> Path | None:
    """The wheel built in ``out``, or None: pip builds it instead (module docstring)."""
    started = time.monotonic()
    hooks = in_process_script(Path(ws.opts.tools_dir))
    envs_dir = Path(ws.opts.build_envs_dir)
    if hooks is None or not envs_dir.is_dir():
        return None  # an image without prepared environments: nothing to say
    work = ws.scratch / WORK_DIR
    root = _unpack(ws, sdist, work / "src")
    system = build_system(root) if root is not None else None
    envs = candidate_envs(envs_dir, system.requires) if system is not None else []
    if root is None or system is None or not envs:
        reason = "no prepared build environment provides " + (
            ", ".join(system.requires) if system is not None else "an unreadable build-system"
        )
        _report(ws, started, env=None, status="skipped", reason=reason)
        return None
    script = work / "build_hooks.py"
    script.write_bytes(pkgutil.get_data("guest_runner", "build_hooks.py") or b"")
    out.mkdir(parents=True, exist_ok=True)
    _give(ws, out, work)  # the unpacked tree, the script, the wheel folder: once
    reason = ""
    for env in envs:
        result, answer = _attempt(ws, budget, env, system, root, hooks, out, on_line)
        name = answer.get("wheel")
        wheel = out / name if isinstance(name, str) and name == os.path.basename(name) else None
        done = result.returncode == 0 and not result.timed_out
        if done and wheel is not None and wheel.is_file():
            _report(ws, started, env=env.name, status="built", wheel=wheel.name)
            return wheel
        if result.returncode != UNMET:
            failed = f"the build failed (exit status {result.returncode}); pip builds it"
            reason = "timed out" if result.timed_out else failed
            break
        reason = "not met in the prepared environment: " + ", ".join(
            str(u) for u in answer.get("unmet", [])
        )
    _report(ws, started, env=env.name, status="fallback", reason=reason[:500])
    return None


def _attempt(
    ws: Workspace,
    budget: Budget,
    env: Path,
    system: BuildSystem,
    root: Path,
    hooks: Path,
    out: Path,
    on_line: Callable[[str], None] | None,
) -> tuple[Result, dict[str, Any]]:
    """One run of build_hooks.py in ``env``: its result and its report. Each environment
    gets its own ``sitecustomize`` folder (a rewritten one of the same size within the
    same second would be read from its stale ``.pyc``)."""
    work = ws.scratch / WORK_DIR
    site = work / f"site-{env.name}"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE.format(lib=str(env)))
    _give(ws, site)
    report = work / "report.json"
    report.unlink(missing_ok=True)
    extra = {
        "PYTHONPATH": str(site),
        "PYTHONNOUSERSITE": "1",
        "_PYPROJECT_HOOKS_BUILD_BACKEND": system.backend,
        "PYTI_BUILD_REQUIRES": json.dumps(system.requires),
    }
    if system.backend_path:
        extra["_PYPROJECT_HOOKS_BACKEND_PATH_JSON"] = json.dumps(system.backend_path)
    script = str(work / "build_hooks.py")
    result = ws.run_as_tester(
        [ws.vpython, script, str(hooks), str(out), str(report)],
        budget,
        phase="install",
        cwd=str(root),
        on_line=on_line,
        stage=STAGE,
        extra_env=extra,
    )
    return result, _read_report(report)


def _give(ws: Workspace, *paths: Path) -> None:
    """``paths`` (whole trees) owned by the tester, who runs the build."""
    if ws.uid is not None and ws.gid is not None:
        for path in paths:
            chown_tree(path, ws.uid, ws.gid)


def _unpack(ws: Workspace, sdist: Path, dest: Path) -> Path | None:
    """The sdist's tree under ``dest`` (its one top folder), owned by the tester."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    try:
        safe_extract(sdist, dest)
    except (OSError, ValueError, EOFError, tarfile.TarError, zipfile.BadZipFile) as exc:
        ws.out.log("install", "warning", f"cannot unpack the sdist for a prepared build: {exc}")
        return None
    entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def _read_report(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes()[:65536])
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _report(ws: Workspace, started: float, **fields: Any) -> None:
    seconds = round(time.monotonic() - started, 3)
    ws.out.emit("prepared_build", "install", stage=STAGE, seconds=seconds, **fields)
