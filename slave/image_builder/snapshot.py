"""Snapshots: a booted, idle guest saved so jobs restore it instead of booting.

The guest is booted once under the accelerator jobs will use, SSH and Python
are exercised (so their pages are in the guest's page cache), the session is
closed and we wait until the guest's SSH waiter is back at its post. Then the
vCPUs are stopped and the RAM and device state is written through a passed fd
(``migrate fd:``, the sandbox forbids ``exec:``) into
``snapshot-<accel>-<cpu>.state``; the disk overlay the guest ran on becomes
``snapshot-<accel>-<cpu>.qcow2``, the base of every job overlay restored from it.
A job restores with ``-incoming fd:N`` and ``cont`` (see :mod:`slave.vm.machine`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any

from slave.image_builder.build import image_lock
from slave.image_builder.errors import BuildError
from slave.image_builder.manifest import (
    Image,
    file_entry,
    read_manifest,
    snapshot_key,
    write_manifest,
)
from slave.image_builder.progress import Progress
from slave.vm.accel import Accel
from slave.vm.argv import KERNEL_CMDLINE, MACHINE
from slave.vm.errors import VMError
from slave.vm.guest import Guest, GuestError
from slave.vm.machine import VM

#: What the guest runs before the snapshot, so jobs find it warm in the page cache.
#: First the boot's leftovers leave the page cache (with init_on_free their pages
#: become zeros, which cost nothing in the state file), then what every job uses
#: is read back in: Python, pip (sdist builds), strace, uv (wheel installs) and
#: pytest from the job venv. uv runs as tester so that its cache, in the snapshot's
#: disk, knows the job venv's interpreter with the guest's own file times (its key
#: is the interpreter's ctime, which the image's mke2fs copy changed): no Python
#: start-up to describe it in each job.
UV_WARMUP = (
    "{ [ ! -x /opt/pyti/tools/bin/uv ] || runuser -u tester -- env HOME=/home/tester "
    "/opt/pyti/tools/bin/uv pip list --python /home/tester/venv/bin/python --offline "
    "--no-config -q >/dev/null; }"
)
WARMUP = (
    "sync && echo 3 > /proc/sys/vm/drop_caches && "
    "python3 -c 'import json, os, subprocess, venv, shutil, signal, sys' "
    "&& python3 -m pip --version >/dev/null && strace -V >/dev/null && "
    f"{UV_WARMUP} && "
    "{ [ ! -x /home/tester/venv/bin/pytest ] || runuser -u tester -- "
    "/home/tester/venv/bin/python -m pytest -p no:cacheprovider --version >/dev/null 2>&1; } "
    "&& sync"
)
#: Seconds to let the guest settle after its SSH waiter reopened the port (the
#: pre-started sshd finishes its start-up meanwhile).
SETTLE = 2.0


async def make_snapshot(
    image: Image,
    accel: Accel,
    *,
    progress: Progress | None = None,
    boot_timeout: float = 300.0,
) -> Image:
    """Boot ``image`` under ``accel``, save it, record it in the manifest; return the image.

    Replaces an existing snapshot for the same accelerator and CPU model. Raises
    :class:`BuildError`; the image's other files are never touched, and a failed
    or cancelled attempt leaves no snapshot files behind.
    """
    key = snapshot_key(accel.value, accel.cpu_model)
    progress = progress or Progress(1)
    progress.step(f"snapshot {key}: boot, warm up, save RAM state ({image.memory_mb} MiB guest)")
    state = image.dir / f"snapshot-{key}.state"
    disk = image.dir / f"snapshot-{key}.qcow2"
    tmp_state = image.dir / f".snapshot-{key}.state.tmp"
    tmp_disk = image.dir / f".snapshot-{key}.qcow2.tmp"
    async with image_lock(image.dir.parent, image.name):
        try:
            qemu_version = await _boot_and_save(image, accel, tmp_state, tmp_disk, boot_timeout)
            manifest = read_manifest(image.dir, image.name)
            if manifest["recipe_hash"] != image.recipe_hash:
                raise BuildError(image.name, "snapshot", "the image was rebuilt meanwhile")
            tmp_state.replace(state)
            tmp_disk.replace(disk)
            entries = await asyncio.to_thread(lambda: (file_entry(state), file_entry(disk)))
            manifest["files"][state.name], manifest["files"][disk.name] = entries
            manifest.setdefault("snapshots", {})[key] = {
                "state": state.name,
                "disk": disk.name,
                "memory_mb": image.memory_mb,
                "cpus": image.cpus,
                "accel": accel.value,
                "cpu": accel.cpu_model,
                "machine": MACHINE,
                "cmdline": KERNEL_CMDLINE,
                "qemu_version": qemu_version,
                "created_at": time.time(),
            }
            write_manifest(image.dir, manifest)
        finally:
            tmp_state.unlink(missing_ok=True)
            tmp_disk.unlink(missing_ok=True)
            shutil.rmtree(image.dir / ".snapshot-work", ignore_errors=True)
    return Image.load(image.dir.parent, image.name)


def snapshot_fits(image: Image, accel: Accel) -> bool:
    """Whether ``image`` has a snapshot for ``accel`` that a job VM can restore now."""
    snap = image.snapshot(accel.value, accel.cpu_model)
    return snap is not None and snap.cmdline == KERNEL_CMDLINE and snap.machine == MACHINE


async def _boot_and_save(
    image: Image, accel: Accel, state: Path, disk: Path, boot_timeout: float
) -> str:
    work = image.dir / ".snapshot-work"
    try:
        vm = await VM.start(
            image, work, accel, snapshot=False, keep_disk=disk, timeout=boot_timeout
        )
    except VMError as exc:
        raise BuildError(image.name, "snapshot", str(exc)) from exc
    async with vm:
        try:
            version: dict[str, Any] = (await vm.execute("query-version"))["qemu"]
            guest = await Guest.connect(vm, image, timeout=boot_timeout)
            try:
                result = await guest.run(WARMUP, timeout=120)
            except BaseException:
                await guest.close()
                raise
            if result.exit_status != 0:
                await guest.close()
                raise BuildError(image.name, "snapshot", f"warm-up failed: {result}")
            # Ending the session restarts the guest's SSH waiter, which reopens
            # the port once it is ready for the next session. Being found there
            # is what makes restore-to-SSH fast.
            await vm.wait_ssh_port_open(timeout=60, after=guest.close())
            await asyncio.sleep(SETTLE)
            fd = os.open(state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                await vm.save_state(fd)
                os.fsync(fd)
            finally:
                os.close(fd)
        except (VMError, GuestError, TimeoutError) as exc:
            message = str(exc) or "timed out"
            raise BuildError(image.name, "snapshot", message, vm.console_tail()) from exc
    return f"{version['major']}.{version['minor']}.{version['micro']}"
