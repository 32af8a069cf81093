"""The guest runner's build steps on the host: stage ``metadata`` and the retry without
build isolation (``setup.py`` importing what it did not declare).

Same harness as ``test_runner.py`` (its fixtures): the runner zipapp, run with
``--no-drop-privileges`` under tmp paths, building sdists whose in-tree PEP 517
backend stands for ``setup.py``. The host's answer to the metadata
(``dependencies.json``) is written into the job directory beforehand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from guest_runner.jobdoc import DEPENDENCIES_READY
from tests.fakes.dists import build_wheel, dedent, make_project
from tests.unit import test_runner as harness
from tests.unit.test_runner import (
    BACKEND,
    PYPROJECT,
    RunJob,
    findings_of,
    finished,
    host_context,
    one,
)

# The harness's fixtures, used here as there.
wheelhouse = harness.wheelhouse
runner_pyz = harness.runner_pyz
run_job = harness.run_job
pytestmark = harness.pytestmark


def backend(prelude: str = "", requires: str = "") -> str:
    """The in-tree backend with ``prelude`` run at its import and ``requires`` in METADATA."""
    body = BACKEND.format(module="demo", version="0.1")
    if requires:
        old = 'f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n".encode()'
        new = old.replace('\\n".encode()', f'\\nRequires-Dist: {requires}\\n".encode()')
        assert old in body
        body = body.replace(old, new)
    return prelude + body


def sdist(tmp_path: Path, backend_text: str) -> Path:
    extra = {
        "backend.py": backend_text,
        "pyproject.toml": PYPROJECT.format(module="demo", version="0.1"),
    }
    proj = make_project(tmp_path / "dist", "demo", "0.1", wheel=False, extra_files=extra)
    assert proj.sdist is not None
    return proj.sdist


def answer(tmp_path: Path, **fields: Any) -> None:
    """The host's answer, already in the job directory when the runner asks."""
    job_dir = tmp_path / "job"
    job_dir.mkdir(exist_ok=True)
    (job_dir / DEPENDENCIES_READY).write_text(json.dumps({"proceed": True, **fields}))


def helper_wheel(tmp_path: Path, name: str) -> Path:
    return build_wheel(tmp_path / "wheels", name, "1.0", {f"{name}/__init__.py": "X = 1\n"})


def test_metadata_stage_is_traced_and_reported(tmp_path: Path, run_job: RunJob) -> None:
    """A dynamic build's wheel is built traced (stage metadata), its metadata reported, then
    that wheel installed: one build."""
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_rsa").write_text("bait key\n")
    prelude = 'import os\nopen(os.path.expanduser("~/.ssh/id_rsa")).read()\n'
    dep = helper_wheel(tmp_path, "helperdep")
    answer(tmp_path)
    events = run_job(
        [sdist(tmp_path, backend(prelude, requires="helperdep"))],
        phases=("install", "import"),
        extra={"build_metadata": True},
        job_wheels=(dep,),
    )
    assert finished(events, "install")["status"] == "passed"
    meta = one(events, "metadata")
    assert (meta["phase"], meta["stage"]) == ("install", "metadata")
    assert (meta["name"], meta["version"], meta["requires_dist"]) == ("demo", "0.1", ["helperdep"])
    staged = [e for e in events if e["event"] == "trace" and e.get("stage") == "metadata"]
    assert any("id_rsa" in e["line"] for e in staged)
    summary = one(events, "install_summary")
    assert summary["metadata_built"] is True and summary["built_wheel"] is True
    # built once: the install installs the wheel the metadata stage built
    hooks = [
        e for e in events if "Getting requirements to build wheel: started" in e.get("line", "")
    ]
    assert [e.get("stage") for e in hooks] == ["metadata"]
    found = findings_of([e for e in events if e.get("stage") == "metadata"], host_context(tmp_path))
    assert ("cred.bait", "install") in {(f.rule, f.phase) for f in found}


def test_undeclared_build_import_is_retried_without_isolation(
    tmp_path: Path, run_job: RunJob
) -> None:
    """A build dying on an undeclared import is retried once with that wheel in the venv."""
    helper = helper_wheel(tmp_path, "buildhelper")
    answer(tmp_path)
    events = run_job(
        [sdist(tmp_path, backend("import buildhelper\n"))],
        phases=("install", "import"),
        extra={"build_metadata": True, "build_imports": ["buildhelper"]},
        job_wheels=(helper,),
    )
    assert finished(events, "install")["status"] == "passed"
    retry = one(events, "build_retry")
    assert retry["stage"] == "metadata"
    assert "No module named 'buildhelper'" in retry["reason"]
    assert retry["installed"] == ["buildhelper"]
    assert one(events, "install_summary")["build_retry"] == {
        k: v for k, v in retry.items() if k not in ("event", "phase")
    }
    assert finished(events, "import")["status"] == "passed"
    traced = [e for e in events if e["event"] == "trace" and e.get("stage") == "build_retry"]
    assert traced  # installing the build imports is traced too


def test_failed_build_without_build_imports_is_not_retried(tmp_path: Path, run_job: RunJob) -> None:
    """No build imports from the host: a missing module fails install once, as the package's."""
    events = run_job(
        [sdist(tmp_path, backend("import buildhelper\n"))],
        phases=("install", "import"),
        extra={"build_metadata": True},
    )
    install = finished(events, "install")
    assert (install["status"], install["stage"]) == ("failed", "metadata")
    assert [e for e in events if e["event"] in ("build_retry", "metadata")] == []
    assert finished(events, "import")["status"] == "skipped"


def test_metadata_build_that_hangs_times_out_install(tmp_path: Path, run_job: RunJob) -> None:
    """A build hanging in stage metadata is the install phase's timeout, not the host's."""
    prelude = dedent(
        """
        import time
        time.sleep(300)
        """
    )
    events = run_job(
        [sdist(tmp_path, backend(prelude))],
        phases=("install", "import"),
        timeouts={"install": 40, "import": 60},
        extra={"build_metadata": True},
    )
    install = finished(events, "install")
    assert (install["status"], install.get("stage")) == ("timed_out", "metadata"), install
    assert [e for e in events if e["event"] == "metadata"] == []


def test_host_refusal_ends_install_as_error(tmp_path: Path, run_job: RunJob) -> None:
    """When the host cannot fetch the dependencies it says so; install ends with error."""
    answer(tmp_path, proceed=False, reason="index unreachable")
    events = run_job(
        [sdist(tmp_path, backend())], phases=("install",), extra={"build_metadata": True}
    )
    install = finished(events, "install")
    assert (install["status"], install["reason"]) == ("error", "index unreachable")
