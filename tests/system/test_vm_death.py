"""A job VM that dies under its job, seen from the host (real QEMU, TCG).

A package runs as the unprivileged ``tester`` and cannot panic or power off the
guest; the guest's root can (this test is root over the VM's SSH), and what the
host sees is the same whoever did it: the guest kernel panics, ``panic=-1``
resets it at once, ``-no-reboot`` turns the reset into QEMU's exit. The job
side of the same path (QEMU's end → ``infra_error`` → retried → quarantined) is
``test_qemu_killed_under_a_running_slave_is_retried_then_quarantined``
(``test_reliability.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

import pytest

from slave.image_builder.manifest import Image
from slave.vm.accel import Accel
from slave.vm.guest import Guest, GuestError
from slave.vm.machine import VM

pytestmark = pytest.mark.system


def _qemu_pid(vm_dir: Path) -> int:
    """The QEMU process running the VM in ``vm_dir`` (from /proc)."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if argv and argv[0].endswith("qemu-system-x86_64") and any(str(vm_dir) in a for a in argv):
            return int(proc.name)
    raise AssertionError(f"no QEMU process for {vm_dir}")


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def test_guest_kernel_panic_ends_the_vm_within_seconds(image: Image, tmp_path: Path) -> None:
    """A guest kernel panic mid-command: the command's stream breaks within seconds, the VM
    says how it ended (QEMU exit 0, shutdown guest-reset), teardown leaves nothing behind."""
    async with await VM.start(image, tmp_path, Accel.TCG) as vm:
        pid = _qemu_pid(vm.dir)
        guest = await Guest.connect(vm, image, timeout=60)
        lines: list[str] = []

        async def runner() -> None:  # a long guest command, as the job runner is
            async for line in guest.stream(["sh", "-c", "echo up; exec sleep 600"]):
                lines.append(line)

        streaming = asyncio.create_task(runner())
        async with asyncio.timeout(60):
            while not lines:  # noqa: ASYNC110  # the command is running in the guest
                await asyncio.sleep(0.05)
        panicked = time.monotonic()
        with contextlib.suppress(GuestError):  # the kernel dies before it answers
            await guest.run("echo c > /proc/sysrq-trigger", timeout=60)
        async with asyncio.timeout(60):
            with contextlib.suppress(GuestError):
                await streaming  # broken connection: GuestError; or EOF without exit status
        broke_s = time.monotonic() - panicked
        death = await vm.death()
        death_s = time.monotonic() - panicked
        console = vm.console_tail()
        await guest.close()
    assert "Kernel panic" in console, console[-2000:]  # a real panic, not another end
    assert death == "QEMU exited with status 0 (shutdown: guest-reset)", death
    assert broke_s < 10.0, f"the stream noticed the panic after {broke_s:.1f} s"
    assert _gone(pid), "QEMU still runs"
    assert not vm.dir.exists() and not os.listdir(tmp_path), "the VM left files"
    print(f"\nguest panic: stream broke after {broke_s:.2f} s, death known after {death_s:.2f} s")
