"""A VM's own directory and its throw-away qcow2 overlay on the image's disk."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from slave.vm.errors import VMError


async def create_overlay(backing: Path, overlay: Path) -> None:
    """A qcow2 overlay on ``backing``; :class:`VMError` if qemu-img fails. Cancel-safe."""
    # A backing file beside the overlay is named relatively: the image dir can move.
    b = backing.name if backing.parent == overlay.parent else str(backing)
    proc = await asyncio.create_subprocess_exec(
        "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", b, str(overlay),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.shield(proc.wait())
    if proc.returncode != 0:
        raise VMError(f"qemu-img create {overlay} failed: {out.decode(errors='replace')}")


def make_vm_dir(work_dir: Path) -> str:
    """A new private directory for one VM under ``work_dir`` (blocking: run in a thread)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix="vm-", dir=work_dir)
