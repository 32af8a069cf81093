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
from slave.job.executor import unless_disk_fails
from slave.vm.accel import Accel
from slave.vm.errors import VMError
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


async def test_full_slave_disk_ends_the_work_as_the_slaves_failure(
    image: Image, tmp_path: Path
) -> None:
    """The VM's directory on a 64 MiB file system the guest then fills: QEMU pauses the guest
    (``werror=enospc``) and reports ``BLOCK_IO_ERROR``; the job's work stops at once with a
    VMError saying the disk failed (an ``infra_error``), not at the phase deadline as a
    package that hung."""
    small = tmp_path / "small"
    small.mkdir()
    mount = await asyncio.create_subprocess_exec("mount", "-t", "tmpfs", "-o", "size=64m",
                                                 "pyti-test", str(small))  # fmt: skip
    assert await mount.wait() == 0
    try:
        async with await VM.start(image, small / "vm", Accel.TCG) as vm:
            guest = await Guest.connect(vm, image, timeout=120)
            # Random data (qcow2 does not store zeroes), past the page cache, onto the disk.
            fill = "dd if=/dev/urandom of=/var/tmp/fill bs=1M count=256 oflag=direct"
            started = time.monotonic()
            with pytest.raises(VMError) as failed:
                await unless_disk_fails(vm, guest.run(fill, timeout=600))
            took = time.monotonic() - started
            await guest.close()
    finally:
        umount = await asyncio.create_subprocess_exec("umount", "-l", str(small))
        await umount.wait()
    assert "the guest's disk failed on write" in str(failed.value), failed.value
    assert "paused the guest" in str(failed.value), failed.value
    assert took < 300, f"the failure was seen after {took:.0f} s"
    print(f"\nfull slave disk: seen after {took:.1f} s: {failed.value}")
