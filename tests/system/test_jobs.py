"""Whole jobs in real QEMU VMs: the slave daemon, a fake master and a fake PyPI on loopback.

Each job costs 10-40 s under TCG, so there are few of them, and each checks a lot.
"""

from __future__ import annotations

import asyncio
import ensurepip
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from protocol.messages import ImageInfo, JobCancel, JobResult
from protocol.results import phases_to_json
from slave.config import SlaveConfig
from slave.daemon import SlaveDaemon
from slave.image_builder.manifest import Image
from slave.job.executor import VMExecutor
from slave.prepare import PipOptions
from slave.vm.accel import Accel
from tests.fakes.dists import FAILING_TEST, make_project
from tests.fakes.master import FakeMaster, stop_task
from tests.fakes.pypi import HERMETIC_PIP_ARGS, FakePyPI, hermetic_pip_env

pytestmark = pytest.mark.system

SECRET = b"system-test-secret-0123456789abcdef"
JOB_TIMEOUT = 900.0  # TCG on a shared 2-core machine: a job can take minutes


@dataclass
class Harness:
    master: FakeMaster
    pypi: FakePyPI
    daemon: SlaveDaemon
    work_dir: Path
    #: the image every job names (``$PYTI_TEST_IMAGE``, default bookworm)
    image: str = "bookworm"
    next_id: int = 1

    async def run(self, project: str, version: str, **offer: object) -> tuple[int, JobResult]:
        job_id = self.next_id
        self.next_id += 1
        await self.master.offer(job_id, project=project, version=version, image=self.image,
                                **offer)  # type: ignore[arg-type]  # fmt: skip
        return job_id, await self.master.wait_result(job_id, timeout=JOB_TIMEOUT)


@pytest.fixture
async def harness(tmp_path: Path, image: Image) -> AsyncIterator[Harness]:
    async with FakeMaster(SECRET) as master, FakePyPI() as pypi:
        config = SlaveConfig(
            master_host="127.0.0.1",
            master_port=master.port,
            secret=SECRET,
            image_dir=image.dir.parent,
            work_dir=tmp_path / "w",
            name="system-slave",
            accel="tcg",
            pypi_url=pypi.base_url,
            timeouts={"tests": 600.0, "install": 600.0},
        )
        pip = PipOptions(index_url=pypi.index_url, args=HERMETIC_PIP_ARGS, env=hermetic_pip_env())
        executor = VMExecutor({image.name: image}, Accel.TCG, config, pip=pip)
        info = ImageInfo(image.name, image.python_version, image.digest)
        daemon = SlaveDaemon(config, images=[info], accel="tcg", executor=executor)
        task = asyncio.create_task(daemon.run())
        try:
            await master.wait_session()
            yield Harness(master, pypi, daemon, tmp_path / "w", image.name)
        finally:
            await stop_task(task)


def assert_well_formed(h: Harness, job_id: int, result: JobResult) -> None:
    """Events contiguous from 1 to last_seq, once each; isolation recorded; job dir gone."""
    assert h.master.seqs(job_id) == list(range(1, result.last_seq + 1))
    assert h.master.duplicates[job_id] == 0
    assert result.isolation == "tcg"
    assert not (h.work_dir / "jobs" / str(job_id)).exists()


async def test_passing_and_failing_packages(harness: Harness, tmp_path: Path) -> None:
    """A package whose tests pass gives passed; one with a failing test gives failed, and
    its reason names the test and what it said."""
    harness.pypi.add_project(tmp_path / "d", "goodpkg", "1.0")
    harness.pypi.add_project(tmp_path / "d", "redpkg", "1.0", test_body=FAILING_TEST)

    job_id, result = await harness.run("goodpkg", "1.0")
    assert result.outcome == "passed", result.summary
    for phase in ("prepare", "boot", "upload", "install", "import", "tests"):
        assert phases_to_json(result.phases)[phase]["status"] == "passed", (phase, result.phases)
    tests = result.summary.to_json()["tests"]
    assert tests["passed"] >= 1 and tests["failed"] == 0
    assert result.summary.to_json()["verdict"] == "clean", result.summary.to_json()["findings"]
    assert 0 <= result.summary.to_json()["quality"]["score"] <= 100
    names = harness.master.names(job_id)
    assert "trace" in names and "phase_finished" in names and names[-1] == "job_finished"
    assert_well_formed(harness, job_id, result)

    job_id, result = await harness.run("redpkg", "1.0")
    assert result.outcome == "failed"
    assert phases_to_json(result.phases)["tests"]["status"] == "failed"
    assert result.summary.to_json()["tests"]["failed"] == 1
    assert result.summary.reason == (
        "1 of 1 tests failed, first tests/test_x.py::test_fails: assert 1 == 2"
    ), result.summary.reason
    assert_well_formed(harness, job_id, result)

    # A test module the release's own code keeps from importing is a failed test; one
    # that needs a module nobody installed is set aside, and so is a test that reads
    # data the sdist does not ship.
    harness.pypi.add_project(tmp_path / "d", "subpkg", "1.0", extra_files=BROKEN_SUBMODULE)
    job_id, result = await harness.run("subpkg", "1.0")
    tests = result.summary.to_json()["tests"]
    assert result.outcome == "failed", result.summary
    assert (tests["passed"], tests["failed"]) == (1, 2), tests
    assert [m["module"] for m in tests["uncollectable"]["modules"]] == ["tests/test_trio.py"]
    assert list(tests["unshipped_failures"]["files"]) == ["fixtures/cases.json"], tests
    assert (result.summary.reason or "").startswith(
        "1 of 3 tests failed, first tests/test_sub.py: "
        "AttributeError: 'dict' object has no attribute 'first'"
    ), result.summary.reason


#: subpkg.sub is broken (AttributeError at import); tests/test_sub.py imports it,
#: tests/test_trio.py needs
#: trio, tests/test_data.py reads a file the sdist does not ship.
BROKEN_SUBMODULE = {
    "subpkg/sub.py": "TABLE = {}\nFIRST = TABLE.first()\n",
    "tests/test_sub.py": "import subpkg.sub\n\n\ndef test_sub():\n    pass\n",
    "tests/test_trio.py": "import trio\n\n\ndef test_trio():\n    pass\n",
    "tests/test_data.py": "def test_cases():\n    open('fixtures/cases.json').read()\n",
}


#: An in-tree build backend (nothing to install) whose metadata refuses every Python 3;
#: its PKG-INFO leaves Requires-Python to the build (``Dynamic``), so only the guest's pip
#: can see it.
OLD_SDIST_BACKEND = {
    "PKG-INFO": "Metadata-Version: 2.2\nName: oldsdist\nVersion: 1.0\nDynamic: Requires-Python\n",
    "pyproject.toml": (
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n\n'
        '[project]\nname = "oldsdist"\nversion = "1.0"\ndynamic = ["requires-python"]\n'
        "dependencies = []\n"
    ),
    "backend.py": (
        "import os\n\n\ndef get_requires_for_build_wheel(config_settings=None):\n"
        "    return []\n\n\n"
        "def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):\n"
        "    name = 'oldsdist-1.0.dist-info'\n"
        "    os.makedirs(os.path.join(metadata_directory, name))\n"
        "    with open(os.path.join(metadata_directory, name, 'METADATA'), 'w') as f:\n"
        "        f.write('Metadata-Version: 2.1\\nName: oldsdist\\nVersion: 1.0\\n'\n"
        "                'Requires-Python: <3\\n')\n"
        "    return name\n\n\n"
        "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n"
        "    raise RuntimeError('pip checks Requires-Python before it builds the wheel')\n"
    ),
}


async def test_package_that_does_not_install(harness: Harness, tmp_path: Path) -> None:
    """A release refusing the guest's Python fails install; later phases skip. A wheel (which
    uv would install) and an sdist whose PKG-INFO says so (which the guest's prepared build
    and uv would install) are refused by the slave before the guest runs anything; an sdist
    that leaves Requires-Python to its build is refused by pip in the guest, after building
    its metadata."""
    harness.pypi.add_project(tmp_path / "d", "oldpkg", "1.0", requires_python="<3", sdist=False)
    harness.pypi.add_project(tmp_path / "d", "staticsdist", "1.0", requires_python="<3",
                             wheel=False)  # fmt: skip
    harness.pypi.add_project(tmp_path / "d", "oldsdist", "1.0", requires_python="<3", wheel=False,
                             extra_files=OLD_SDIST_BACKEND)  # fmt: skip
    for project, checked_on in (("oldpkg", "host"), ("staticsdist", "host"), ("oldsdist", None)):
        job_id, result = await harness.run(project, "1.0")
        assert result.outcome == "failed", result.summary.to_json()
        phases = phases_to_json(result.phases)
        assert phases["install"]["status"] == "failed"
        assert phases["import"]["status"] == "skipped"
        reason = str(result.summary.reason)
        assert reason.startswith("install failed: "), reason
        if checked_on == "host":
            pattern = rf"{project} 1\.0 requires a different Python: 3\.\d+\.\d+ not in '<3'$"
            assert re.search(pattern, reason), reason
        events = [e for _, e in sorted(harness.master.events[job_id].items())]
        install = [e for e in events if e.event == "phase_finished" and e.phase == "install"]
        assert install[0].fields.get("checked_on") == checked_on
        if checked_on is None:  # the guest's pip said why
            said = [str(e.fields.get("line")) for e in events if e.event == "output"]
            assert any("requires a different Python" in line for line in said), said[-40:]
        assert_well_formed(harness, job_id, result)


UNITTEST_MODULE = (
    "import unittest\n\nimport {module}\n\n\nclass Checks(unittest.TestCase):\n"
    "    def test_version(self):\n        self.assertTrue({module}.__version__)\n\n"
    "    def test_name(self):\n        self.assertEqual({module}.__name__, '{module}')\n"
)


async def test_tests_found_where_projects_put_them(harness: Harness, tmp_path: Path) -> None:
    """unittest modules not named test_*.py run (tests/test.py); a wheel-only release runs
    the tests inside its package; neither ends ``incomplete``."""
    body = UNITTEST_MODULE.format(module="oddtests")
    harness.pypi.add_project(tmp_path / "d", "oddtests", "1.0", test_body="",
                             extra_files={"tests/test.py": body})  # fmt: skip
    job_id, result = await harness.run("oddtests", "1.0")
    assert result.outcome == "passed", result.summary.to_json()
    assert result.summary.to_json()["tests"]["passed"] == 2, result.summary.to_json()["tests"]
    assert_well_formed(harness, job_id, result)

    inside = UNITTEST_MODULE.format(module="wheelonly")
    harness.pypi.add_project(tmp_path / "d", "wheelonly", "1.0", sdist=False,
                             extra_files={"wheelonly/tests/__init__.py": "",
                                          "wheelonly/tests/test_inside.py": inside})  # fmt: skip
    job_id, result = await harness.run("wheelonly", "1.0")
    assert result.outcome == "passed", result.summary.to_json()
    assert result.summary.to_json()["tests"]["passed"] == 2, result.summary.to_json()["tests"]
    assert_well_formed(harness, job_id, result)


#: A flat-layout sdist with a C extension and a pure fallback, as multidict and yarl ship:
#: pytest runs from the sdist's root, whose copy of the package has no compiled module.
#: Its in-tree backend compiles the extension with cc (no setuptools to install).
C_EXTENSION_BACKEND = """\
import os
import subprocess
import sys
import sysconfig
import zipfile

DIST = "flatext-1.0.dist-info"
METADATA = "Metadata-Version: 2.1\\nName: flatext\\nVersion: 1.0\\n"


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    os.makedirs(os.path.join(metadata_directory, DIST))
    with open(os.path.join(metadata_directory, DIST, "METADATA"), "w") as f:
        f.write(METADATA)
    return DIST


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    module = "flatext/_speed" + sysconfig.get_config_var("EXT_SUFFIX")
    built = os.path.join(wheel_directory, "_speed.so")
    include = sysconfig.get_paths()["include"]
    subprocess.run(["cc", "-shared", "-fPIC", "-I", include, "flatext/_speed.c", "-o", built],
                   check=True)
    tag = "cp%d%d" % sys.version_info[:2]
    name = "flatext-1.0-%s-%s-linux_x86_64.whl" % (tag, tag)
    wheel = "Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: false\\n"
    wheel += "Tag: %s-%s-linux_x86_64\\n"
    with open(built, "rb") as f:
        files = {module: f.read()}
    with open("flatext/__init__.py", "rb") as f:
        files["flatext/__init__.py"] = f.read()
    files[DIST + "/METADATA"] = METADATA.encode()
    files[DIST + "/WHEEL"] = (wheel % (tag, tag)).encode()
    files[DIST + "/RECORD"] = "".join(p + ",,\\n" for p in [*files, DIST + "/RECORD"]).encode()
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    os.remove(built)
    return name
"""
C_EXTENSION_SDIST = {
    "pyproject.toml": (
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n\n'
        '[project]\nname = "flatext"\nversion = "1.0"\ndependencies = []\n'
    ),
    "backend.py": C_EXTENSION_BACKEND,
    "flatext/_speed.c": (
        "#include <Python.h>\n\n"
        "static PyObject *twice(PyObject *self, PyObject *arg) {\n"
        "    long v = PyLong_AsLong(arg);\n    return PyLong_FromLong(2 * v);\n}\n\n"
        'static PyMethodDef methods[] = {{"twice", twice, METH_O, NULL}, {NULL}};\n'
        'static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_speed", NULL, -1, methods};\n'
        "PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&mod); }\n"
    ),
}
C_EXTENSION_INIT = (
    '__version__ = "{version}"\n\n'
    "try:\n    from flatext._speed import twice\nexcept ImportError:\n    twice = None\n"
)
C_EXTENSION_TEST = (
    "import subprocess\n\nimport flatext\n\n\ndef test_the_c_implementation_is_there():\n"
    "    assert flatext.twice is not None, flatext.__file__\n    assert flatext.twice(21) == 42\n"
    "\n\ndef test_with_mercurial():  # a CI runner's tool the guest does not have\n"
    "    subprocess.run(['hg', 'version'], check=True)\n"
)


async def test_flat_sdist_tests_see_its_compiled_module(harness: Harness, tmp_path: Path) -> None:
    """The extension built by the install phase is where the tests import the package from:
    the sdist's tree (it once failed every C-only test: multidict 1,156 of 2,783). A test
    that runs a program the guest lacks (hg) is counted apart, not as the release's."""
    harness.pypi.add_project(tmp_path / "d", "flatext", "1.0", wheel=False,
                             package_body=C_EXTENSION_INIT, test_body=C_EXTENSION_TEST,
                             extra_files=C_EXTENSION_SDIST)  # fmt: skip
    job_id, result = await harness.run("flatext", "1.0")
    summary = result.summary.to_json()
    assert result.outcome == "passed", summary
    assert summary["tests"]["passed"] == 1, summary["tests"]
    assert list(summary["tests"]["program_failures"]["programs"]) == ["hg"], summary["tests"]
    assert result.summary.reason == (
        "1 tests failed only because the guest lacks a program they run (hg)"
    ), result.summary.reason
    events = [e for _, e in sorted(harness.master.events[job_id].items())]
    said = [str(e.fields.get("message")) for e in events if e.event == "log"]
    assert any("flatext/_speed.cpython-3" in line for line in said), said
    assert_well_formed(harness, job_id, result)


#: Fails its import on purpose, naming what the guest's RNG and clock gave it.
HYGIENE_PROBE = (
    "import os, time\n\n"
    "raise RuntimeError(f'HYGIENE {{os.urandom(16).hex()}} {{time.time():.0f}}')\n"
)


async def test_each_restored_vm_has_its_own_entropy_and_the_right_clock(
    harness: Harness, tmp_path: Path
) -> None:
    """Two jobs restored from one RAM snapshot read different random bytes, and the guest's
    wall clock is the host's (the snapshot's frozen clock is set by the job)."""
    harness.pypi.add_project(tmp_path / "d", "hygiene", "1.0", sdist=False,
                             package_body=HYGIENE_PROBE)  # fmt: skip
    seen: list[tuple[str, float]] = []
    for _ in range(2):
        started = time.time()
        job_id, result = await harness.run("hygiene", "1.0")
        ended = time.time()
        reason = str(result.summary.reason)
        found = re.search(r"HYGIENE ([0-9a-f]{32}) (\d+)", reason)
        assert found, reason
        guest_time = float(found.group(2))
        assert started - 5 <= guest_time <= ended + 5, (started, guest_time, ended)
        seen.append((found.group(1), guest_time))
        assert_well_formed(harness, job_id, result)
    assert seen[0][0] != seen[1][0]


async def test_a_sleeper_at_import_ends_at_its_timeout(harness: Harness, tmp_path: Path) -> None:
    """``time.sleep(7200)`` at import: the job ends seconds after the import timeout
    (timed_out), not at a heartbeat or the job's budget; nothing is left behind."""
    harness.pypi.add_project(tmp_path / "d", "sleeper", "1.0", sdist=False,
                             package_body="import time\n\ntime.sleep(7200)\n")  # fmt: skip
    job_id = harness.next_id
    task = asyncio.create_task(harness.run("sleeper", "1.0", timeouts={"import": 10}))
    await harness.master.wait_for(
        lambda: any(
            e.event == "phase_started" and e.phase == "import"
            for e in harness.master.events.get(job_id, {}).values()
        ),
        timeout=JOB_TIMEOUT,
    )
    import_started = time.monotonic()
    _, result = await task
    assert time.monotonic() - import_started < 10 + 45  # quality phase and teardown under TCG
    assert result.outcome == "timed_out", result.summary.to_json()
    assert phases_to_json(result.phases)["import"]["status"] == "timed_out"
    assert_well_formed(harness, job_id, result)


async def test_host_runs_no_package_code(harness: Harness, tmp_path: Path) -> None:
    """An sdist whose setup.py writes a marker: it runs in the guest (traced), never on the host."""
    if harness.image != "bookworm":  # the only setuptools wheel at hand is ensurepip's
        pytest.skip("ensurepip's setuptools 65 does not run on the image's Python 3.12+")
    marker = f"/tmp/pyti-marker-{secrets.token_hex(8)}"
    setup_py = (
        f"import pathlib\npathlib.Path({marker!r}).write_text('ran')\n"
        "from setuptools import setup\nsetup(name='markerpkg', version='1.0')\n"
    )
    proj = make_project(
        tmp_path / "d", "markerpkg", "1.0", wheel=False, extra_files={"setup.py": setup_py}
    )
    harness.pypi.add(proj.files[0])
    # The guest builds the sdist: it needs setuptools as a wheel (any will do).
    bundled = Path(ensurepip.__file__).parent / "_bundled"
    harness.pypi.add(next(bundled.glob("setuptools-*.whl")))
    job_id, result = await harness.run("markerpkg", "1.0")
    assert not os.path.exists(marker), "package code ran on the host"  # noqa: ASYNC240
    assert not list(harness.work_dir.rglob(Path(marker).name))
    stored = harness.master.events[job_id]
    traced = [
        e for e in stored.values() if e.event == "trace" and Path(marker).name in str(e.fields)
    ]
    assert traced, f"setup.py did not run in the guest: {result.outcome} {result.summary}"
    assert phases_to_json(result.phases)["install"]["status"] in ("passed", "failed")
    assert_well_formed(harness, job_id, result)


async def test_cancel_mid_job_and_phase_timeout(harness: Harness, tmp_path: Path) -> None:
    """Cancel stops the VM within seconds (cancelled); tests past their timeout: phase timed_out,
    job incomplete (a slow suite under emulation is not the release's failure)."""
    sleepy = "import time\n\n\ndef test_sleeps():\n    time.sleep(600)\n"
    harness.pypi.add_project(tmp_path / "d", "sleepy", "1.0", test_body=sleepy)

    await harness.master.offer(50, project="sleepy", version="1.0", image=harness.image)
    await harness.master.wait_for(
        lambda: any(
            e.event == "phase_started" and e.phase == "tests"
            for e in harness.master.events.get(50, {}).values()
        ),
        timeout=JOB_TIMEOUT,
    )
    loop = asyncio.get_running_loop()
    asked = loop.time()
    await harness.master.send(JobCancel(50, 1, "test cancels"))
    result = await harness.master.wait_result(50, timeout=30)
    assert loop.time() - asked < 15
    assert result.outcome == "cancelled" and result.summary.to_json()["error"] == "test cancels"
    assert not (harness.work_dir / "jobs" / "50").exists()  # VM dir and job files gone

    job_id, result = await harness.run("sleepy", "1.0", timeouts={"tests": 8})
    assert result.outcome == "incomplete", result.phases
    assert phases_to_json(result.phases)["tests"]["status"] == "timed_out"
    assert "did not finish within their time budget" in str(result.summary.reason)
    assert_well_formed(harness, job_id, result)
