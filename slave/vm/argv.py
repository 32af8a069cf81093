"""The QEMU command line of a job VM, built from a plain description (testable without QEMU).

What is on it, and why:

- ``-nodefaults -no-user-config -display none -nic none``: no device, NIC or
  display we did not ask for; the guest has no network at all (DESIGN rule 2).
- ``-sandbox on,...=deny``: seccomp; QEMU may not spawn, raise privileges or
  change resource limits (so migration goes through passed fds, never ``exec:``).
- QMP on an inherited socketpair end (``fd=``): no socket path anyone could race.
- serial console on another socketpair: the slave reads it and caps what it keeps.
- SSH: a virtio-serial port ``org.pyti.ssh`` whose host side is a Unix socket
  in the VM's own directory.
- ``-incoming fd:N``: restore a saved RAM state from an inherited file.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from slave.vm.accel import Accel

QEMU_BINARY = "qemu-system-x86_64"
SSH_PORT_NAME = "org.pyti.ssh"
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
#: Fixed machine type: a snapshot only restores on the machine it was saved on.
MACHINE = "pc"
#: init_on_free=1: freed pages are zeroed, and QEMU saves zero pages as a flag,
#: so a snapshot holds only memory in use (restore time grows with its size).
KERNEL_CMDLINE = (
    "console=ttyS0 root=/dev/vda rootfstype=ext4 rw quiet loglevel=3 panic=-1 "
    "random.trust_cpu=on systemd.show_status=false init_on_free=1"
)


@dataclass(frozen=True, slots=True)
class QemuSpec:
    """Everything that goes into one QEMU command line."""

    accel: Accel
    memory_mb: int
    cpus: int
    kernel: Path
    initrd: Path
    disk: Path
    ssh_socket: Path
    qmp_fd: int
    console_fd: int
    incoming_fd: int | None = None
    name: str = "pyti"
    append: str = KERNEL_CMDLINE
    #: ``unsafe``: job overlays are thrown away, flushes would only cost time.
    disk_cache: str = "unsafe"


def qemu_argv(spec: QemuSpec) -> list[str]:
    """The argv for ``spec``; raises ``ValueError`` for an unresolved accelerator."""
    if spec.accel is Accel.AUTO:
        raise ValueError("resolve Accel.AUTO to kvm or tcg before building a command line")
    for path in (spec.kernel, spec.initrd, spec.disk, spec.ssh_socket):
        if "," in str(path):
            # QEMU option syntax would split the path at the comma.
            raise ValueError(f"path with a comma cannot be passed to QEMU: {path}")
    argv = [
        QEMU_BINARY,
        "-name", spec.name,
        "-nodefaults", "-no-user-config", "-display", "none", "-nic", "none",
        "-sandbox", SANDBOX,
        "-machine", MACHINE,
        "-accel", spec.accel.value, "-cpu", spec.accel.cpu_model,
        "-m", str(spec.memory_mb), "-smp", str(spec.cpus),
        "-no-reboot",
        # MIGRATION events (saving and restoring snapshots wait on them, not poll).
        "-global", "migration.x-events=on",
        "-chardev", f"socket,id=qmp,fd={spec.qmp_fd}",
        "-mon", "chardev=qmp,mode=control",
        "-chardev", f"socket,id=console,fd={spec.console_fd}",
        "-serial", "chardev:console",
        "-kernel", str(spec.kernel), "-initrd", str(spec.initrd), "-append", spec.append,
        "-drive", f"file={spec.disk},if=none,id=disk0,format=qcow2,cache={spec.disk_cache}",
        "-device", "virtio-blk-pci,drive=disk0",
        "-device", "virtio-rng-pci",
        "-device", "virtio-serial-pci,id=vser0",
        "-chardev", f"socket,id=ssh,path={spec.ssh_socket},server=on,wait=off",
        # The id makes QEMU report the guest opening/closing the port (VSERPORT_CHANGE).
        "-device", f"virtserialport,id=sshport,bus=vser0.0,chardev=ssh,name={SSH_PORT_NAME}",
    ]  # fmt: skip
    if spec.incoming_fd is not None:
        argv += ["-incoming", f"fd:{spec.incoming_fd}"]
    return argv


def die_with_parent(argv: list[str]) -> list[str]:
    """``argv`` run so that the kernel kills it when the slave dies (even by SIGKILL).

    Without this a slave killed with ``kill -9`` leaves its QEMU processes (and
    their guests) running with nobody to stop them. util-linux's ``setpriv``
    sets the parent-death signal and then execs the command; without it, argv
    is returned unchanged (teardown still stops VMs on every orderly path).
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return argv
    return [setpriv, "--pdeathsig", "KILL", "--", *argv]
