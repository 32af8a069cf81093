"""A release that needs a newer Python runs in the trixie image (Python 3.13), end to end.

Real ``pyti master`` and ``pyti slave`` processes, a fake PyPI on loopback. The
master knows bookworm's Python from its config (``[images]``) and trixie's from
the slave, which holds only trixie: the choice is the master's, by Requires-Python.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from slave.image_builder.manifest import Image
from tests.fakes.pypi import FakePyPI
from tests.system.daemons import Api, Cluster

pytestmark = pytest.mark.system

JOB_TIMEOUT = 900.0  # one TCG job on a loaded 2-core machine

#: Runs in the guest: Python 3.13, and a C file that includes Python.h compiles.
NEEDS_313 = """\
import subprocess
import sys
import sysconfig


def test_python_313_with_a_compiler_and_headers(tmp_path):
    assert sys.version_info[:2] == (3, 13)
    src = tmp_path / "m.c"
    src.write_text("#include <Python.h>\\nint f(void) {{ return Py_IsInitialized(); }}\\n")
    include = sysconfig.get_paths()["include"]
    subprocess.run(["cc", "-c", "-I", include, str(src), "-o", str(tmp_path / "m.o")], check=True)
    assert (tmp_path / "m.o").stat().st_size > 0
"""


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: a VM's Unix sockets must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="py-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def pypi() -> AsyncIterator[FakePyPI]:
    async with FakePyPI() as index:
        yield index


async def test_release_needing_python_312_runs_on_trixie(
    trixie_image: Image, short_dir: Path, pypi: FakePyPI
) -> None:
    """Requires-Python >=3.12 goes to trixie; its 3.13-only dependency is fetched; tests pass."""
    pypi.add_project(short_dir / "d", "dep313", "1.0", requires_python=">=3.13", sdist=False)
    pypi.add_project(
        short_dir / "d",
        "newpy",
        "1.0",
        requires_python=">=3.12",
        requires_dist=["dep313"],
        test_body=NEEDS_313,
    )
    images = short_dir / "images"
    images.mkdir()
    (images / "trixie").symlink_to(trixie_image.dir)  # this slave holds trixie only
    cluster = Cluster(short_dir, pypi_url=pypi.base_url)
    try:
        master = cluster.master(config={"images": {"bookworm": "3.11"}})
        await master.start()
        await cluster.slave("s1", images).start()
        async with Api(master.http_url, cluster.token) as api:
            await api.wait_slave("s1")
            job_id = await api.submit("newpy", "1.0")
            job = await api.wait_job(job_id, lambda j: j["state"] == "finished", JOB_TIMEOUT)

    finally:
        await cluster.stop()

    assert job["image"] == "trixie"
    assert job["outcome"] == "passed", (job["phases"], job["summary"])
    assert job["summary"]["tests"]["passed"] == 1
