"""A release wheel refusing the image's Python, through the real slave daemon and VMExecutor.

The guest installs a release's wheel with uv, which does not check a local wheel's
Requires-Python; the host checks it before the job reaches the guest. The image here
has the files of one but no bootable content: a job that reaches the VM fails to
boot, so a refused wheel must end without it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from protocol.messages import ImageInfo, JobResult
from protocol.results import phases_to_json
from slave.config import SlaveConfig
from slave.daemon import SlaveDaemon
from slave.image_builder.manifest import Image
from slave.job.executor import VMExecutor
from slave.prepare import PipOptions
from slave.vm.accel import Accel
from tests.fakes.images import fake_image
from tests.fakes.master import FakeMaster, stop_task
from tests.fakes.pypi import HERMETIC_PIP_ARGS, FakePyPI, hermetic_pip_env

SECRET = b"integration-test-secret-0123456789"


@dataclass
class Slave:
    master: FakeMaster
    pypi: FakePyPI
    next_id: int = 1

    async def run(self, project: str) -> tuple[int, JobResult]:
        job_id, self.next_id = self.next_id, self.next_id + 1
        await self.master.offer(job_id, project=project, version="1.0", image="img")
        return job_id, await self.master.wait_result(job_id, timeout=120)


@pytest.fixture
async def slave(tmp_path: Path) -> AsyncIterator[Slave]:
    fake_image(tmp_path / "images", "img")  # Python 3.11.2, no bootable disk
    image = Image.load(tmp_path / "images", "img")
    async with FakeMaster(SECRET) as master, FakePyPI() as pypi:
        config = SlaveConfig(
            master_host="127.0.0.1",
            master_port=master.port,
            secret=SECRET,
            image_dir=tmp_path / "images",
            work_dir=tmp_path / "w",
            name="slave-1",
            accel="tcg",
            pypi_url=pypi.base_url,
        )
        pip = PipOptions(index_url=pypi.index_url, args=HERMETIC_PIP_ARGS, env=hermetic_pip_env())
        executor = VMExecutor({image.name: image}, Accel.TCG, config, pip=pip)
        info = ImageInfo(image.name, image.python_version, image.digest)
        daemon = SlaveDaemon(config, images=[info], accel="tcg", executor=executor)
        task = asyncio.create_task(daemon.run())
        try:
            await master.wait_session()
            yield Slave(master, pypi)
        finally:
            await stop_task(task)


async def test_wheel_refusing_the_image_python_fails_install_without_the_vm(
    slave: Slave, tmp_path: Path
) -> None:
    """failed, "install failed: <pip's words>", as the guest's pip refusing it gave; the
    phases after install skipped; its dependency never fetched; the static scan still ran.
    The refusal comes before the VM boot and the quality scan end: the boot in flight is
    stopped, the scan awaited (the job once ended ``cancelled`` when it was not yet done)."""
    slave.pypi.add_project(tmp_path / "d", "oldpkg", "1.0", requires_python=">=3.11.4",
                           requires_dist=["nowhere"])  # fmt: skip
    job_id, result = await slave.run("oldpkg")
    assert result.summary.quality is not None, result.summary.to_json()
    summary = result.summary.to_json()
    assert result.outcome == "failed", summary
    assert summary["reason"] == (
        "install failed: oldpkg 1.0 requires a different Python: 3.11.2 not in '>=3.11.4'"
    )
    phases = phases_to_json(result.phases)
    assert phases["prepare"]["status"] == "passed"
    assert phases["install"]["status"] == "failed"
    for phase in ("import", "tests"):
        assert phases[phase] == {**phases[phase], "status": "skipped",
                                 "reason": "install did not pass"}  # fmt: skip
    assert phases["quality"]["status"] == "skipped"
    assert summary.get("error") is None
    assert list(summary["prepare"]["requirements"]) == ["nowhere"]
    assert slave.pypi.count("/simple/") == 0  # "nowhere" would have failed the prepare
    events = [e for _, e in sorted(slave.master.events[job_id].items())]
    finished = [e for e in events if e.event == "phase_finished" and e.phase == "install"]
    assert finished[0].fields["checked_on"] == "host"
    assert summary["verdict"] == "clean"


async def test_wheel_the_image_python_fits_goes_to_the_vm(slave: Slave, tmp_path: Path) -> None:
    """The same check passing: the job goes on to the VM, which cannot boot here, so the job
    is the slave's failure. The boot fails before the host's quality scan is done: that scan
    is still awaited, not cancelled with the boot (the job once ended ``cancelled`` here)."""
    slave.pypi.add_project(tmp_path / "d", "newpkg", "1.0", requires_python=">=3.11")
    _, result = await slave.run("newpkg")
    phases = phases_to_json(result.phases)
    assert result.outcome == "infra_error", result.summary.to_json()
    assert result.summary.quality is not None
    assert phases["prepare"]["status"] == "passed"
    assert phases["boot"]["status"] == "error" and "qemu-img" in phases["boot"]["reason"]
    assert "install" not in phases
