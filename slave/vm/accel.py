"""Which accelerator QEMU runs guests under, and whether KVM really works here.

Only KVM is a security boundary (DESIGN.md rule 7). ``auto`` means "KVM if a
probe VM really runs under it", and refuses to fall back to TCG silently: TCG
must be asked for explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from enum import StrEnum
from pathlib import Path

from qemu.qmp import QMPClient, QMPError

from slave.errors import SlaveError

QEMU_BINARY = "qemu-system-x86_64"
KVM_DEVICE = Path("/dev/kvm")


class Accel(StrEnum):
    """Accelerator choice; ``AUTO`` must be resolved before starting a VM."""

    AUTO = "auto"
    KVM = "kvm"
    TCG = "tcg"

    @property
    def cpu_model(self) -> str:
        """The ``-cpu`` model used with this accelerator (snapshots are tied to it)."""
        match self:
            case Accel.KVM:
                return "host"
            case Accel.TCG:
                return "max"
        raise AccelError("accelerator 'auto' has no CPU model: resolve it first")

    @property
    def is_security_boundary(self) -> bool:
        """Whether QEMU's security model treats guests under it as isolated."""
        return self is Accel.KVM


class AccelError(SlaveError):
    """The requested accelerator cannot be used here."""


async def probe_kvm(*, settle: float = 1.0, timeout: float = 10.0) -> bool:
    """True only when a tiny VM really runs under KVM for ``settle`` seconds.

    /dev/kvm opening is not enough: on some hosts QEMU starts and then dies with
    "KVM internal error ... emulation failure" as soon as the firmware runs. The
    probe runs SeaBIOS (no disk: it loops looking for one), then asks QMP that
    KVM is enabled and the VM still running. Never raises for a broken KVM;
    the probe VM is killed on every path, also on cancellation.
    """
    if not os.access(KVM_DEVICE, os.R_OK | os.W_OK):
        return False
    ours, theirs = socket.socketpair()
    argv = [
        QEMU_BINARY, "-nodefaults", "-no-user-config", "-display", "none", "-nic", "none",
        "-accel", "kvm", "-cpu", "host", "-m", "32",
        "-chardev", f"socket,id=qmp,fd={theirs.fileno()}", "-mon", "chardev=qmp,mode=control",
    ]  # fmt: skip
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),),
        )
    except OSError:
        ours.close()
        return False
    finally:
        theirs.close()
    qmp = QMPClient("kvm-probe")
    try:
        async with asyncio.timeout(timeout):
            await qmp.connect(ours)
            await asyncio.sleep(settle)  # let the firmware run: failures show only then
            kvm = await qmp.execute("query-kvm")
            status = await qmp.execute("query-status")
        assert isinstance(kvm, dict) and isinstance(status, dict)
        return bool(kvm.get("enabled")) and status.get("status") == "running"
    except (TimeoutError, QMPError, OSError, EOFError):
        return False
    finally:
        with contextlib.suppress(QMPError, OSError, EOFError):
            await qmp.disconnect()
        ours.close()
        if proc.returncode is None:
            proc.kill()
        await asyncio.shield(proc.wait())


async def resolve_accel(requested: Accel | str, *, kvm_works: bool | None = None) -> Accel:
    """``kvm`` or ``tcg`` for ``requested``; probes KVM unless ``kvm_works`` is given.

    Raises :class:`AccelError` for ``auto`` or ``kvm`` when KVM does not really
    work: the slave never drops to TCG (not a security boundary) on its own.
    """
    try:
        accel = Accel(requested)
    except ValueError:
        raise AccelError(f"unknown accelerator {requested!r}: use auto, kvm or tcg") from None
    if accel is Accel.TCG:
        return accel
    works = await probe_kvm() if kvm_works is None else kvm_works
    if works:
        return Accel.KVM
    raise AccelError(
        f"--accel {accel.value}: KVM does not work on this machine (a probe VM did not run "
        "under it); use --accel tcg explicitly; TCG is not a security boundary"
    )
