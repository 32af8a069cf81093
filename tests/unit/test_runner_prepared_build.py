"""Builds in a prepared build environment (``guest_runner.prepared_build``) on the host.

Same harness as ``test_runner.py``: the runner zipapp, building sdists whose in-tree
PEP 517 backend (``backend-path``) stands for a real one. The prepared environment is
made here the way the image builder makes one (a ``--target`` folder and its
``pyti-env.json``), holding ``packaging`` repacked from this interpreter.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from pathlib import Path

import pytest

from guest_runner.prepared_build import build_system, candidate_envs
from tests.fakes.dists import build_sdist, dedent
from tests.unit import test_runner as harness
from tests.unit.test_runner import RunJob, one
from tests.unit.test_runner_build import backend, sdist

wheelhouse = harness.wheelhouse
runner_pyz = harness.runner_pyz
run_job = harness.run_job
pytestmark = harness.pytestmark


def make_env(envs: Path, name: str, dists: tuple[str, ...], order: int = 0) -> Path:
    """A prepared environment: the installed ``dists`` copied as a ``--target`` folder."""
    folder = envs / name
    folder.mkdir(parents=True)
    for dist_name in dists:
        dist = importlib.metadata.distribution(dist_name)
        for item in dist.files or []:
            path = str(item)
            if path.startswith("..") or "__pycache__" in path:
                continue
            dest = folder / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(str(dist.locate_file(item)), dest)
    (folder / "pyti-env.json").write_text(json.dumps({"provides": list(dists), "order": order}))
    return folder


@pytest.fixture
def envs(tmp_path: Path) -> Path:
    folder = tmp_path / "build-envs"
    make_env(folder, "packaging", ("packaging",))
    return folder


def events_of(events: list[dict[str, object]], name: str) -> list[dict[str, object]]:
    return [e for e in events if e["event"] == name]


def test_built_in_one_isolated_interpreter_of_the_job_venv(
    tmp_path: Path, run_job: RunJob, envs: Path
) -> None:
    """The wheel is built by the prepared path, in the job venv's interpreter (a .pth the
    build writes into site-packages lands in the job venv, as under pip), isolated from
    the job venv's packages (pytest is installed there), then installed: pip never runs."""
    prelude = dedent(
        """
        import importlib.util, os, sys, sysconfig
        if importlib.util.find_spec("pytest") is not None:
            raise RuntimeError("the job venv's packages are visible to the build")
        if importlib.util.find_spec("packaging") is None:
            raise RuntimeError("the prepared environment is not on sys.path")
        with open(os.path.join(sysconfig.get_path("purelib"), "zz-demo.pth"), "w") as f:
            f.write("import os\\n")
        """
    )
    events = run_job(
        [sdist(tmp_path, backend(prelude))], phases=("install", "import"), build_envs_dir=envs
    )
    prepared = one(events, "prepared_build")
    assert prepared["status"] == "built", prepared
    assert prepared["env"] == "packaging"
    assert prepared["wheel"] == "demo-0.1-py3-none-any.whl"
    summary = one(events, "install_summary")
    assert summary["built_wheel"] is True and summary["kind"] == "sdist"
    pth = one(events, "pth_files")["files"]
    assert [f["name"] for f in pth] == ["zz-demo.pth"]
    assert (tmp_path / "venv").glob("lib/python3*/site-packages/zz-demo.pth")
    lines = [str(e["line"]) for e in events_of(events, "output") if e["phase"] == "install"]
    assert not any("Processing " in line or "Created wheel" in line for line in lines), lines
    statuses = {e["phase"]: e["status"] for e in events_of(events, "phase_finished")}
    assert statuses == {"install": "passed", "import": "passed"}


def test_what_the_environment_lacks_falls_back_to_pip(
    tmp_path: Path, run_job: RunJob, envs: Path
) -> None:
    """The backend asks for pytest (get_requires_for_build_wheel), which the prepared
    environment does not hold: nothing is built there, pip builds the sdist as before."""
    text = backend().replace(
        "def get_requires_for_build_wheel(config_settings=None):\n    return []",
        "def get_requires_for_build_wheel(config_settings=None):\n    return ['pytest>=1']",
    )
    assert "['pytest>=1']" in text
    events = run_job([sdist(tmp_path, text)], phases=("install",), build_envs_dir=envs)
    prepared = one(events, "prepared_build")
    assert prepared["status"] == "fallback"
    assert prepared["reason"] == "not met in the prepared environment: pytest>=1"
    lines = [str(e["line"]) for e in events_of(events, "output")]
    assert any("Created wheel for demo" in line for line in lines), lines
    assert one(events, "phase_finished")["status"] == "passed"


def test_a_failed_build_is_judged_by_pips_build(
    tmp_path: Path, run_job: RunJob, envs: Path
) -> None:
    """A build that fails in the prepared environment is not the verdict: pip builds it
    again, and the install's outcome is pip's (here it fails the same way)."""
    prelude = 'raise SystemExit("this release does not build")\n'
    events = run_job([sdist(tmp_path, backend(prelude))], phases=("install",), build_envs_dir=envs)
    prepared = one(events, "prepared_build")
    assert prepared["status"] == "fallback"
    assert str(prepared["reason"]).startswith("the build failed (exit status 1)")
    lines = [str(e["line"]) for e in events_of(events, "output")]
    assert sum("this release does not build" in line for line in lines) == 2
    assert one(events, "phase_finished")["status"] == "failed"


def test_the_next_environment_is_tried_when_one_does_not_meet_the_versions(
    tmp_path: Path, run_job: RunJob
) -> None:
    """Two environments provide ``packaging``; the first (as ``flit-core`` comes before
    ``flit-core<4`` in the recipe) holds a version the sdist's requirement excludes: the
    second builds it."""
    envs = tmp_path / "build-envs"
    old = make_env(envs, "a-old", ("packaging",), order=0)
    (info,) = old.glob("packaging-*.dist-info")
    meta = (info / "METADATA").read_text()
    version = importlib.metadata.version("packaging")
    (info / "METADATA").write_text(meta.replace(f"Version: {version}", "Version: 1.0", 1))
    make_env(envs, "b-new", ("packaging",), order=1)
    text = harness.PYPROJECT.format(module="demo", version="0.1").replace(
        "requires = []", 'requires = ["packaging>=20"]'
    )
    assert 'requires = ["packaging>=20"]' in text
    rebuilt = tmp_path / "rebuilt"
    files = {"backend.py": backend(), "pyproject.toml": text, "demo/__init__.py": ""}
    sdist_path = build_sdist(rebuilt, "demo", "0.1", files)
    events = run_job([sdist_path], phases=("install",), build_envs_dir=envs)
    prepared = one(events, "prepared_build")
    assert (prepared["status"], prepared["env"]) == ("built", "b-new"), prepared
    assert one(events, "phase_finished")["status"] == "passed"


def test_build_system_defaults_and_refusals(tmp_path: Path) -> None:
    none = build_system(tmp_path)
    assert none is not None
    assert (none.requires, none.backend) == (
        ["setuptools>=40.8.0"],
        "setuptools.build_meta:__legacy__",
    )
    (tmp_path / "pyproject.toml").write_text('[build-system]\nrequires = ["flit_core>=3.2"]\n')
    table = build_system(tmp_path)
    assert table is not None
    assert (table.requires, table.backend) == (
        ["flit_core>=3.2"],
        "setuptools.build_meta:__legacy__",
    )
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "b"\nbackend-path = ["../out"]\n'
    )
    assert build_system(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text("[build-system]\nrequires = 'setuptools'\n")
    assert build_system(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text("not toml [")
    assert build_system(tmp_path) is None


def test_the_smallest_environment_that_names_every_requirement(tmp_path: Path) -> None:
    def env(name: str, *provides: str) -> None:
        (tmp_path / name).mkdir()
        (tmp_path / name / "pyti-env.json").write_text(json.dumps({"provides": provides}))

    env("setuptools+wheel", "setuptools", "wheel", "packaging")
    env("setuptools+wheel+setuptools-scm", "setuptools", "wheel", "setuptools-scm", "packaging")
    env("hatchling", "hatchling", "packaging", "pathspec", "pluggy", "trove-classifiers")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "pyti-env.json").write_text("{")

    def chosen(*requires: str) -> str | None:
        found = candidate_envs(tmp_path, list(requires))
        return found[0].name if found else None

    assert chosen("setuptools>=61", "wheel") == "setuptools+wheel"
    assert chosen("setuptools", "setuptools_scm[toml]>=6.2") == "setuptools+wheel+setuptools-scm"
    assert chosen("Hatchling ; python_version >= '3'") == "hatchling"
    assert chosen("setuptools", "cython") is None
    assert chosen("@bad") is None
    assert candidate_envs(tmp_path / "absent", ["setuptools"]) == []
    # the same names twice: both are candidates, in the recipe's order (not by name)
    env("flit-core-lt4", "flit-core", "packaging")
    env("flit-core", "flit-core", "packaging")
    (tmp_path / "flit-core" / "pyti-env.json").write_text(
        json.dumps({"provides": ["flit-core", "packaging"], "order": 5})
    )
    (tmp_path / "flit-core-lt4" / "pyti-env.json").write_text(
        json.dumps({"provides": ["flit-core", "packaging"], "order": 6})
    )
    names = [p.name for p in candidate_envs(tmp_path, ["flit_core>=3.2,<4"])]
    assert names == ["flit-core", "flit-core-lt4"]
