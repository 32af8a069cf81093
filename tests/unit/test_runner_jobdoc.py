"""The job document: one typed definition the slave writes and the guest runner reads."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from guest_runner.jobdoc import DEFAULT_TIMEOUTS, PHASES, JobDocument, JobDocumentError
from slave.image_builder.rootfs import BUILD_ENV_BASE

PACKAGE = Path(__file__).parents[2] / "guest_runner"


def minimal(**extra: Any) -> dict[str, Any]:
    return {"job_id": 7, "project": "demo", "version": "1.0", **extra}


def test_round_trip_keeps_every_field() -> None:
    """to_json then from_json gives the same document back."""
    doc = JobDocument(
        job_id=3,
        project="demo",
        version="1.0",
        files=("demo-1.0.tar.gz",),
        requirements=("attrs>=22",),
        test_requirements=("hypothesis", "trio>=0.22"),
        build_requires=("setuptools>=61",),
        build_imports=("requests",),
        build_metadata=True,
        metadata_wait=42.0,
        phases=("install", "tests"),
        timeouts={"install": 60.0, "tests": 30.0},
        output_cap=1000,
        trace_cap=2000,
        nproc_limit=64,
        entropy="ab" * 32,
        epoch=1_700_000_000.5,
    )
    assert JobDocument.from_json(json.loads(json.dumps(doc.to_json()))) == doc


def test_defaults_fill_what_is_missing() -> None:
    """Only job_id, project and version are required; phases and timeouts have defaults."""
    doc = JobDocument.from_json(minimal(timeouts={"tests": 5}))
    assert doc.phases == PHASES
    assert doc.test_requirements == ()
    assert (doc.build_requires, doc.build_imports, doc.build_metadata) == ((), (), False)
    assert doc.timeout("tests") == 5.0
    assert doc.timeout("install") == DEFAULT_TIMEOUTS["install"]


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ([], "expected an object"),
        ({"project": "demo", "version": "1"}, "'job_id' is missing"),
        (minimal(job_id=True), "'job_id'"),
        (minimal(project=None), "'project' must be a string"),
        (minimal(files="demo.whl"), "'files' must be a list of strings"),
        (minimal(files=["../etc/passwd"]), "not a plain file name"),
        (minimal(test_requirements=[1]), "'test_requirements'"),
        (minimal(build_imports="requests"), "'build_imports' must be a list of strings"),
        (minimal(build_metadata=1), "'build_metadata' must be a boolean"),
        (minimal(metadata_wait=0), "'metadata_wait' must be positive"),
        (minimal(phases=["install", "deploy"]), "unknown phase 'deploy'"),
        (minimal(timeouts={"tests": "900"}), "'timeouts.tests' must be a number"),
        (minimal(timeouts={"tests": 0}), "'timeouts.tests' must be positive"),
        (minimal(timeouts={"tests": True}), "'timeouts.tests' must be a number"),
        (minimal(output_cap=1.5), "'output_cap' must be a positive integer"),
        (minimal(nproc_limit=False), "'nproc_limit'"),
        (minimal(entropy=12), "'entropy' must be a hex string"),
        (minimal(epoch="soon"), "'epoch' must be a number"),
        (minimal(epoch=float("inf")), "'epoch' must be finite"),
        (minimal(surprise=1), "unknown key 'surprise'"),
    ],
)
def test_from_json_refuses_wrong_types_naming_the_key(data: object, names: str) -> None:
    """A wrong type, value or key is a JobDocumentError (a ValueError) naming the key."""
    with pytest.raises(JobDocumentError, match=names.replace("(", r"\(")):
        JobDocument.from_json(data)


#: Scripts the runner writes out and runs in another environment, and what they may
#: import from there: build_hooks.py runs in a prepared build environment, each of which
#: the image builder gives ``packaging`` (slave.image_builder.rootfs.BUILD_ENV_BASE);
#: pytest_plugin.py is copied into the job venv and loaded by its pytest (the runner
#: imports only its constants and ``install``, never the function that imports pytest).
RUN_ELSEWHERE = {"build_hooks.py": {"packaging"}, "pytest_plugin.py": {"pytest"}}


def test_package_is_stdlib_only() -> None:
    """guest_runner imports nothing but the standard library and itself (it runs in the guest)."""
    import sys

    assert set(RUN_ELSEWHERE["build_hooks.py"]) <= set(BUILD_ENV_BASE)
    for path in PACKAGE.rglob("*.py"):
        allowed = RUN_ELSEWHERE.get(path.name, set())
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = [node.module.split(".")[0]]
            else:
                continue
            for root in roots:
                ok = root == "guest_runner" or root in sys.stdlib_module_names or root in allowed
                assert ok, (path, root)
