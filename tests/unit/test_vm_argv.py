"""The QEMU command line of a job VM."""

from __future__ import annotations

from pathlib import Path

import pytest

from slave.vm.accel import Accel
from slave.vm.argv import SSH_PORT_NAME, QemuSpec, qemu_argv


def _spec(accel: Accel = Accel.TCG, **over: object) -> QemuSpec:
    base: dict[str, object] = {
        "accel": accel,
        "memory_mb": 512,
        "cpus": 1,
        "kernel": Path("/img/vmlinuz"),
        "initrd": Path("/img/initrd.img"),
        "disk": Path("/work/vm-1/overlay.qcow2"),
        "ssh_socket": Path("/work/vm-1/ssh.sock"),
        "qmp_fd": 5,
        "console_fd": 6,
    }
    base.update(over)
    return QemuSpec(**base)  # type: ignore[arg-type]


def _opt(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_tcg_uses_tcg_and_cpu_max_and_never_kvm() -> None:
    """Under TCG: -accel tcg -cpu max, and nothing mentions kvm."""
    argv = qemu_argv(_spec(Accel.TCG))
    assert _opt(argv, "-accel") == ["tcg"]
    assert _opt(argv, "-cpu") == ["max"]
    assert not any("kvm" in a for a in argv)


def test_kvm_uses_kvm_and_cpu_host() -> None:
    """Under KVM: -accel kvm -cpu host."""
    argv = qemu_argv(_spec(Accel.KVM))
    assert _opt(argv, "-accel") == ["kvm"]
    assert _opt(argv, "-cpu") == ["host"]


def test_auto_must_be_resolved_first() -> None:
    """An unresolved 'auto' never reaches a command line."""
    with pytest.raises(ValueError, match="resolve"):
        qemu_argv(_spec(Accel.AUTO))


def test_no_network_device_and_minimal_surface() -> None:
    """-nic none, -nodefaults, a seccomp sandbox denying spawn, and no netdev at all."""
    argv = qemu_argv(_spec())
    assert _opt(argv, "-nic") == ["none"]
    assert "-nodefaults" in argv
    assert "-netdev" not in argv and "-net" not in argv
    assert not any("netdev" in a or "hostfwd" in a or a.startswith("user,") for a in argv)
    devices = _opt(argv, "-device")
    assert not any("net" in d or "e1000" in d for d in devices)
    (sandbox,) = _opt(argv, "-sandbox")
    assert sandbox.startswith("on,")
    assert "spawn=deny" in sandbox
    assert "elevateprivileges=deny" in sandbox


def test_qmp_and_console_use_inherited_fds_and_ssh_a_virtio_port() -> None:
    """QMP and console are fd= chardevs; SSH is virtio-serial port org.pyti.ssh on a socket."""
    argv = qemu_argv(_spec())
    chardevs = _opt(argv, "-chardev")
    assert "socket,id=qmp,fd=5" in chardevs
    assert "socket,id=console,fd=6" in chardevs
    assert any(c.startswith("socket,id=ssh,path=/work/vm-1/ssh.sock,server=on") for c in chardevs)
    assert any(f"name={SSH_PORT_NAME}" in d for d in _opt(argv, "-device"))
    assert "virtio-rng-pci" in _opt(argv, "-device")


def test_incoming_only_when_restoring() -> None:
    """-incoming fd:N appears exactly when a state fd is given."""
    assert "-incoming" not in qemu_argv(_spec())
    assert _opt(qemu_argv(_spec(incoming_fd=9)), "-incoming") == ["fd:9"]


def test_path_with_comma_is_refused() -> None:
    """A comma would split QEMU's option syntax: refused rather than misparsed."""
    with pytest.raises(ValueError, match="comma"):
        qemu_argv(_spec(disk=Path("/work/a,b/overlay.qcow2")))
